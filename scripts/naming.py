"""The names the scripts give what they create: <base>-<UTC time to the millisecond>, within SageMaker's limit
(63 characters; a tuning job's 32 leave room for it too). AWS refuses a second model, endpoint config or job of
one name, so each gets a new one; cleanup.py finds an endpoint's models and configs by this form."""

from __future__ import annotations

import datetime
import re

_STAMP_LENGTH = len("20261130-091500-123")


def name_base(base: str, max_length: int = 63) -> str:
    return base[:max_length - _STAMP_LENGTH - 1].rstrip("-")


def timestamped(base: str, max_length: int = 63, now: datetime.datetime | None = None) -> str:
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%d-%H%M%S-%f")[:-3]
    return f"{name_base(base, max_length)}-{stamp}"


def is_timestamped(name: str, base: str) -> bool:
    return re.fullmatch(rf"{re.escape(name_base(base))}-\d{{8}}-\d{{6}}-\d{{3}}", name) is not None
