"""What the rules' recorder and the profiler cost per training step: with them against without, same run.

The training loop itself (`train.engine.train_one_epoch`) runs the same batches with no observer
(the baseline, = --diagnostics false) and with what --diagnostics true adds while steps run: the
Recorder (phase timings, loss, gradient statistics at the default interval) and the background
system monitor at its default 500 ms. Alternating rounds, best round of each: this 2-core
machine's noise between separate processes (+-15%) would hide a 5% effect. Batches are ready in
memory, so the step is pure compute: the honest worst case (a loader only adds time to both).

Three paths: the head on cached features (1-2 ms steps, the highest relative cost), a frozen
ResNet-50, and a trainable ResNet-50 (gradient statistics over 25M parameters).
Target: at most 5% fewer images/s. Prints numbers; asserts nothing.

    python -m bench.diagnostics_overhead [--quick]
"""

from __future__ import annotations

import os
import platform
import time

import torch

from bench.cli import benchmark_parser
from bench.report import print_table
from train.diagnostics.record import RunRecord
from train.diagnostics.recorder import Recorder
from train.diagnostics.settings import DiagnosticsSettings, PoorWeightInitialization
from train.diagnostics.system_monitor import SystemMonitor
from train.diagnostics.torch_profile import ProfileWindow
from train.engine import Precision, RunningTotals, train_one_epoch
from train.network import Normalize, build_classifier
from train.progress import Progress

BATCH = 16
CPU = torch.device("cpu")


class TimedRecorder(Recorder):
    """The recorder, clocking its own per-step work: a noise-free figure next to the A/B one."""

    seconds = 0.0

    def step_done(self, loss, scaler) -> None:
        started = time.perf_counter()
        super().step_done(loss, scaler)
        self.seconds += time.perf_counter() - started


def _path(name: str, image_size: int, steps: int):
    """(model trained by the loop, the classifier the recorder watches, batches, input normalisation)."""
    torch.manual_seed(0)
    labels = torch.randint(0, 4, (steps, BATCH))
    if name == "head on cached features":
        classifier = build_classifier("resnet50", 4, 256, None, freeze_backbone=True)
        batches = [(torch.randn(BATCH, 2048), labels[i]) for i in range(steps)]
        return classifier.head, classifier, batches, None
    classifier = build_classifier("resnet50", 4, 256, None, freeze_backbone=name.startswith("frozen"))
    classifier.to(memory_format=torch.channels_last)
    batches = [(torch.randint(0, 256, (BATCH, 3, image_size, image_size), dtype=torch.uint8), labels[i])
               for i in range(steps)]
    return classifier, classifier, batches, Normalize()


def _round(model, batches, normalize, observer) -> float:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    started = time.perf_counter()
    train_one_epoch(model, batches, optimizer, scaler, Precision.for_device(CPU), normalize, RunningTotals(), 0,
                    lambda: False, Progress("bench", 0, enabled=False), observer=observer)
    return len(batches) * BATCH / (time.perf_counter() - started)


def measure(name: str, image_size: int, steps: int, rounds: int) -> tuple[float, float, float]:
    """(best images/s with, best without, the recorder's own share of step time)."""
    model, classifier, batches, normalize = _path(name, image_size, steps)
    settings = DiagnosticsSettings()
    first_steps = settings.rule(PoorWeightInitialization).steps
    _round(model, batches[:2], normalize, None)  # warm-up: allocator, oneDNN kernels
    on, off, shares = [], [], []
    for _ in range(rounds):
        off.append(_round(model, batches, normalize, None))
        recorder = TimedRecorder(RunRecord("cpu"), classifier, CPU, first_steps, settings.gradient_interval,
                            ProfileWindow(None, None, CPU))
        recorder.remove_hooks()  # steady state: the first steps' extras are over
        recorder.start_epoch(1, global_step=first_steps)
        monitor = SystemMonitor(settings.sample_interval_ms / 1000, use_gpu=False).start()
        try:
            on.append(_round(model, batches, normalize, recorder))
        finally:
            monitor.stop()
        shares.append(recorder.seconds / (len(batches) * BATCH / on[-1]))
    return max(on), max(off), min(shares)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("bench.diagnostics_overhead", __doc__, "fewer steps and rounds (CI)")
    args = parser.parse_args(argv)
    image_size, rounds = (64, 5) if args.quick else (128, 5)
    steps = {"head on cached features": 400 if args.quick else 2000,
             "frozen ResNet-50": 20 if args.quick else 30,
             "trainable ResNet-50": 10 if args.quick else 20}
    if args.smoke:
        image_size, rounds, steps = 32, 1, dict.fromkeys(steps, 2)
    rows, shares = [], []
    for name, count in steps.items():
        on, off, share = measure(name, image_size, count, rounds)
        rows.append((f"{name}, {count} steps (images/s)", on, off))
        shares.append(share)
    print_table(f"diagnostics overhead per training step: ResNet-50, {image_size} px, batch {BATCH}, best of "
                f"{rounds} alternating rounds, {platform.machine()} x {os.cpu_count()} CPUs (higher is better)",
                rows, "the same loop and batches without the recorder and system monitor (--diagnostics false)")
    for (what, on, off), share in zip(rows, shares, strict=True):
        print(f"overhead {what.split(',')[0]}: {100 * (1 - on / off):+.1f}% images/s, recorder's own time "
              f"{100 * share:.1f}% of step time (target: at most 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
