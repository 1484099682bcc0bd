"""One training epoch and one evaluation pass, flat and readable (after torchvision's references)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from train import distributed
from train.diagnostics.recorder import StepObserver
from train.progress import Progress


@dataclasses.dataclass
class RunningTotals:
    """Sums over the batches seen so far; kept in checkpoints to resume mid-epoch."""

    loss_sum: float = 0.0
    correct: int = 0
    count: int = 0
    seconds: float = 0.0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss_sum += loss.item() * labels.numel()
        self.correct += (logits.argmax(1) == labels).sum().item()
        self.count += labels.numel()

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.count)

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.count)


@dataclasses.dataclass(frozen=True)
class Precision:
    """How batches reach the network: channels_last everywhere, autocast (bf16, else fp16) on CUDA.

    channels_last also pays on CPU: oneDNN's convolutions ran ResNet-50 1.6x faster with it
    on the 2-core CI machine, while CPU bf16 autocast (no AVX512-BF16/AMX there) was 6x slower.
    """

    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool

    @classmethod
    def for_device(cls, device: torch.device) -> Precision:
        if device.type != "cuda":
            return cls(device, None, True)
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return cls(device, dtype, True)

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def prepare(self, inputs: torch.Tensor, normalize: nn.Module | None) -> torch.Tensor:
        """A uint8 image batch -> normalised float on the device; with normalize=None (cached features) as is."""
        inputs = inputs.to(self.device, non_blocking=True)
        if normalize is None:
            return inputs
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return normalize(inputs)


class StopRequested(Exception):
    """Raised between steps once a stop was requested; the caller checkpoints."""


def train_one_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    precision: Precision, normalize: nn.Module | None, totals: RunningTotals, start_step: int,
                    stop_requested: Callable[[], bool], progress: Progress,
                    criterion: nn.Module | None = None, observer: StepObserver | None = None) -> RunningTotals:
    """Train on the batches from `start_step` on; `totals` carries the epoch's sums in and out.

    `criterion`: a mean cross-entropy module (the one a Debugger hook watches), else a new one.
    `observer`: told where each phase of a step ends (the profiler and the rules' recorder).
    """
    criterion = nn.CrossEntropyLoss() if criterion is None else criterion
    observer = StepObserver() if observer is None else observer
    model.train()
    step = start_step
    started = time.perf_counter()
    try:
        for images, labels in observer.batches(loader):
            images = precision.prepare(images, normalize)
            labels = labels.to(precision.device, non_blocking=True)
            with precision.autocast():
                logits = model(images)
                loss = criterion(logits.float(), labels)
            observer.end_of("forward")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            observer.end_of("backward")
            scaler.step(optimizer)
            scaler.update()
            observer.end_of("optimizer")
            totals.add(loss.detach(), logits.detach(), labels)
            observer.step_done(loss.detach(), scaler)
            step += 1
            progress.update(step, loss=totals.loss, accuracy=totals.accuracy)
            if distributed.any_rank(stop_requested(), precision.device):
                raise StopRequested(step)
    finally:
        totals.seconds += time.perf_counter() - started
    return totals


class Evaluation(NamedTuple):
    loss: float
    accuracy: float
    confusion: torch.Tensor  # [true, predicted] counts
    predictions: torch.Tensor | None = None  # (images, 2): predicted class, its probability; in file order


@torch.no_grad()
def evaluate(model: nn.Module, loader, precision: Precision, normalize: nn.Module | None, num_classes: int,
             progress: Progress, criterion: nn.Module | None = None,
             per_image_of: int | None = None) -> Evaluation:
    """(loss, accuracy, confusion matrix[true, predicted]) over the whole split, all ranks summed; with
    `per_image_of` (the split's image count), also every image's predicted class and its probability, all
    ranks gathered in file order (each rank evaluates every world-th image: see loaders.EpochSampler).

    It does not stop early on SIGTERM: ranks hold different numbers of eval batches, so a
    per-step agreement to stop could deadlock; eval is short, and the caller checks after it.
    `criterion` is training's mean cross-entropy (so a Debugger hook sees validation losses too).
    """
    criterion = nn.CrossEntropyLoss() if criterion is None else criterion
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=precision.device)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=precision.device)
    per_image = []
    for step, (images, labels) in enumerate(loader, start=1):
        images = precision.prepare(images, normalize)
        labels = labels.to(precision.device, non_blocking=True)
        with precision.autocast():
            logits = model(images).float()
        loss_sum += criterion(logits, labels).double() * labels.numel()
        pairs = labels * num_classes + logits.argmax(1)
        confusion += torch.bincount(pairs, minlength=num_classes * num_classes).view(num_classes, num_classes)
        if per_image_of is not None:
            probability, predicted = torch.softmax(logits, 1).max(1)
            per_image.append(torch.stack([predicted.double(), probability.double()], 1))
        progress.update(step)
    distributed.all_reduce_sum(loss_sum)
    distributed.all_reduce_sum(confusion)
    count = confusion.sum().item()
    accuracy = confusion.diag().sum().item() / max(1, count)
    predictions = None
    if per_image_of is not None:
        local = torch.cat(per_image) if per_image else torch.zeros((0, 2), dtype=torch.float64,
                                                                   device=precision.device)
        predictions = (distributed.gather_strided(local, per_image_of) if distributed.rank_and_world()[1] > 1
                       else local).cpu()
    return Evaluation(loss_sum.item() / max(1, count), accuracy, confusion.cpu(), predictions)
