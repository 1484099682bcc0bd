"""Waiting for a condition, not for a time: poll it, and fail with what was seen once a generous bound passes."""

from __future__ import annotations

import contextlib
import time
import urllib.request
from collections.abc import Callable


def poll_until(condition: Callable[[], object], timeout: float, seen: Callable[[], object] = lambda: "",
               alive: Callable[[], bool] = lambda: True, interval: float = 0.05) -> object:
    """condition()'s first true value. AssertionError carrying seen() when `alive()` turns false (the
    process it waits on ended) or `timeout` seconds pass: a bound for a hung run, never a verdict on speed."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if not alive():
            raise AssertionError(f"it ended before the condition held:\n{seen()}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"the condition did not hold within {timeout} s:\n{seen()}")
        time.sleep(interval)


def answers(url: str) -> bool:
    """Whether a server answers GET `url` with a success status (a process starting up may not listen yet)."""
    with contextlib.suppress(OSError):
        urllib.request.urlopen(url, timeout=2).close()
        return True
    return False
