"""In-process rules, profiler, report and TensorBoard output, driven by small real training runs.

Each run is the real training program on data the test makes; each is built to trip one rule
(a huge learning rate, a model memorising a tiny train set, NaN weights, ...) and others to
stay quiet. Rules that judge time (CPUBottleneck, StepOutlier, LowGPUUtilization) are tested on
hand-made records: a real run's step times are the machine's and its load's, and GPU paths cannot
run here; real runs only show that those rules judged.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from conftest import FAST_FLAGS, run_train

from train.diagnostics import settings
from train.diagnostics.record import EpochRecord, GradientRecord, RunRecord, StepRecord, SystemSample
from train.diagnostics.rules import ISSUES, NO_ISSUES, NOT_APPLICABLE, evaluate_rules
from train.errors import UsageError
from train.hyperparameters import parse_args
from train.sample_data import CLASSES, draw_example, make_sample_dataset

RULE_NAMES = ["LossNotDecreasing", "Overfit", "Overtraining", "VanishingGradient", "ExplodingTensor",
              "PoorWeightInitialization", "ClassImbalance", "LowGPUUtilization", "CPUBottleneck", "StepOutlier"]


# -- flags --------------------------------------------------------------------------------------


def test_rule_flags_carry_sagemakers_names_and_defaults():
    _, _, namespace = parse_args([])
    found = settings.settings_from(namespace)
    assert [type(rule).__name__ for rule in found.rules] == RULE_NAMES
    by_name = {type(rule).__name__: rule for rule in found.rules}
    # SageMaker's documented defaults
    assert by_name["Overfit"] == settings.Overfit(start_step=0, patience=1, ratio_threshold=0.1)
    assert by_name["VanishingGradient"].threshold == 1e-7
    assert by_name["Overtraining"] == settings.Overtraining(patience_train=5, patience_validation=10, delta=0.01)
    assert by_name["PoorWeightInitialization"] == settings.PoorWeightInitialization(10.0, 0.001, 5, 10)
    assert by_name["ClassImbalance"] == settings.ClassImbalance(10.0, 0.7, 500)
    assert by_name["LowGPUUtilization"] == settings.LowGPUUtilization(70, 10, 500, 1000)
    assert by_name["CPUBottleneck"] == settings.CPUBottleneck(50, 10, 90, 1000)
    assert by_name["StepOutlier"] == settings.StepOutlier(3, 10)
    assert found.enabled and found.sample_interval_ms == 500 and found.profile_steps is None


def test_rule_flags_set_thresholds_the_way_sagemaker_passes_hyperparameters():
    _, _, namespace = parse_args(["--overfit-ratio-threshold", "0.25", "--low-gpu-utilization-threshold-p95", "60",
                                  "--step-outlier-n-outliers", "2", "--exploding-tensor-only-nan", "True",
                                  "--profile-steps", "5-8", "--diagnostics", "false"])
    found = settings.settings_from(namespace)
    assert found.rule(settings.Overfit).ratio_threshold == 0.25
    assert found.rule(settings.LowGPUUtilization).threshold_p95 == 60
    assert found.rule(settings.StepOutlier).n_outliers == 2
    assert found.rule(settings.ExplodingTensor).only_nan is True
    assert found.profile_steps == (5, 8) and not found.enabled


@pytest.mark.parametrize(("args", "flag"), [(["--profile-steps", "8-5"], "--profile-steps"),
                                            (["--overfit-patience", "-1"], "--overfit-patience"),
                                            (["--cpu-bottleneck-threshold", "lots"], "--cpu-bottleneck-threshold")])
def test_bad_diagnostics_flags_name_the_flag(args, flag):
    with pytest.raises(UsageError, match=re.escape(flag)):
        parse_args(args)


# -- LossNotDecreasing on hand-made loss curves: its definition, case by case ----------------------


def _losses(values) -> RunRecord:
    record = RunRecord(device="cpu")
    record.steps = [StepRecord(i + 1, 1, float(v), {}) for i, v in enumerate(values)]
    return record


def _loss_rule(values, interval=500, **parameters) -> tuple[str, str]:
    result = evaluate_rules((settings.LossNotDecreasing(**parameters),), _losses(values), interval)[0]
    return result.status, result.message


def test_loss_not_decreasing_keeps_sagemakers_parameters_and_defaults():
    # AWS's list of built-in rules: num_steps 10, diff_percent 0.1, increase_threshold_percent 5, mode GLOBAL;
    # the losses collection saved every 500 steps in the rule's own configuration
    assert settings.LossNotDecreasing() == settings.LossNotDecreasing(10, 0.1, 5.0, "GLOBAL")
    assert settings.DiagnosticsSettings().loss_interval == 500
    _, _, namespace = parse_args(["--loss-not-decreasing-mode", "eval", "--loss-interval-steps", "50",
                                  "--loss-not-decreasing-increase-threshold-percent", "2"])
    found = settings.settings_from(namespace)
    assert found.rule(settings.LossNotDecreasing) == settings.LossNotDecreasing(10, 0.1, 2.0, "EVAL")
    assert found.loss_interval == 50
    with pytest.raises(UsageError, match="--loss-not-decreasing-mode"):
        parse_args(["--loss-not-decreasing-mode", "sometimes"])


def test_loss_not_decreasing_is_quiet_on_minibatch_noise_around_a_falling_loss():
    rng = np.random.default_rng(0)
    steps = np.arange(3000)
    # a loss falling from 2.0 towards 0.5, each minibatch +-30 %: 10-step means rise by more than 5 % often
    noisy = (0.5 + 1.5 * np.exp(-steps / 800)) * rng.uniform(0.7, 1.3, steps.size)
    windows = noisy[:3000].reshape(-1, 10).mean(1)
    assert (np.diff(windows) / windows[:-1] > 0.05).sum() > 20
    status, message = _loss_rule(noisy)
    assert status == NO_ISSUES and "6 checks" in message
    # the same curve flattening out after it came down: a plateau, not a stuck loss
    plateau = np.concatenate([noisy, np.full(3000, 0.55) * rng.uniform(0.7, 1.3, 3000)])
    assert _loss_rule(plateau)[0] == NO_ISSUES


def test_loss_not_decreasing_finds_a_loss_stuck_from_the_start_and_a_rising_one():
    rng = np.random.default_rng(1)
    stuck = 1.386 * rng.uniform(0.7, 1.3, 2000)
    status, message = _loss_rule(stuck)
    assert status == ISSUES and "stuck" in message and "step 1000" in message
    rising = np.concatenate([np.linspace(2.0, 1.0, 1000), np.linspace(1.0, 1.5, 1000)]) * rng.uniform(0.9, 1.1, 2000)
    status, message = _loss_rule(rising)
    assert status == ISSUES and "rising" in message and "step 1500" in message
    # a rise within increase_threshold_percent after a fall is tolerated; past it, it is not
    bump = np.concatenate([np.full(500, 2.0), np.full(500, 1.0), np.full(500, 1.04)])
    assert _loss_rule(bump)[0] == NO_ISSUES
    assert _loss_rule(bump, increase_threshold_percent=3.0)[0] == ISSUES
    # a non-finite mean is an issue, and diff_percent is what "down" means
    assert _loss_rule(np.concatenate([np.full(500, 2.0), [np.nan] * 500]))[0] == ISSUES
    slow = np.concatenate([np.full(500, 2.0), np.full(500, 1.99)])  # down 0.5 %
    assert _loss_rule(slow)[0] == NO_ISSUES and _loss_rule(slow, diff_percent=1.0)[0] == ISSUES


def test_loss_not_decreasing_checks_saved_steps_num_steps_apart():
    # saved every 10 steps, num_steps 30: checks at saved steps 10, 40, 70, each at least num_steps after the
    # one before (AWS's example: saved every 3 steps, num_steps 10: steps 9, 21, 33); the rise at step 30
    # falls between checks, and is found when every saved step is checked
    values = [3.0] * 10 + [1.0] * 10 + [1.2] * 10 + [0.9] * 30 + [0.8] * 30
    status, message = _loss_rule(values, interval=10, num_steps=30)
    assert status == NO_ISSUES and "3 checks, step 10 to 70" in message
    status, message = _loss_rule(values, interval=10, num_steps=10)
    assert status == ISSUES and "step 30" in message and "rising" in message
    assert _loss_rule(values[:39], interval=10, num_steps=30)[0] == NOT_APPLICABLE  # saved 10, 20, 30: one check
    status, message = _loss_rule([1.0] * 999)
    assert status == NOT_APPLICABLE and "needs 1000" in message


def test_loss_not_decreasing_in_eval_mode_reads_the_validation_loss():
    record = _losses([2.0] * 10)  # a flat training loss: not what EVAL judges
    record.epochs = [EpochRecord(e, e, 1.0, valid, 0.5, 0.5)
                     for e, valid in enumerate([1.5, 1.2, 1.1, 1.3, 1.0], start=1)]

    def status(num_steps):
        return evaluate_rules((settings.LossNotDecreasing(num_steps=num_steps, mode="EVAL"),), record)[0]

    assert status(1).status == ISSUES and "validation pass 4" in status(1).message
    assert status(2).status == NO_ISSUES  # passes 1, 3, 5: 1.5 -> 1.1 -> 1.0
    assert status(10).status == NOT_APPLICABLE


# -- evidence: a rule with too little to judge says NotApplicable ------------------------------------


def _epochs(steps_per_epoch: int, losses: list[tuple[float, float]]) -> RunRecord:
    record = RunRecord(device="cpu")
    record.epochs = [EpochRecord(e, e * steps_per_epoch, train, valid, 0.5, 0.5)
                     for e, (train, valid) in enumerate(losses, start=1)]
    return record


def test_overfit_judges_only_validation_passes_after_the_loss_interval():
    rule = settings.Overfit()
    # the 12-step run that made issue 25: 19 % above in epoch 1 while BatchNorm settles, then nothing
    short = _epochs(3, [(1.10, 1.31), (0.79, 0.80), (0.40, 0.41), (0.05, 0.05)])
    result = evaluate_rules((rule,), short, loss_interval=500)[0]
    assert result.status == NOT_APPLICABLE and "0 validation pass(es) after step 500" in result.message
    # dogImages-sized epochs (104 steps): the gap of epochs 1-4 is not evidence, a lasting one from epoch 5 is
    long = _epochs(104, [(2.0, 2.5), (1.5, 1.8), (1.2, 1.3), (1.0, 1.05), (0.8, 1.0), (0.6, 0.9)])
    result = evaluate_rules((rule,), long, 500)[0]
    assert result.status == ISSUES and result.message.startswith("epoch 5:")
    settled = _epochs(104, [(2.0, 2.5), (1.5, 1.8), (1.2, 1.3), (1.0, 1.05), (0.8, 0.85), (0.6, 0.64)])
    assert evaluate_rules((rule,), settled, 500)[0].status == NO_ISSUES
    # patience counts judged passes in a row: one spike is not two
    spike = _epochs(104, [(1.0, 1.0)] * 4 + [(0.8, 1.0), (0.7, 0.72), (0.6, 0.8)])
    assert evaluate_rules((settings.Overfit(patience=2),), spike, 500)[0].status == NO_ISSUES
    assert evaluate_rules((settings.Overfit(patience=2),), _epochs(104, [(1.0, 1.0)] * 5), 500)[0].status == \
        NOT_APPLICABLE  # one pass after step 500, patience 2


def test_poor_weight_initialization_needs_a_narrow_gradient_spread_for_patience_steps_in_a_row():
    rule = settings.PoorWeightInitialization()
    record = RunRecord(device="cpu")
    record.steps = [StepRecord(i, 1, 2.0 - 0.1 * i, {}) for i in range(1, 11)]
    spreads = [0.01, 0.0008, 0.01, 0.0009, 0.01, 0.01, 0.0007, 0.01, 0.01, 0.01]  # dips, never 5 in a row
    record.gradients = [GradientRecord(i, {}, {}, spread) for i, spread in enumerate(spreads, start=1)]
    assert evaluate_rules((rule,), record)[0].status == NO_ISSUES
    for gradient in record.gradients[3:8]:
        gradient.spread = 0.0005
    result = evaluate_rules((rule,), record)[0]
    assert result.status == ISSUES and "under 0.001 for 5 steps in a row" in result.message


# -- GPU rules on hand-made records: no GPU on the machines these tests run on ------------------


def _gpu_record(gpu_percent, cpu_percent=50.0) -> RunRecord:
    record = RunRecord(device="cuda")
    record.system = [SystemSample(i * 0.5, cpu_percent, 30.0, [g], [40.0]) for i, g in enumerate(gpu_percent)]
    return record


def _status(rule, record) -> tuple[str, str]:
    result = evaluate_rules((rule,), record)[0]
    return result.status, result.message


def test_low_gpu_utilization_finds_underuse_and_fluctuation_after_the_start_up():
    rule = settings.LowGPUUtilization()
    rng = np.random.default_rng(0)
    start_up = [0.0] * 1000  # the patience window: ignored
    assert _status(rule, _gpu_record(start_up + list(rng.uniform(85, 99, 600))))[0] == NO_ISSUES
    status, message = _status(rule, _gpu_record(start_up + list(rng.uniform(20, 40, 600))))
    assert status == ISSUES and "underused" in message
    fluctuating = [95.0 if i % 5 else 0.0 for i in range(600)]
    status, message = _status(rule, _gpu_record(start_up + fluctuating))
    assert status == ISSUES and "fluctuates" in message
    assert _status(rule, _gpu_record([95.0] * 1200))[0] == NOT_APPLICABLE  # fewer than a window after patience
    assert _status(rule, RunRecord(device="cpu"))[0] == NOT_APPLICABLE


def test_cpu_bottleneck_in_sagemakers_gpu_form():
    rule = settings.CPUBottleneck()
    steps = [StepRecord(i, 1, 1.0, {"data_wait": 0.001, "forward": 0.01, "backward": 0.01, "optimizer": 0.001})
             for i in range(1, 50)]
    starved = _gpu_record([0.0] * 1000 + [5.0] * 600, cpu_percent=97.0)
    starved.steps = steps
    status, message = _status(rule, starved)
    assert status == ISSUES and "GPU under 10%" in message
    busy = _gpu_record([0.0] * 1000 + [90.0] * 600, cpu_percent=97.0)
    busy.steps = steps
    assert _status(rule, busy)[0] == NO_ISSUES


# -- timing rules on hand-made records: a real run's step times are the machine's, not the training's ---------


def _timed_steps(totals: list[float], data_wait_share: float = 0.1, first_of_epoch_every: int = 0) -> RunRecord:
    record = RunRecord(device="cpu")
    for step, total in enumerate(totals, start=1):
        wait = total * data_wait_share
        compute = (total - wait) / 3
        first = bool(first_of_epoch_every) and (step - 1) % first_of_epoch_every == 0
        record.steps.append(StepRecord(step, 1, 1.0, {"data_wait": wait, "forward": compute, "backward": compute,
                                                      "optimizer": compute}, first_of_epoch=first))
    return record


def test_cpu_bottleneck_judges_the_share_of_step_time_spent_waiting_for_batches():
    rule = settings.CPUBottleneck()
    status, message = _status(rule, _timed_steps([0.1] * 40, data_wait_share=0.6))
    assert status == ISSUES and message.startswith("60% of training step time waiting")
    assert _status(rule, _timed_steps([0.1] * 40, data_wait_share=0.4)) == (NO_ISSUES, "40% of training step time "
                                                                            "waiting for batches")
    # each epoch's first step starts the loader's workers: a long wait there is not the pipeline's pace
    started = _timed_steps([0.1] * 40, data_wait_share=0.2, first_of_epoch_every=10)
    for step in started.steps[::10]:
        step.seconds["data_wait"] = 30.0
    assert _status(rule, started)[0] == NO_ISSUES
    assert _status(rule, _timed_steps([0.1] * 3, first_of_epoch_every=1))[0] == NOT_APPLICABLE


def test_step_outlier_counts_steps_over_mean_plus_stddev_sigmas_once_over_100_steps():
    rng = np.random.default_rng(0)
    even = list(rng.uniform(0.009, 0.011, 200))
    assert _status(settings.StepOutlier(), _timed_steps(even))[0] == NO_ISSUES
    slow = even.copy()
    for step in (40, 90, 130, 170):
        slow[step - 1] = 0.5
    status, message = _status(settings.StepOutlier(n_outliers=2), _timed_steps(slow))
    assert status == ISSUES and message.startswith("4 step(s) over") and message.endswith("steps 40, 90, 130, 170")
    assert _status(settings.StepOutlier(), _timed_steps(slow))[0] == NO_ISSUES  # 4 of the 10 tolerated
    assert _status(settings.StepOutlier(), _timed_steps(even[:100]))[0] == NOT_APPLICABLE


# -- real runs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("diagnostics")
    made = {"tiny": make_sample_dataset(root / "tiny", num_classes=3, sizes={"train": 8, "valid": 3, "test": 3},
                                        seed=1, broken=False)}
    # valid folders rotated: what the model learns from train is wrong on valid, so it can only memorise
    memorise = make_sample_dataset(root / "memorise", num_classes=3, sizes={"train": 4, "valid": 4, "test": 2},
                                   seed=2, broken=False)
    folders = sorted((memorise / "valid").iterdir())
    moved = [folder.rename(folder.with_name("x" + folder.name)) for folder in folders]
    for folder, target in zip(moved, folders[1:] + folders[:1], strict=True):
        folder.rename(target)
    made["memorise"] = memorise
    # 22 images of one class, 2 of the other
    imbalanced = make_sample_dataset(root / "imbalanced", num_classes=2, sizes={"train": 22, "valid": 2, "test": 2},
                                     seed=3, broken=False)
    for path in sorted((imbalanced / "train" / "002.Green_Square").iterdir())[2:]:
        path.unlink()
    made["imbalanced"] = imbalanced
    # backbone weight files: one NaN, and one BatchNorm scaled 1000x (a badly initialised layer)
    state = torchvision.models.resnet18().state_dict()
    state["layer4.0.conv1.weight"][0, 0, 1, 1] = float("nan")
    torch.save(state, root / "nan.pt")
    state = torchvision.models.resnet18().state_dict()
    state["layer3.0.bn1.weight"] *= 1000
    torch.save(state, root / "badly_initialised.pt")
    made["weights"] = root
    return made


def _rules(datasets, tmp_path, data: str, *flags: str) -> dict[str, dict]:
    result = run_train([*FAST_FLAGS, "--data-dir", str(datasets[data]), *flags], tmp_path / "ml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rules = json.loads((tmp_path / "ml" / "output" / "data" / "rules.json").read_text())
    assert [r["rule"] for r in rules] == RULE_NAMES
    assert all(set(r) >= {"rule", "status", "message"} and r["status"] in (ISSUES, NO_ISSUES, NOT_APPLICABLE)
               for r in rules)
    return {r["rule"]: r for r in rules}


# (data, flags, rules that must find issues, rules that must not)
RUNS = {
    "a huge learning rate kills the head's ReLUs": (
        "tiny", ["--epochs", "3", "--augment", "false", "--lr", "10", "--batch-size", "2"],
        ["VanishingGradient"], ["ExplodingTensor", "ClassImbalance", "CPUBottleneck"]),
    # the loss saved once an epoch (12 steps): the default 500 would need a longer run
    "a learning rate too small to move the loss": (
        "tiny", ["--epochs", "3", "--augment", "false", "--lr", "1e-8", "--batch-size", "2",
                 "--loss-interval-steps", "12"],
        ["LossNotDecreasing"], ["VanishingGradient", "ExplodingTensor", "Overfit"]),
    "a model memorising a tiny train set": (
        "memorise", ["--epochs", "12", "--augment", "false", "--lr", "0.03", "--batch-size", "4",
                     "--loss-interval-steps", "3"],
        ["Overfit", "Overtraining"], ["LossNotDecreasing", "VanishingGradient", "ExplodingTensor", "CPUBottleneck",
                                      "PoorWeightInitialization"]),
    "NaN in the backbone weights": (
        "tiny", ["--epochs", "1", "--weights", "{weights}/nan.pt", "--quantize", "int8"], ["ExplodingTensor"], []),
    "a badly initialised layer in a trainable backbone": (
        "tiny", ["--epochs", "1", "--weights", "{weights}/badly_initialised.pt", "--freeze-backbone", "false",
                 "--batch-size", "2"],
        ["PoorWeightInitialization"], ["ExplodingTensor"]),
    "the default initialisation": (
        "tiny", ["--epochs", "1", "--freeze-backbone", "false", "--batch-size", "2"],
        [], ["PoorWeightInitialization", "ExplodingTensor", "VanishingGradient"]),
    "an imbalanced train split": (
        "imbalanced", ["--epochs", "1"], ["ClassImbalance"], []),
}


@pytest.mark.parametrize("scenario", list(RUNS))
def test_each_rule_fires_on_the_run_built_to_trip_it_and_not_elsewhere(scenario, datasets, tmp_path):
    data, flags, issues, clean = RUNS[scenario]
    flags = [flag.replace("{weights}", str(datasets["weights"])) for flag in flags]
    rules = _rules(datasets, tmp_path, data, *flags)
    for name in issues:
        assert rules[name]["status"] == ISSUES, rules[name]
    for name in clean:
        assert rules[name]["status"] == NO_ISSUES, rules[name]
    assert rules["LowGPUUtilization"]["status"] == NOT_APPLICABLE  # no GPU here
    if scenario == "NaN in the backbone weights":  # nothing to quantize: said in model.json, the job not failed
        int8 = json.loads((tmp_path / "ml" / "model" / "model.json").read_text())["int8"]
        assert int8["file"] is None and "NaN" in int8["reason"]


def test_report_tensorboard_and_trace_of_a_resnet50_run(datasets, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_train([*FAST_FLAGS, "--arch", "resnet50", "--freeze-backbone", "false", "--batch-size", "4",
                        "--epochs", "2", "--profile-steps", "2-3", "--profiler-interval-ms", "50",
                        "--data-dir", str(datasets["tiny"])], tmp_path / "ml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = tmp_path / "ml" / "output"

    recorded = json.loads((output / "data" / "diagnostics.json").read_text())
    assert len(recorded["steps"]) == 12 and recorded["steps"][-1]["step"] == 12
    assert set(recorded["steps"][0]["seconds"]) == {"data_wait", "forward", "backward", "optimizer"}
    # gradient norms for every ResNet-50 layer group
    assert set(recorded["gradients"][0]["group_norms"]) == {"stem", "layer1", "layer2", "layer3", "layer4", "head"}
    assert len(recorded["system"]) >= 5 and recorded["epochs"][-1]["last_step"] == 12

    page = (output / "data" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # loss, gradients, step time, utilisation: all inline
    assert "src=\"http" not in page and "src='http" not in page
    assert all(name in page for name in RULE_NAMES)
    assert "torch.profiler: top operators" in page

    trace = json.loads((output / "data" / "torch_profiler" / "trace.json").read_text())
    assert trace["traceEvents"]

    events = EventAccumulator(str(output / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/train_step", "loss/train", "loss/valid", "accuracy/valid", "gradient_norm/layer4",
            "step_time_ms/data_wait", "step_time_ms/forward", "system/cpu_percent"} <= tags
    assert len(events.Scalars("loss/train_step")) == 12 and len(events.Scalars("loss/valid")) == 2


def test_diagnostics_false_writes_none_of_it(datasets, tmp_path):
    result = run_train([*FAST_FLAGS, "--epochs", "1", "--diagnostics", "false", "--data-dir", str(datasets["tiny"])],
                       tmp_path / "ml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = tmp_path / "ml" / "output"
    assert (output / "data" / "evaluation.json").is_file()
    assert not (output / "data" / "rules.json").exists() and not (output / "tensorboard").exists()


# -- healthy runs: every rule quiet -------------------------------------------------------------


def _assert_quiet(base: Path, result, judged_elsewhere: tuple[str, ...] = ()) -> dict[str, dict]:
    """Every rule but those `judged_elsewhere` found no issue (those only ran: their verdict on this run is not
    the same on every CPU, and their logic is tested on runs that hold it)."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rules = {r["rule"]: r for r in json.loads((base / "output" / "data" / "rules.json").read_text())}
    assert not [r for r in rules.values() if r["status"] == ISSUES and r["rule"] not in judged_elsewhere], rules
    assert all(rules[name]["status"] in (ISSUES, NO_ISSUES) for name in judged_elsewhere), rules
    return rules


def test_every_rule_is_quiet_on_a_healthy_run_of_150_steps(tmp_path):
    # 600 small images (the sample data's shapes at 48 px: cheap to make and decode), 8 a batch, 2 epochs; the
    # loss saved every 50 steps (SageMaker's 500 would need 1,000 steps and seven times the minutes)
    rng = np.random.default_rng(5)
    data = tmp_path / "learnable"
    for split, count in (("train", 150), ("valid", 12), ("test", 12)):
        for index, (name, color, shape) in enumerate(CLASSES[:4]):
            folder = data / split / f"{index + 1:03d}.{name}"
            folder.mkdir(parents=True)
            for number in range(count):
                image = draw_example(rng, color, shape)
                image.thumbnail((48, 48))
                image.save(folder / f"{number:04d}.jpg", quality=90)
    result = run_train([*FAST_FLAGS, "--freeze-backbone", "false", "--epochs", "2", "--loss-interval-steps", "50",
                        "--data-dir", str(data)], tmp_path / "ml", timeout=900)
    # CPUBottleneck and StepOutlier time the machine, not the training (a loaded CI run once had 12 outlier
    # steps from other processes): here they must only have judged; their logic is tested on records above
    timed = ("CPUBottleneck", "StepOutlier")
    rules = _assert_quiet(tmp_path / "ml", result, judged_elsewhere=timed)
    recorded = json.loads((tmp_path / "ml" / "output" / "data" / "diagnostics.json").read_text())
    assert len(recorded["steps"]) == 150
    assert all(set(step["seconds"]) == {"data_wait", "forward", "backward", "optimizer"} for step in recorded["steps"])
    # judged, not skipped: the loss saved at steps 50, 100 and 150, gradients, steps
    for name in ("LossNotDecreasing", "Overfit", "VanishingGradient", "ExplodingTensor", "PoorWeightInitialization"):
        assert rules[name]["status"] == NO_ISSUES, rules[name]
    accuracy = json.loads((tmp_path / "ml" / "output" / "data" / "evaluation.json").read_text())["accuracy"]
    assert accuracy >= 0.6, accuracy  # it learned: chance is 0.25
