"""Metric lines in one stable format, and the regexes a SageMaker tuner reads them with.

A line looks like `METRIC epoch=3 valid:loss=0.412345; valid:accuracy=0.875000;`. The
`;` ends every value, so a regex never runs into the next metric, and no metric name is
a suffix of another, so `valid:accuracy=` never matches inside a longer name.

A tuning job takes the *last* value of its objective metric a trial prints as the trial's
final objective (FinalHyperParameterTuningJobObjectiveMetric), while the job ships its best
epoch. So after the last epoch the job prints one more line, `METRIC best_epoch=N ...`, with
the best epoch's valid metrics: what the tuner reads last is the model the job ships.
"""

from __future__ import annotations

import json
import math

METRIC_NAMES = (
    "train:loss",
    "train:accuracy",
    "valid:loss",
    "valid:accuracy",
    "test:loss",
    "test:accuracy",
    "epoch:seconds",
    "train:images_per_second",
)
# What a tuning job maximises, here and in `python -m train.tune`: the shipped (best) epoch's valid accuracy.
OBJECTIVE = "valid:accuracy"
# One capture group and nothing fancier: SageMaker's regex engine is not Python's.
_NUMBER = r"([-+0-9.eE]+)"


def metric_definitions() -> list[dict[str, str]]:
    """What `MetricDefinitions` (Estimator / HyperparameterTuner) takes."""
    return [{"Name": name, "Regex": rf"{name}={_NUMBER};"} for name in METRIC_NAMES]


def format_metrics(values: dict[str, float], epoch: int | None = None, best_epoch: int | None = None) -> str:
    unknown = set(values) - set(METRIC_NAMES)
    if unknown:
        raise ValueError(f"unknown metric names {sorted(unknown)}")
    parts = ["METRIC"]
    if epoch is not None:
        parts.append(f"epoch={epoch}")
    if best_epoch is not None:
        parts.append(f"best_epoch={best_epoch}")
    # Non-finite values are written as nan/inf, which the regexes deliberately do not match.
    parts += [f"{name}={_format(value)};" for name, value in values.items()]
    return " ".join(parts)


def _format(value: float) -> str:
    return f"{value:.6f}" if math.isfinite(value) else str(value)


def print_metric_definitions() -> None:
    print(json.dumps(metric_definitions(), indent=2))
