"""Progress: a tqdm bar in a terminal, plain periodic log lines elsewhere (CloudWatch reads lines)."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger("train.progress")


class Progress:
    def __init__(self, description: str, total: int, initial: int = 0, enabled: bool = True,
                 interactive: bool | None = None, log_every_seconds: float = 30.0):
        self.description, self.total = description, total
        self.enabled = enabled
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.log_every_seconds = log_every_seconds
        self._last_log = time.monotonic()
        self._bar = None
        if enabled and self.interactive:
            self._bar = tqdm(total=total, initial=initial, desc=description, leave=False, dynamic_ncols=True)

    def update(self, step: int, **values: float) -> None:
        if not self.enabled:
            return
        shown = " ".join(f"{k}={v:.4f}" for k, v in values.items())
        if self._bar is not None:
            self._bar.n = step
            if shown:
                self._bar.set_postfix_str(shown, refresh=False)
            self._bar.refresh()
            return
        now = time.monotonic()
        if now - self._last_log >= self.log_every_seconds or step == self.total:
            self._last_log = now
            log.info("%s step %d/%d %s", self.description, step, self.total, shown)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
