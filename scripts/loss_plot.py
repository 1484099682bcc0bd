#!/usr/bin/env python3
"""Plot train vs valid loss over steps from SageMaker Debugger tensors (an smdebug trial folder).

    python scripts/loss_plot.py runs/debug/JOB/debug-output runs/debug/JOB/loss.png

Reads the `losses` collection with smdebug's `create_trial`, plots every loss tensor's TRAIN and
EVAL steps, and prints a JSON summary (tensor, mode, steps, first and last value) on stdout.
debug_profile.py runs it in its own process: smdebug's protobuf code needs the pure-Python
protobuf runtime, which must be chosen before anything else imports protobuf.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")


def loss_series(trial_dir: Path) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """{tensor name: {"TRAIN"/"EVAL": (global steps, values)}} for the trial's loss tensors.

    Global steps put each validation pass where it happened in training, on the same axis."""
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    trial = create_trial(str(trial_dir))
    names = trial.tensor_names(collection="losses") or trial.tensor_names(regex="(?i)loss")
    series: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for name in names:
        tensor = trial.tensor(name)
        for mode in (ModeKeys.TRAIN, ModeKeys.EVAL):
            steps = tensor.steps(mode=mode)
            if steps:
                values = [float(tensor.value(step, mode=mode).mean()) for step in steps]
                series.setdefault(name, {})[mode.name] = ([trial.global_step(mode, step) for step in steps], values)
    return series


def plot(series, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    for name, modes in series.items():
        for mode, (steps, values) in modes.items():
            label = f"{'valid' if mode == 'EVAL' else 'train'} ({name})"
            axis.plot(steps, values, marker="." if len(steps) < 50 else None, label=label)
    axis.set_xlabel("training step")
    axis.set_ylabel("loss")
    axis.set_title("train vs valid loss (SageMaker Debugger tensors)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    trial_dir, png = Path(argv[0]), Path(argv[1])
    if not trial_dir.is_dir():
        print(f"error: debug tensor folder {trial_dir} does not exist", file=sys.stderr)
        return 2
    series = loss_series(trial_dir)
    if not series:
        print(f"error: no loss tensors in {trial_dir} (was the hook's `losses` collection saved?)", file=sys.stderr)
        return 1
    plot(series, png)
    summary = [{"tensor": name, "mode": mode, "steps": len(steps), "first": values[0], "last": values[-1]}
               for name, modes in series.items() for mode, (steps, values) in modes.items()]
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
