"""Per-step phase timings: data wait, forward (with the loss), backward, optimizer step.

On CPU the phases are wall-clock intervals. On CUDA the compute phases are CUDA events read
back after the step (the loop's loss.item() has synchronised by then, so reading them adds no
synchronisation); the data wait is host time either way, since that is what starves the GPU.
"""

from __future__ import annotations

import itertools
import time

import torch

COMPUTE_PHASES = ("forward", "backward", "optimizer")


class StepTimer:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._wait_started = 0.0
        self._data_wait = 0.0
        self._marks: list = []

    def waiting_for_batch(self) -> None:
        self._wait_started = time.perf_counter()

    def batch_ready(self) -> None:
        self._data_wait = time.perf_counter() - self._wait_started
        self._marks = [self._now()]

    def end_of(self, phase: str) -> None:
        """Called once per phase, in COMPUTE_PHASES order."""
        self._marks.append(self._now())

    def seconds(self) -> dict[str, float]:
        phases = {"data_wait": self._data_wait}
        for phase, (start, end) in zip(COMPUTE_PHASES, itertools.pairwise(self._marks), strict=False):
            phases[phase] = start.elapsed_time(end) / 1000.0 if self.cuda else end - start
        return phases

    def _now(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event
