"""SageMaker Debugger's built-in rules, evaluated in-process on a RunRecord.

Same names, parameters and defaults as SageMaker's (see settings.py), so results compare.
Where this program's signals differ from an smdebug trial, the rule says how in its docstring:
validation runs once an epoch, so the rules that compare with validation count epochs.
Each returns IssuesFound, NoIssuesFound, or NotApplicable when the run lacks what it needs.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from train.diagnostics import settings as s
from train.diagnostics.record import RunRecord

ISSUES, NO_ISSUES, NOT_APPLICABLE = "IssuesFound", "NoIssuesFound", "NotApplicable"


@dataclasses.dataclass(frozen=True)
class RuleResult:
    rule: str
    status: str
    message: str
    parameters: dict

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def evaluate_rules(rules: tuple, record: RunRecord, loss_interval: int = 500) -> list[RuleResult]:
    """`loss_interval`: the steps at which the training loss counts as saved (LossNotDecreasing, Overfit)."""
    results = []
    for params in rules:
        evaluate = _EVALUATORS[type(params)]
        if isinstance(params, (s.LossNotDecreasing, s.Overfit)):
            status, message = evaluate(params, record, loss_interval)
        else:
            status, message = evaluate(params, record)
        results.append(RuleResult(type(params).__name__, status, message, dataclasses.asdict(params)))
    return results


def loss_not_decreasing(p: s.LossNotDecreasing, record: RunRecord, loss_interval: int):
    """SageMaker's definition: the loss is checked at saved steps at least num_steps apart, each check
    against the check before; it should have fallen by diff_percent, and when it rises it may rise by
    at most increase_threshold_percent. AWS documents these parameters, not how they combine; here a
    rise beyond increase_threshold_percent is an issue, and so is a check that does not fall by
    diff_percent while the loss has not fallen by diff_percent since the first check (stuck from the
    start). A stall or a small bump after the loss has come down is a plateau, not reported: whether
    to stop there is Overtraining's question (validation loss).

    mode GLOBAL or TRAIN: the training loss (this program's global steps are its training steps),
    saved every loss_interval steps as the mean of those steps; SageMaker saves one minibatch's loss,
    whose noise alone trips a 5 % threshold. EVAL: the validation loss, one saved step per epoch."""
    if p.mode == "EVAL":
        saved = [(e.epoch, e.valid_loss) for e in record.epochs]
        unit, every = "validation pass", max(1, p.num_steps)
    else:
        losses = [step.loss for step in record.steps]
        interval = max(1, loss_interval)
        saved = [(end, float(np.mean(losses[end - interval:end])))
                 for end in range(interval, len(losses) + 1, interval)]
        unit, every = "step", math.ceil(max(1, p.num_steps) / interval)
        if len(saved) < every + 1:
            return NOT_APPLICABLE, (f"{len(losses)} training steps; the loss is saved every {interval} steps "
                                    f"(--loss-interval-steps) and compared {every * interval} steps apart: "
                                    f"needs {(every + 1) * interval}")
    checks = saved[::every]
    if len(checks) < 2:
        return NOT_APPLICABLE, (f"{len(saved)} validation pass(es); num_steps={p.num_steps} compares passes that "
                                f"far apart")
    first = checks[0][1]
    fell = 1 - p.diff_percent / 100
    for (before_at, before), (now_at, now) in itertools.pairwise(checks):
        change = 100 * (now - before) / max(abs(before), 1e-12)
        where = f"{unit} {now_at}: loss {now:.4f} against {before:.4f} at {unit} {before_at}"
        if not math.isfinite(now) or change > p.increase_threshold_percent:
            return ISSUES, (f"{where}, up {change:.1f}% (more than increase_threshold_percent="
                            f"{p.increase_threshold_percent:g}): the loss is rising")
        if now > before * fell and now > first * fell:
            return ISSUES, (f"{where} ({change:+.2f}%): not down by diff_percent={p.diff_percent:g}%, and no lower "
                            f"than at the first check ({first:.4f}): the loss is stuck")
    return NO_ISSUES, (f"{len(checks)} checks, {unit} {checks[0][0]} to {checks[-1][0]}: loss {first:.4f} -> "
                       f"{checks[-1][1]:.4f}, no rise over {p.increase_threshold_percent:g}%")


def overfit(p: s.Overfit, record: RunRecord, loss_interval: int):
    """(valid loss - train loss) / train loss over ratio_threshold for `patience` validation passes in a row.

    Only passes after the first `loss_interval` training steps are evidence: SageMaker's rule compares losses
    saved that often (500 steps by default), and before then a pass compares the model with an epoch's average
    over a model that was still moving (BatchNorm's running statistics settling), not a generalisation gap."""
    epochs = [e for e in record.epochs if e.epoch > p.start_step and e.last_step >= loss_interval]
    if len(epochs) < p.patience:
        return NOT_APPLICABLE, (f"{len(epochs)} validation pass(es) after step {loss_interval} (the loss interval) "
                                f"and epoch start_step={p.start_step}; patience={p.patience} needs {p.patience}")
    streak = 0
    for e in epochs:
        ratio = (e.valid_loss - e.train_loss) / max(e.train_loss, 1e-12)
        streak = streak + 1 if ratio > p.ratio_threshold else 0
        if streak >= p.patience:
            return ISSUES, (f"epoch {e.epoch}: validation loss {e.valid_loss:.4f} is {ratio:.0%} above training "
                            f"loss {e.train_loss:.4f} (threshold {p.ratio_threshold:.0%}, {p.patience} epoch(s))")
    return NO_ISSUES, (f"validation loss stayed within {p.ratio_threshold:.0%} of training loss in {len(epochs)} "
                       f"pass(es) from step {loss_interval} on")


def overtraining(p: s.Overtraining, record: RunRecord):
    """Training loss still improving (by delta, within patience_train epochs) while validation loss
    has not improved by delta for patience_validation epochs: train longer and it only gets worse."""
    if len(record.epochs) <= p.patience_validation:
        return NOT_APPLICABLE, (f"{len(record.epochs)} epoch(s); needs more than patience_validation="
                                f"{p.patience_validation}")
    valid_since = _epochs_since_improvement([e.valid_loss for e in record.epochs], p.delta)
    train_since = _epochs_since_improvement([e.train_loss for e in record.epochs], p.delta)
    if valid_since >= p.patience_validation and train_since < p.patience_train:
        return ISSUES, (f"validation loss has not improved by {p.delta:g} for {valid_since} epochs while "
                        f"training loss still improves: stop earlier (the best epoch's model is the one exported)")
    return NO_ISSUES, f"validation loss last improved {valid_since} epoch(s) before the end"


def vanishing_gradient(p: s.VanishingGradient, record: RunRecord):
    """Any trainable parameter tensor whose mean absolute gradient fell below threshold."""
    if not record.gradients:
        return NOT_APPLICABLE, "no gradients recorded"
    for g in record.gradients:
        vanished = sorted(name for name, value in g.mean_abs.items() if value < p.threshold)
        if vanished:
            return ISSUES, (f"step {g.step}: mean |gradient| below {p.threshold:g} in {len(vanished)} tensor(s), "
                            f"e.g. {', '.join(vanished[:3])}")
    return NO_ISSUES, f"every gradient tensor kept a mean |gradient| above {p.threshold:g}"


def exploding_tensor(p: s.ExplodingTensor, record: RunRecord):
    """NaN (and, unless only_nan, infinity) in a training loss or a gradient. Overflows that fp16 loss
    scaling caught and skipped are its normal working, not reported."""
    bad = (lambda v: math.isnan(v)) if p.only_nan else (lambda v: not math.isfinite(v))
    for step, value in record.nonfinite_losses:
        if bad(value):
            return ISSUES, f"step {step}: the training loss is {value}"
    for g in record.gradients:
        if g.skipped_by_scaler:
            continue
        broken = sorted(name for name, value in g.mean_abs.items() if bad(value))
        if broken:
            return ISSUES, f"step {g.step}: non-finite gradients in {', '.join(broken[:3])}"
    if not record.steps:
        return NOT_APPLICABLE, "no training steps"
    return NO_ISSUES, f"losses and gradients finite in all {len(record.steps)} steps"


def poor_weight_initialization(p: s.PoorWeightInitialization, record: RunRecord):
    """Over the first `steps` steps: ReLU input variances across layers (max/min over threshold),
    the gradients' 5th-95th percentile spread (under distribution_range), and the loss (no new
    minimum for `patience` steps). Only trained layers: a frozen backbone's ReLUs are not judged."""
    first = record.steps[: p.steps]
    if len(first) < min(p.steps, p.patience + 1):
        return NOT_APPLICABLE, f"{len(first)} training steps; the rule analyses the first {p.steps}"
    issues = []
    layers = {name: float(np.mean(v)) for name, v in record.activation_variances.items() if v}
    if len(layers) >= 2:
        low, high = min(layers, key=layers.get), max(layers, key=layers.get)
        ratio = layers[high] / max(layers[low], 1e-30)
        if ratio > p.threshold:
            issues.append(f"ReLU input variance ranges {ratio:.3g}x across layers ({low}: {layers[low]:.3g}, "
                          f"{high}: {layers[high]:.3g}; threshold {p.threshold:g}x)")
    # a spread under the range counts once it holds for `patience` recorded steps in a row, not one step's dip
    spreads = [g.spread for g in record.gradients[: p.steps] if g.spread is not None]
    narrow = _longest_run(spreads, lambda spread: spread < p.distribution_range)
    if narrow >= p.patience:
        issues.append(f"gradient 5th-95th percentile spread under {p.distribution_range:g} for {narrow} steps in a row "
                      f"(lowest {min(spreads):.3g}; patience {p.patience})")
    losses = [step.loss for step in first]
    best_at = int(np.nanargmin(losses)) if not all(math.isnan(v) for v in losses) else 0
    if len(losses) - 1 - best_at >= p.patience:
        issues.append(f"loss had no new minimum in steps {best_at + 2}-{len(losses)} (patience {p.patience})")
    if issues:
        return ISSUES, "; ".join(issues)
    checked = "ReLU variances, " if len(layers) >= 2 else ""
    return NO_ISSUES, f"{checked}gradient spread and loss of the first {len(first)} steps look healthy"


def class_imbalance(p: s.ClassImbalance, record: RunRecord):
    """Train-split class counts (largest/smallest over threshold_imbalance), and each class's share of
    wrong predictions in the last validation pass (over threshold_misprediction, once `samples`
    validation labels exist)."""
    counts = record.train_class_counts
    if not counts:
        return NOT_APPLICABLE, "no class counts"
    issues = []
    largest, smallest = max(counts), max(min(counts), 1)
    if largest / smallest > p.threshold_imbalance:
        big, small = counts.index(largest), counts.index(min(counts))
        issues.append(f"train split: {record.classes[big]} has {largest} images, {record.classes[small]} "
                      f"{min(counts)} ({largest / smallest:.1f}x > {p.threshold_imbalance:g}x)")
    confusion = np.array(record.valid_confusion or [[0]])
    judged = f"largest/smallest class {largest / smallest:.1f}x"
    if confusion.sum() >= p.samples:
        per_class = confusion.sum(1)
        wrong = 1 - np.diag(confusion) / np.maximum(per_class, 1)
        worst = [i for i in np.argsort(-wrong) if per_class[i] and wrong[i] > p.threshold_misprediction]
        if worst:
            names = ", ".join(f"{record.classes[i]} {wrong[i]:.0%}" for i in worst[:3])
            issues.append(f"{len(worst)} class(es) mostly mispredicted in validation: {names}")
        judged += f", no class mispredicted over {p.threshold_misprediction:.0%}"
    else:
        judged += f" (mispredictions not judged: {int(confusion.sum())} validation labels < samples={p.samples})"
    return (ISSUES, "; ".join(issues)) if issues else (NO_ISSUES, judged)


def low_gpu_utilization(p: s.LowGPUUtilization, record: RunRecord):
    """Per GPU, in windows of `window` samples after the first `patience`: p95 under threshold_p95
    (underused), or p95 over it and p5 under threshold_p5 (fluctuating)."""
    if record.device != "cuda":
        return NOT_APPLICABLE, "no GPU in this run"
    samples = [x.gpu_percent for x in record.system[p.patience:] if x.gpu_percent]
    if len(samples) < p.window:
        return NOT_APPLICABLE, (f"{len(samples)} GPU samples after the first {p.patience}; needs a window of "
                                f"{p.window}")
    values = np.array(samples)
    for gpu in range(values.shape[1]):
        for start in range(0, len(values) - p.window + 1, p.window):
            window = values[start:start + p.window, gpu]
            p95, p5 = np.percentile(window, 95), np.percentile(window, 5)
            if p95 < p.threshold_p95:
                return ISSUES, f"GPU {gpu}: p95 utilisation {p95:.0f}% < {p.threshold_p95:g}%: underused"
            if p5 < p.threshold_p5:
                return ISSUES, f"GPU {gpu}: utilisation fluctuates, p95 {p95:.0f}% but p5 {p5:.0f}%"
    return NO_ISSUES, f"GPU utilisation p95 >= {p.threshold_p95:g}% in every window"


def cpu_bottleneck(p: s.CPUBottleneck, record: RunRecord):
    """The input pipeline starving the compute: training steps spending over `threshold` % of their
    time waiting for the next batch (the first step of each epoch, which starts the loader workers,
    is left out); on GPU also SageMaker's form, samples with GPU under gpu_threshold while CPU is
    over cpu_threshold, over `threshold` % of the samples after `patience`."""
    steps = [step for step in record.steps if not step.first_of_epoch]
    if not steps:
        return NOT_APPLICABLE, "no training steps after the first of an epoch"
    waiting = sum(step.seconds.get("data_wait", 0.0) for step in steps)
    share = 100 * waiting / max(sum(step.total_seconds for step in steps), 1e-12)
    if share > p.threshold:
        return ISSUES, (f"{share:.0f}% of training step time waiting for batches (> {p.threshold:g}%): more "
                        "--num-workers, smaller images on disk, or cached features")
    message = f"{share:.0f}% of training step time waiting for batches"
    gpu = [x for x in record.system[p.patience:] if x.gpu_percent]
    if gpu:
        starved = sum(1 for x in gpu if min(x.gpu_percent) < p.gpu_threshold and x.cpu_percent > p.cpu_threshold)
        if 100 * starved / len(gpu) > p.threshold:
            return ISSUES, (f"GPU under {p.gpu_threshold:g}% while CPU over {p.cpu_threshold:g}% in "
                            f"{100 * starved / len(gpu):.0f}% of samples")
        message += f"; GPU starved by CPU in {100 * starved / len(gpu):.0f}% of samples"
    return NO_ISSUES, message


def step_outlier(p: s.StepOutlier, record: RunRecord):
    """Training steps longer than mean + stddev x standard deviation, more than n_outliers of them
    (like SageMaker's, judged once over 100 steps exist)."""
    durations = np.array([step.total_seconds for step in record.steps])
    if len(durations) <= 100:
        return NOT_APPLICABLE, f"{len(durations)} training steps; judged from 101"
    limit = durations.mean() + p.stddev * durations.std()
    outliers = [record.steps[i].step for i in np.flatnonzero(durations > limit)]
    detail = (f"{len(outliers)} step(s) over {limit * 1000:.1f} ms (mean {durations.mean() * 1000:.1f} ms + "
              f"{p.stddev:g} x {durations.std() * 1000:.1f} ms)")
    if len(outliers) > p.n_outliers:
        return ISSUES, f"{detail}, more than {p.n_outliers}: steps {', '.join(map(str, outliers[:10]))}"
    return NO_ISSUES, detail


def _longest_run(values: list, holds) -> int:
    longest = current = 0
    for value in values:
        current = current + 1 if holds(value) else 0
        longest = max(longest, current)
    return longest


def _epochs_since_improvement(losses: list[float], delta: float) -> int:
    best, since = math.inf, 0
    for loss in losses:
        if loss < best - delta:
            best, since = loss, 0
        else:
            since += 1
    return since


_EVALUATORS = {
    s.LossNotDecreasing: loss_not_decreasing, s.Overfit: overfit, s.Overtraining: overtraining,
    s.VanishingGradient: vanishing_gradient, s.ExplodingTensor: exploding_tensor,
    s.PoorWeightInitialization: poor_weight_initialization, s.ClassImbalance: class_imbalance,
    s.LowGPUUtilization: low_gpu_utilization, s.CPUBottleneck: cpu_bottleneck, s.StepOutlier: step_outlier,
}
