"""The one object the trainer talks to: start, per epoch, finish (rules.json, report.html, diagnostics.json)."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch
from torch import nn

from train.diagnostics.html_report import render
from train.diagnostics.record import EpochRecord, RunRecord
from train.diagnostics.recorder import Recorder, StepObserver
from train.diagnostics.rules import ISSUES, RuleResult, evaluate_rules
from train.diagnostics.settings import DiagnosticsSettings, PoorWeightInitialization
from train.diagnostics.story import Story
from train.diagnostics.system_monitor import SystemMonitor
from train.diagnostics.tensorboard import TensorBoardWriter
from train.diagnostics.torch_profile import ProfileWindow

log = logging.getLogger(__name__)


class NoDiagnostics:
    """Ranks other than 0, and --diagnostics false: the same calls, nothing recorded."""

    observer = StepObserver()

    def start_epoch(self, epoch: int, global_step: int) -> None:
        pass

    def end_epoch(self, epoch: int, train_loss: float, valid_loss: float, train_accuracy: float,
                  valid_accuracy: float, valid_confusion: torch.Tensor) -> None:
        pass

    def finish(self, output_dir: Path, story: Story | None = None) -> list[RuleResult]:
        return []

    def close(self) -> None:
        pass


class Diagnostics(NoDiagnostics):
    def __init__(self, settings: DiagnosticsSettings, classifier: nn.Module, device: torch.device,
                 classes: list[str], train_class_counts: list[int], output_dir: Path, tensorboard_dir: Path):
        self.settings = settings
        self.record = RunRecord(device=device.type, classes=classes, train_class_counts=train_class_counts)
        self.profile = ProfileWindow(settings.profile_steps, output_dir / "torch_profiler", device)
        self.observer = Recorder(self.record, classifier, device,
                                 first_steps=settings.rule(PoorWeightInitialization).steps,
                                 gradient_interval=settings.gradient_interval, profile=self.profile)
        self.tensorboard = TensorBoardWriter(tensorboard_dir)
        self.started_wall_time = time.time()
        self.monitor = SystemMonitor(settings.sample_interval_ms / 1000, use_gpu=device.type == "cuda").start()
        self._steps_written = self._gradients_written = self._samples_written = 0
        log.info("diagnostics: rules, profiler (system every %d ms, step phases%s), TensorBoard events in %s",
                 settings.sample_interval_ms,
                 ", torch.profiler steps {}-{}".format(*settings.profile_steps) if settings.profile_steps else "",
                 tensorboard_dir)

    def start_epoch(self, epoch: int, global_step: int) -> None:
        self.observer.start_epoch(epoch, global_step)

    def end_epoch(self, epoch: int, train_loss: float, valid_loss: float, train_accuracy: float,
                  valid_accuracy: float, valid_confusion: torch.Tensor) -> None:
        record = EpochRecord(epoch, self.observer.step, train_loss, valid_loss, train_accuracy, valid_accuracy)
        self.record.epochs.append(record)
        self.record.valid_confusion = valid_confusion.tolist()
        self._write_tensorboard()
        self.tensorboard.epoch(record)

    def finish(self, output_dir: Path, story: Story | None = None) -> list[RuleResult]:
        self.close()
        self.record.torch_profile_table = self.profile.table
        results = evaluate_rules(self.settings.rules, self.record, self.settings.loss_interval)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "rules.json").write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")
        (output_dir / "diagnostics.json").write_text(json.dumps(_finite(self.record.to_json())) + "\n")
        (output_dir / "report.html").write_text(render(self.record, results, "Training report", story))
        for result in results:
            (log.warning if result.status == ISSUES else log.info)("rule %s: %s - %s", result.rule, result.status,
                                                                   result.message)
        log.info("diagnostics written: %s, %s", output_dir / "rules.json", output_dir / "report.html")
        return results

    def close(self) -> None:
        """Idempotent; also on failure, so no thread, hook or profiler outlives the job."""
        self.record.system = self.monitor.stop()
        self.observer.remove_hooks()
        self.profile.close()
        self._write_tensorboard()
        self.tensorboard.close()

    def _write_tensorboard(self) -> None:
        steps = self.record.steps[self._steps_written:]
        gradients = self.record.gradients[self._gradients_written:]
        self.tensorboard.steps(steps, gradients)
        self._steps_written += len(steps)
        self._gradients_written += len(gradients)
        samples = self.monitor.samples[self._samples_written:]
        self.tensorboard.system(samples, self.started_wall_time, self._samples_written)
        self._samples_written += len(samples)


def _finite(value):
    """JSON has no NaN or Infinity: non-finite numbers become strings ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
