"""torch.profiler over a window of training steps (`--profile-steps FIRST-LAST`).

Writes a Chrome/Perfetto trace (open it at chrome://tracing or ui.perfetto.dev, or with
TensorBoard's PyTorch profiler plugin) and keeps the top operators table for the report.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)
TOP_OPERATORS = 20


class ProfileWindow:
    def __init__(self, window: tuple[int, int] | None, trace_dir: Path, device: torch.device):
        self.window, self.trace_dir, self.device = window, trace_dir, device
        self._profiler = None
        self.table: str | None = None

    def before_step(self, step: int) -> None:
        if self.window is not None and step == self.window[0] and self._profiler is None:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if self.device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self._profiler = torch.profiler.profile(activities=activities, profile_memory=True, with_stack=False)
            self._profiler.__enter__()
            log.info("torch.profiler: tracing training steps %d-%d", *self.window)

    def after_step(self, step: int) -> None:
        if self._profiler is not None and step >= self.window[1]:
            self.close()

    def close(self) -> None:
        """Ends the trace (also when training ended inside the window) and writes it."""
        if self._profiler is None:
            return
        profiler, self._profiler = self._profiler, None
        profiler.__exit__(None, None, None)
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        trace = self.trace_dir / "trace.json"
        profiler.export_chrome_trace(str(trace))
        sort_by = "self_cuda_time_total" if self.device.type == "cuda" else "self_cpu_time_total"
        self.table = profiler.key_averages().table(sort_by=sort_by, row_limit=TOP_OPERATORS)
        (self.trace_dir / "operators.txt").write_text(self.table + "\n")
        log.info("torch.profiler: trace written to %s", trace)
