"""Tuning time per trial: trials on features computed once, against the same trial as a training job from images.

Ours, three ways: `python -m train.tune` with N trials, its whole wall time (start-up and the one
backbone pass over train and valid included) divided by N; one SageMaker-style trial on a
featurize job's output (`python -m train` with the model.tar.gz as its `features` channel, no
images); and that trial with the featurize job's time shared by N trials. Baseline: what a
tuning trial runs without featurizing, the training program from images (`python -m train`,
frozen ResNet-50, `--cache-features false`, the same epochs), one job's wall time. Same
generated photos, same run. Also the featurize job as two DDP processes against one (on CPU
cores the two share the machine; the gain is on a host with several GPUs). Prints numbers;
asserts nothing.

    python -m bench.tuning_trial [--quick]
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench.cli import benchmark_parser
from bench.report import print_table
from support.photos import make_photos

REPO = Path(__file__).resolve().parents[1]


def wall_seconds(command: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("bench.tuning_trial", __doc__, "fewer, smaller photos and trials (CI)")
    args = parser.parse_args(argv)
    per_split, image_size, trials, epochs = ((24, 8), 128, 5, 3) if args.quick else ((96, 32), 224, 10, 5)
    arch, trial_flags = "resnet50", []
    if args.smoke:  # a smaller net and no int8 export: its figures measure nothing
        per_split, image_size, trials, epochs = (8, 4), 64, 2, 1
        arch, trial_flags = "resnet18", ["--quantize", "none"]
    common = ["--arch", arch, "--weights", "none", "--image-size", str(image_size)]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        for seed, (split, count) in enumerate(zip(("train", "valid"), per_split, strict=True)):
            make_photos(data / split, count, classes=4, seed=seed, max_width=1600)
        tuning = wall_seconds(["-m", "train.tune", "--data-dir", str(data), *common, "--trials", str(trials),
                               "--epochs", str(epochs), "--batch-sizes", "8,16,32"])
        trial = ["-m", "train", *common, "--freeze-backbone", "true", "--augment", "false", "--epochs", str(epochs),
                 "--batch-size", "16", "--diagnostics", "false", *trial_flags]
        job = wall_seconds([*trial, "--data-dir", str(data), "--base-dir", f"{tmp}/job", "--cache-features", "false"])
        featurize = wall_seconds([*trial, "--data-dir", str(data), "--base-dir", f"{tmp}/featurize",
                                  "--featurize", "true"])
        # the same featurize job as two DDP processes, each computing its shard of every split
        featurize_ddp = wall_seconds([*trial, "--data-dir", str(data), "--base-dir", f"{tmp}/featurize-ddp",
                                      "--featurize", "true", "--processes-per-host", "2"])
        channel = Path(tmp) / "trial" / "input" / "data" / "features"
        channel.mkdir(parents=True)
        with tarfile.open(channel / "model.tar.gz", "w:gz") as archive:  # what SageMaker uploads and hands over
            for path in (Path(tmp) / "featurize" / "model").iterdir():
                archive.add(path, arcname=path.name)
        on_features = wall_seconds([*trial, "--base-dir", f"{tmp}/trial"])
    print_table(f"tuning: seconds per trial, {epochs} epochs, frozen {arch}, {image_size} px, "
                f"{per_split[0]}/{per_split[1]} photos, {platform.machine()} x {os.cpu_count()} CPUs "
                "(lower is better)",
                [(f"time per trial, {trials} local trials amortised (s)", tuning / trials, job),
                 ("one trial job on a featurize job's output (s)", on_features, job),
                 (f"that, with the featurize job ({featurize:.1f} s) shared by {trials} trials (s)",
                  on_features + featurize / trials, job)],
                "one trial as a tuning job runs it: the training program from images, --cache-features false")
    print_table(f"featurize job: seconds, 2 processes against 1 (each rank computes its shard), {os.cpu_count()} "
                "CPUs (lower is better)",
                [("featurize job, 2 DDP processes (s)", featurize_ddp, featurize)],
                "the same featurize job in one process")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
