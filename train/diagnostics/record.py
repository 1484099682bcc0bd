"""The numbers one training run leaves behind; the rules, the report and diagnostics.json read only this."""

from __future__ import annotations

import dataclasses

PHASES = ("data_wait", "forward", "backward", "optimizer")


@dataclasses.dataclass
class StepRecord:
    step: int  # global training step, 1-based
    epoch: int  # 1-based
    loss: float
    seconds: dict[str, float]  # per phase in PHASES
    first_of_epoch: bool = False  # its data wait includes starting the loader workers

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


@dataclasses.dataclass
class GradientRecord:
    step: int
    mean_abs: dict[str, float]  # per parameter tensor
    group_norms: dict[str, float]  # L2 norm per layer group (stem, layer1..4, head)
    spread: float | None = None  # 95th - 5th percentile of all gradient values (first steps only)
    skipped_by_scaler: bool = False  # fp16 loss scaling found inf/NaN and skipped the step: not an explosion


@dataclasses.dataclass
class SystemSample:
    seconds: float  # since the run started
    cpu_percent: float
    memory_percent: float
    gpu_percent: list[float] = dataclasses.field(default_factory=list)  # one per visible GPU
    gpu_memory_percent: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class EpochRecord:
    epoch: int
    last_step: int
    train_loss: float
    valid_loss: float
    train_accuracy: float
    valid_accuracy: float


@dataclasses.dataclass
class RunRecord:
    device: str  # "cpu" or "cuda"
    classes: list[str] = dataclasses.field(default_factory=list)
    train_class_counts: list[int] = dataclasses.field(default_factory=list)
    steps: list[StepRecord] = dataclasses.field(default_factory=list)
    gradients: list[GradientRecord] = dataclasses.field(default_factory=list)
    # variance of each ReLU's input per step, over the first steps: {layer name: [variance, ...]}
    activation_variances: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    epochs: list[EpochRecord] = dataclasses.field(default_factory=list)
    valid_confusion: list[list[int]] | None = None  # the last validation pass, [true][predicted]
    system: list[SystemSample] = dataclasses.field(default_factory=list)
    nonfinite_losses: list[tuple[int, float]] = dataclasses.field(default_factory=list)  # (step, value)
    torch_profile_table: str | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
