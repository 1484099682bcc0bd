"""TensorBoard event files where SageMaker's TensorBoardOutputConfig collects them (output/tensorboard).

Written while training runs (SageMaker uploads the folder as it grows): the loss every step,
the epoch metrics (step: epoch), gradient norms per layer group, step phase times, and system utilisation.
`tensorboard --logdir <that folder>` shows them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from train.diagnostics.record import EpochRecord, GradientRecord, StepRecord, SystemSample

log = logging.getLogger(__name__)


class TensorBoardWriter:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self._writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            log_dir.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(log_dir=str(log_dir))
        except Exception as error:  # noqa: BLE001 - TensorBoard output is optional, the job is not
            log.warning("TensorBoard events are not written (%s: %s)", type(error).__name__, error)

    def steps(self, steps: list[StepRecord], gradients: list[GradientRecord]) -> None:
        if self._writer is None:
            return
        for step in steps:
            self._writer.add_scalar("loss/train_step", step.loss, step.step)
            for phase, seconds in step.seconds.items():
                self._writer.add_scalar(f"step_time_ms/{phase}", seconds * 1000, step.step)
        for gradient in gradients:
            for group, norm in gradient.group_norms.items():
                self._writer.add_scalar(f"gradient_norm/{group}", norm, gradient.step)

    def epoch(self, epoch: EpochRecord) -> None:
        if self._writer is None:
            return
        for name, value in (("loss/train", epoch.train_loss), ("loss/valid", epoch.valid_loss),
                            ("accuracy/train", epoch.train_accuracy), ("accuracy/valid", epoch.valid_accuracy)):
            self._writer.add_scalar(name, value, epoch.epoch)
        self._writer.flush()

    def system(self, samples: list[SystemSample], started_wall_time: float, first_index: int) -> None:
        if self._writer is None:
            return
        for index, sample in enumerate(samples, start=first_index):
            wall = started_wall_time + sample.seconds
            self._writer.add_scalar("system/cpu_percent", sample.cpu_percent, index, walltime=wall)
            self._writer.add_scalar("system/memory_percent", sample.memory_percent, index, walltime=wall)
            for gpu, (busy, memory) in enumerate(zip(sample.gpu_percent, sample.gpu_memory_percent, strict=True)):
                self._writer.add_scalar(f"system/gpu{gpu}_percent", busy, index, walltime=wall)
                self._writer.add_scalar(f"system/gpu{gpu}_memory_percent", memory, index, walltime=wall)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
