"""The diagnostics flags: on/off, profiler sampling, the torch.profiler window, and every rule threshold.

Rule thresholds are named `--<rule>-<parameter>` after SageMaker's built-in rule parameters
(`--overfit-ratio-threshold` is Overfit's `ratio_threshold`) and default to SageMaker's values,
so a job's hyperparameters can carry the same settings a RuleConfig would.
"""

from __future__ import annotations

import argparse
import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class LossNotDecreasing:
    num_steps: int = 10  # checks at saved steps at least num_steps apart, each against the one before
    diff_percent: float = 0.1  # the loss must fall by at least this many percent between checks ...
    increase_threshold_percent: float = 5.0  # ... and may rise by at most this many when it rises
    mode: str = dataclasses.field(default="GLOBAL", metadata={"choices": ("GLOBAL", "TRAIN", "EVAL")})


@dataclasses.dataclass(frozen=True)
class Overfit:
    start_step: int = 0  # epochs (validation runs once an epoch) skipped before comparing
    patience: int = 1  # consecutive epochs over the ratio before it counts
    ratio_threshold: float = 0.1  # (valid loss - train loss) / train loss


@dataclasses.dataclass(frozen=True)
class Overtraining:
    patience_train: int = 5  # training loss improved within this many epochs ...
    patience_validation: int = 10  # ... while validation loss has not within this many
    delta: float = 0.01  # what counts as an improvement of the loss


@dataclasses.dataclass(frozen=True)
class VanishingGradient:
    threshold: float = 1e-7  # mean absolute gradient of a parameter tensor


@dataclasses.dataclass(frozen=True)
class ExplodingTensor:
    only_nan: bool = False  # true: infinities are not reported, only NaN


@dataclasses.dataclass(frozen=True)
class PoorWeightInitialization:
    threshold: float = 10.0  # max/min variance of ReLU inputs across layers
    distribution_range: float = 0.001  # 5th-95th percentile spread of the gradients
    patience: int = 5  # steps without a new lowest loss
    steps: int = 10  # the first steps analysed


@dataclasses.dataclass(frozen=True)
class ClassImbalance:
    threshold_imbalance: float = 10.0  # largest / smallest class in the train split
    threshold_misprediction: float = 0.7  # fraction of a class's validation images predicted wrong
    samples: int = 500  # validation labels needed before mispredictions are judged


@dataclasses.dataclass(frozen=True)
class LowGPUUtilization:
    threshold_p95: float = 70.0  # % - p95 under it: underused
    threshold_p5: float = 10.0  # % - p95 over threshold_p95 and p5 under it: fluctuating
    window: int = 500  # samples per quantile window
    patience: int = 1000  # first samples skipped (start-up)


@dataclasses.dataclass(frozen=True)
class CPUBottleneck:
    threshold: float = 50.0  # % of the time bottlenecked
    gpu_threshold: float = 10.0  # % GPU utilisation counted as starved
    cpu_threshold: float = 90.0  # % CPU utilisation counted as busy
    patience: int = 1000  # first samples skipped (start-up)


@dataclasses.dataclass(frozen=True)
class StepOutlier:
    stddev: float = 3.0  # a step longer than mean + stddev * standard deviation is an outlier
    n_outliers: int = 10  # outliers tolerated


RULE_TYPES = (LossNotDecreasing, Overfit, Overtraining, VanishingGradient, ExplodingTensor,
              PoorWeightInitialization, ClassImbalance, LowGPUUtilization, CPUBottleneck, StepOutlier)


@dataclasses.dataclass(frozen=True)
class DiagnosticsSettings:
    enabled: bool = True
    sample_interval_ms: int = 500  # SageMaker's default system-monitor interval
    gradient_interval: int = 10  # gradient statistics every this many steps (and every one of the first steps)
    loss_interval: int = 500  # LossNotDecreasing's saved steps: SageMaker's save_interval for its losses collection
    profile_steps: tuple[int, int] | None = None  # first and last training step traced by torch.profiler
    rules: tuple = tuple(rule() for rule in RULE_TYPES)

    def rule(self, rule_type):
        return next(rule for rule in self.rules if isinstance(rule, rule_type))


def flag_name(rule_type, parameter: str) -> str:
    kebab = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", rule_type.__name__).lower()
    return f"{kebab}-{parameter.replace('_', '-')}"


def add_arguments(parser: argparse.ArgumentParser, str_to_bool, bounded) -> None:
    """`str_to_bool` and `bounded(kind, min, max)` are the hyperparameter parsers (one error style)."""
    group = parser.add_argument_group("debugging and profiling (rules, profiler, report, TensorBoard)")
    group.add_argument("--diagnostics", type=str_to_bool, default=True,
                       help="evaluate the rules, profile steps and system, write rules.json, report.html and "
                            "TensorBoard events")
    group.add_argument("--profiler-interval-ms", type=bounded(int, 10, 60000), default=500,
                       help="system metrics sampling interval")
    group.add_argument("--gradient-interval-steps", type=bounded(int, 1, 1000000), default=10,
                       help="gradient statistics (VanishingGradient, ExplodingTensor, gradient norm plots) every N "
                            "steps, like a Debugger hook's save_interval; the first PoorWeightInitialization steps "
                            "always")
    group.add_argument("--loss-interval-steps", type=bounded(int, 1, 1000000), default=500,
                       help="LossNotDecreasing sees the training loss saved every N steps, as SageMaker's rule "
                            "configuration saves its losses collection (save_interval 500); the value saved is the "
                            "mean loss of those N steps, not one minibatch's")
    group.add_argument("--profile-steps", type=_step_window, default=None, metavar="FIRST-LAST",
                       help="trace these training steps (1-based, inclusive) with torch.profiler")
    rules = parser.add_argument_group("rule thresholds (SageMaker's built-in rule parameters and defaults)")
    for rule_type in RULE_TYPES:
        for field in dataclasses.fields(rule_type):
            kind = field.type if isinstance(field.type, type) else {"int": int, "float": float, "bool": bool,
                                                                     "str": str}[field.type]
            choices = field.metadata.get("choices")
            parse = str_to_bool if kind is bool else (lambda v: str(v).strip().upper()) if choices else \
                bounded(kind, 0, 1e12)
            rules.add_argument(f"--{flag_name(rule_type, field.name)}", type=parse, default=field.default,
                               choices=choices, dest=f"rule__{rule_type.__name__}__{field.name}",
                               help=f"{rule_type.__name__}")


def settings_from(namespace: argparse.Namespace) -> DiagnosticsSettings:
    values = vars(namespace)
    rules = tuple(rule_type(**{field.name: values[f"rule__{rule_type.__name__}__{field.name}"]
                               for field in dataclasses.fields(rule_type)}) for rule_type in RULE_TYPES)
    return DiagnosticsSettings(enabled=values["diagnostics"], sample_interval_ms=values["profiler_interval_ms"],
                               gradient_interval=values["gradient_interval_steps"],
                               loss_interval=values["loss_interval_steps"],
                               profile_steps=values["profile_steps"], rules=rules)


def _step_window(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[-:]\s*(\d+)\s*", value)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST training steps, 1 <= FIRST <= LAST, got {value!r}")
    return int(match[1]), int(match[2])
