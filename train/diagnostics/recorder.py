"""Fills a RunRecord from inside the training loop; the engine calls it at each phase boundary.

Every step: the loss and the phase timings. Every `gradient_interval` steps (a Debugger hook's
save_interval): per parameter tensor the mean absolute gradient and the L2 norm (two fused
foreach reductions; on a trainable ResNet-50 they cost ~26 ms on 2 CPU cores, too much for
every step). Over the first PoorWeightInitialization.steps steps, all of them: the gradients,
their spread and the variance of every ReLU's input (hooks and quantiles, removed afterwards).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from train.diagnostics.record import GradientRecord, RunRecord, StepRecord
from train.diagnostics.step_timer import StepTimer
from train.diagnostics.torch_profile import ProfileWindow

SPREAD_SAMPLE = 200_000  # gradient values sampled for the 5th-95th percentile spread


class StepObserver:
    """What the engine calls; this base does nothing (ranks other than 0, diagnostics off)."""

    def batches(self, loader: Iterable) -> Iterator:
        return iter(loader)

    def end_of(self, phase: str) -> None:
        pass

    def step_done(self, loss: torch.Tensor, scaler: torch.amp.GradScaler) -> None:
        pass


class Recorder(StepObserver):
    def __init__(self, record: RunRecord, model: nn.Module, device: torch.device, first_steps: int,
                 gradient_interval: int, profile: ProfileWindow):
        self.record, self.profile = record, profile
        self.timer = StepTimer(device)
        self.first_steps, self.gradient_interval = first_steps, gradient_interval
        self.named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.groups = [layer_group(name) for name, _ in self.named]
        self.step, self.epoch, self._epoch_first = 0, 0, False
        self._relu_handles = [module.register_forward_pre_hook(self._relu_input(name))
                              for name, module in _trained_relus(model)]
        self._capturing = False
        self._relu_calls: dict[str, int] = {}
        self._scale: float | None = None

    def start_epoch(self, epoch: int, global_step: int) -> None:
        self.epoch, self.step, self._epoch_first = epoch, global_step, True

    def batches(self, loader: Iterable) -> Iterator:
        iterator = iter(loader)
        while True:
            self.timer.waiting_for_batch()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.timer.batch_ready()
            self.profile.before_step(self.step + 1)
            self._capturing = self.step < self.first_steps
            self._relu_calls = {}
            yield batch

    def end_of(self, phase: str) -> None:
        self.timer.end_of(phase)
        if phase == "forward":
            self._capturing = False

    def step_done(self, loss: torch.Tensor, scaler: torch.amp.GradScaler) -> None:
        self.step += 1
        loss_value = loss.item()
        self.record.steps.append(StepRecord(step=self.step, epoch=self.epoch, loss=loss_value,
                                            seconds=self.timer.seconds(), first_of_epoch=self._epoch_first))
        self._epoch_first = False
        if not math.isfinite(loss_value):
            self.record.nonfinite_losses.append((self.step, loss_value))
        if self.step <= self.first_steps or self.step % self.gradient_interval == 0:
            self.record.gradients.append(self._gradients(scaler))
        if self.step == self.first_steps:
            self.remove_hooks()
        self.profile.after_step(self.step)

    def remove_hooks(self) -> None:
        for handle in self._relu_handles:
            handle.remove()
        self._relu_handles = []

    def _gradients(self, scaler: torch.amp.GradScaler) -> GradientRecord:
        present = [(name, group, p.grad) for (name, p), group in zip(self.named, self.groups, strict=True)
                   if p.grad is not None]
        grads = [g.detach() for _, _, g in present]
        if not grads:
            return GradientRecord(step=self.step, mean_abs={}, group_norms={})
        l1 = torch._foreach_norm(grads, 1)
        l2 = torch._foreach_norm(grads, 2)
        sums = torch.stack(l1).double().cpu().tolist()
        norms = torch.stack(l2).double().cpu().tolist()
        mean_abs = {name: total / g.numel() for (name, _, g), total in zip(present, sums, strict=True)}
        squares: dict[str, float] = {}
        for (_, group, _), norm in zip(present, norms, strict=True):
            squares[group] = squares.get(group, 0.0) + norm * norm
        record = GradientRecord(step=self.step, mean_abs=mean_abs,
                                group_norms={group: math.sqrt(total) for group, total in squares.items()},
                                skipped_by_scaler=self._scaler_skipped(scaler))
        if self.step <= self.first_steps:
            record.spread = _percentile_spread(grads)
        return record

    def _scaler_skipped(self, scaler: torch.amp.GradScaler) -> bool:
        """fp16 loss scaling skips a step whose gradients overflowed and lowers the scale: expected, not
        an explosion (the scaler's own inf check, seen through the scale it lowered)."""
        if not scaler.is_enabled():
            return False
        previous = self._scale if self._scale is not None else scaler._init_scale
        self._scale = scaler.get_scale()
        return self._scale < previous

    def _relu_input(self, name: str):
        def hook(_module, inputs):
            if self._capturing and inputs and torch.is_tensor(inputs[0]):
                # torchvision's blocks call one ReLU module several times: one layer per call
                call = self._relu_calls.get(name, 0)
                self._relu_calls[name] = call + 1
                key = f"{name}#{call + 1}" if call else name
                variance = inputs[0].detach().float().var().item()
                self.record.activation_variances.setdefault(key, []).append(variance)
        return hook


def _trained_relus(model: nn.Module) -> list[tuple[str, nn.Module]]:
    frozen = getattr(model, "backbone_frozen", False)
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, nn.ReLU) and not (frozen and name.startswith("backbone."))]


def layer_group(parameter_name: str) -> str:
    """stem / layer1..layer4 / head: the groups the report plots gradient norms for."""
    parts = parameter_name.split(".")
    if parts[0] == "backbone":
        return parts[1] if parts[1].startswith("layer") else "stem"
    return parts[0]


def _percentile_spread(grads: list[torch.Tensor]) -> float:
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    if flat.numel() > SPREAD_SAMPLE:
        flat = flat[:: math.ceil(flat.numel() / SPREAD_SAMPLE)]
    low, high = torch.quantile(flat, torch.tensor([0.05, 0.95], device=flat.device)).tolist()
    return high - low
