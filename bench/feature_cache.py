"""The feature cache: a 5-epoch frozen-backbone job with --cache-features true against false, same run.

Both are the real training program (`python -m train`, a subprocess each) on the same
generated dogImages-sized photos, frozen ResNet-50 + head, --augment false. Job wall time
includes start-up, the data check and the ONNX export that both pay once; the training phase
(features, epochs, evaluation) is what the cache changes, and what dominates on dogImages.
Prints numbers; asserts nothing.

    python -m bench.feature_cache [--quick]
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.cli import benchmark_parser
from bench.report import print_table
from support.photos import make_photos

REPO = Path(__file__).resolve().parents[1]


def run_job(data: Path, base: Path, cache: str, image_size: int, epochs: int, arch: str,
            *flags: str) -> tuple[float, float]:
    """(the job's wall time, its training phase: from the model built to the artifact export starting)."""
    command = [sys.executable, "-m", "train", "--data-dir", str(data), "--base-dir", str(base), "--arch", arch,
               "--weights", "none", "--freeze-backbone", "true", "--augment", "false", "--epochs", str(epochs),
               "--image-size", str(image_size), "--batch-size", "16", "--cache-features", cache, *flags]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"job with --cache-features {cache} failed:\n{result.stdout}\n{result.stderr}")
    return wall, _seconds_between(result.stdout, " INFO train.trainer: model: ", " INFO train.finish: training done")


def _seconds_between(log: str, first: str, last: str) -> float:
    stamps = {}
    for line in log.splitlines():
        for marker in (first, last):
            if marker in line:
                stamps[marker] = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return (stamps[last] - stamps[first]).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("bench.feature_cache", __doc__, "fewer, smaller images (CI)")
    args = parser.parse_args(argv)
    # dogImages' proportions (6,680 / 835 / 836: 8 to 1 to 1), which set the most the cache can save:
    # 5 epochs x (train + valid) + test backbone passes against one pass over each split, 4.6x.
    per_split = {"train": 32, "valid": 4, "test": 4} if args.quick else {"train": 128, "valid": 16, "test": 16}
    image_size, epochs = (128, 5) if args.quick else (224, 5)
    arch, flags = "resnet50", []
    if args.smoke:  # a smaller net and no int8 export: it costs both jobs the same, and the suite tests it elsewhere
        per_split, image_size, epochs = {"train": 8, "valid": 4, "test": 4}, 64, 1
        arch, flags = "resnet18", ["--quantize", "none"]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        for seed, (split, count) in enumerate(per_split.items()):
            make_photos(data / split, count, classes=4, seed=seed, max_width=1600)
        cached = run_job(data, Path(tmp) / "cached", "true", image_size, epochs, arch, *flags)
        uncached = run_job(data, Path(tmp) / "uncached", "false", image_size, epochs, arch, *flags)
    print_table(f"feature cache: {epochs}-epoch job, frozen {arch} + head, --augment false, {image_size} px, "
                f"{per_split['train']}/{per_split['valid']}/{per_split['test']} photos, "
                f"{platform.machine()} x {os.cpu_count()} CPUs (seconds: lower is better)",
                [("whole job, wall time (s)", cached[0], uncached[0]),
                 ("training phase: features, epochs, evaluation (s)", cached[1], uncached[1])],
                "the same job with --cache-features false (the backbone recomputes every epoch)")
    passes = epochs * (per_split["train"] + per_split["valid"]) + per_split["test"]
    print(f"speed-up: whole job {uncached[0] / cached[0]:.2f}x, training phase {uncached[1] / cached[1]:.2f}x; "
          f"backbone passes {passes} vs {sum(per_split.values())}, at most {passes / sum(per_split.values()):.2f}x "
          "(start-up, data check and ONNX export cost both the same fixed seconds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
