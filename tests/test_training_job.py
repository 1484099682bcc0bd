"""The training program end to end, run as SageMaker runs it: a process, an /opt/ml tree, exit codes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import FAST_FLAGS, REPO, run_train, train_env
from PIL import Image

from imaging import load_rgb
from train.cli import main as train_main
from train.metrics import OBJECTIVE, metric_definitions
from train.network import Normalize, Preprocess, build_classifier, eval_transform


def metric_values(stdout: str, name: str) -> list[float]:
    regex = next(d["Regex"] for d in metric_definitions() if d["Name"] == name)
    return [float(v) for v in re.findall(regex, stdout)]


def test_a_job_on_the_training_channel_writes_model_report_and_metrics(tiny_dataset, tmp_path):
    flags = [*FAST_FLAGS, "--arch", "resnet50", "--epochs", "2"]  # the real ResNet-50 shape, tiny images
    result = run_train(flags, tmp_path, {"SM_CHANNEL_TRAINING": str(tiny_dataset)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(metric_values(result.stdout, "valid:accuracy")) == 3  # 2 epochs, then the best epoch's
    assert len(metric_values(result.stdout, "test:accuracy")) == 1
    assert not (tmp_path / "output" / "failure").exists()

    model_dir, output_dir = tmp_path / "model", tmp_path / "output" / "data"
    metadata = json.loads((model_dir / "model.json").read_text())
    assert metadata["classes"] == ["Red Disc", "Green Square", "Blue Triangle"]
    assert metadata["arch"] == "resnet50" and metadata["hyperparameters"]["epochs"] == 2
    printed_test_accuracy = metric_values(result.stdout, "test:accuracy")[0]
    assert metadata["metrics"]["test:accuracy"] == pytest.approx(printed_test_accuracy, abs=1e-6)
    evaluation = json.loads((output_dir / "evaluation.json").read_text())
    assert [c["images"] for c in evaluation["per_class"]] == [3, 3, 3]
    assert len(evaluation["confusion_matrix"]) == 3 and [h["epoch"] for h in evaluation["history"]] == [1, 2]
    assert Image.open(output_dir / "confusion_matrix.png").size[0] > 100
    assert json.loads((output_dir / "skipped_files.json").read_text()) == {"train": [], "valid": [], "test": []}

    # The exported graph gives the probabilities of the saved weights on real files through the eval path.
    classifier = build_classifier("resnet50", 3, 16, None, freeze_backbone=True)
    classifier.load_state_dict(torch.load(model_dir / "model.pt", weights_only=True))
    classifier.eval()
    preprocess = Preprocess.for_image_size(32)
    files = sorted(f for f in (tiny_dataset / "test").rglob("*") if f.is_file())
    batch = torch.stack([eval_transform(preprocess)(load_rgb(f, preprocess.resize)) for f in files])
    with torch.no_grad():
        expected = torch.softmax(classifier(Normalize()(batch)), 1).numpy()
    session = onnxruntime.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": Normalize()(batch).numpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4


def test_sigterm_saves_a_checkpoint_and_a_restart_finishes_the_same_epochs(tiny_dataset, tmp_path):
    args = [sys.executable, "-m", "train", *FAST_FLAGS, "--batch-size", "4", "--epochs", "6",
            "--data-dir", str(tiny_dataset)]
    with subprocess.Popen(args, cwd=REPO, env=train_env(tmp_path), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as process:
        try:
            first_lines = []
            for line in process.stdout:
                first_lines.append(line)
                if line.startswith("METRIC epoch=1 "):
                    process.send_signal(signal.SIGTERM)
                    break
            first_lines += process.stdout.readlines()
            assert process.wait(timeout=120) == 143, "".join(first_lines)
        finally:
            process.kill()
    reason = (tmp_path / "output" / "failure").read_text()
    assert reason.startswith("stopped by SIGTERM") and "checkpoint saved" in reason
    assert reason.count("\n") == 1
    assert (tmp_path / "checkpoints" / "checkpoint.pt").is_file()
    assert not (tmp_path / "model" / "model.onnx").exists()

    resumed = run_train([*FAST_FLAGS, "--batch-size", "4", "--epochs", "6", "--data-dir", str(tiny_dataset)], tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from checkpoint" in resumed.stdout
    assert not (tmp_path / "output" / "failure").exists()
    first_epochs = [int(e) for e in re.findall(r"^METRIC epoch=(\d+)", "".join(first_lines), re.M)]
    later_epochs = [int(e) for e in re.findall(r"^METRIC epoch=(\d+)", resumed.stdout, re.M)]
    assert first_epochs + later_epochs == [1, 2, 3, 4, 5, 6]
    history = json.loads((tmp_path / "output" / "data" / "evaluation.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "model" / "model.onnx").is_file()


@pytest.mark.parametrize("flags", [[], ["--augment", "false"]], ids=["images", "feature cache, sharded"])
def test_ddp_with_two_cpu_processes(flags, tiny_dataset, tmp_path):
    result = run_train([*FAST_FLAGS, *flags, "--epochs", "2", "--processes-per-host", "2", "--data-dir",
                        str(tiny_dataset)], tmp_path, {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 host(s) x 2 process(es), CPU" in result.stdout
    assert ("features cached for train, valid, test" in result.stdout + result.stderr) == bool(flags)  # rank 0 logs
    assert len(metric_values(result.stdout, "valid:accuracy")) == 3  # rank 0 alone prints and writes
    evaluation = json.loads((tmp_path / "output" / "data" / "evaluation.json").read_text())
    # Each rank evaluated its own shard; the summed confusion matrix counts every test image once.
    confusion = evaluation["confusion_matrix"]
    assert sum(map(sum, confusion)) == 9
    assert (tmp_path / "model" / "model.onnx").is_file()
    # ... and each image's own answer, gathered from both ranks in file order, agrees with it
    report = (tmp_path / "output" / "data" / "report.html").read_text()
    wrong = sum(map(sum, confusion)) - sum(confusion[i][i] for i in range(len(confusion)))
    classes = evaluation["classes"]
    if wrong:
        assert f"{wrong} test images wrong" in report
        shown = re.findall(r"<figcaption><b>(.*?)</b> \d+%<br>true: (.*?)<br>", report)
        assert len(shown) == wrong  # 9 test images: all shown
        for predicted, true in shown:
            assert confusion[classes.index(true)][classes.index(predicted)] > 0
    else:
        assert "None: every test image right." in report


def failure_of(tmp_path) -> str:
    text = (tmp_path / "output" / "failure").read_text()
    assert text.count("\n") == 1 and "Traceback" not in text
    return text


def test_bad_hyperparameter_fails_with_a_reason_naming_the_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    assert train_main(["--lr", "fast"]) == 1
    assert "--lr" in failure_of(tmp_path)


@pytest.mark.parametrize("flags", [["--batch_size", "8"], ["--lr", "abc"], ["--lr", "0.1", "--base-dir"]])
def test_a_flag_error_fails_in_the_base_dir_in_force_and_no_stale_failure_survives(flags, tmp_path, monkeypatch):
    # --base-dir is honoured even when another flag is wrong; the environment's base dir is not touched.
    elsewhere = tmp_path / "environment-base"
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(elsewhere))
    base = tmp_path / "mine"
    (base / "output").mkdir(parents=True)
    (base / "output" / "failure").write_text("an earlier run's reason\n")
    if flags[-1] == "--base-dir":  # a --base-dir without its value: the environment's base dir is in force
        assert train_main(flags) == 1
        assert "--base-dir" in failure_of(elsewhere)
        return
    assert train_main([*flags, "--base-dir", str(base)]) == 1
    reason = failure_of(base)
    assert reason.startswith("invalid hyperparameter:") and "earlier" not in reason, reason
    assert not (elsewhere / "output" / "failure").exists()


def test_a_stale_failure_file_is_removed_when_a_run_starts(tiny_dataset, tmp_path):
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "failure").write_text("an earlier run's reason\n")
    result = run_train([*FAST_FLAGS, "--epochs", "1", "--diagnostics", "false", "--data-dir", str(tiny_dataset)],
                       tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "output" / "failure").exists()


def test_unwritable_outputs_are_found_before_the_data_is_read(tiny_dataset, tmp_path):
    blocker = tmp_path / "checkpoints-is-a-file"
    blocker.write_text("")
    result = run_train([*FAST_FLAGS, "--data-dir", str(tiny_dataset), "--checkpoint-dir", str(blocker)], tmp_path)
    assert result.returncode == 1
    assert failure_of(tmp_path).startswith(f"cannot write checkpoints: checkpoint dir {blocker} is not writable")
    assert "data:" not in result.stdout + result.stderr  # no file was checked, nothing computed


def test_a_random_frozen_backbone_is_called_out(tiny_dataset, tmp_path):
    result = run_train([*FAST_FLAGS, "--epochs", "1", "--freeze-backbone", "true", "--diagnostics", "false",
                        "--data-dir", str(tiny_dataset)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trains only the head on a random backbone that never learns" in result.stdout + result.stderr


@pytest.mark.parametrize("flags, environment, asked", [
    ([], {"SM_NUM_GPUS": "1"}, "SM_NUM_GPUS=1 asks for 1 GPU(s)"),  # a GPU instance whose driver CUDA cannot use
    (["--device", "cuda"], {}, "--device cuda asks for 1 GPU(s)"),
    (["--featurize", "true"], {"SM_NUM_GPUS": "4"}, "SM_NUM_GPUS=4 asks for 4 GPU(s)"),
])
def test_gpus_that_do_not_work_end_the_job_instead_of_a_cpu_run(flags, environment, asked, tiny_dataset, tmp_path):
    # This machine has no GPU: to the job it looks exactly like a SageMaker GPU host whose driver is too old
    # for the image's CUDA (torch.cuda.device_count() == 0).
    from train.gpu import cuda_stack

    result = run_train([*FAST_FLAGS, *flags, "--data-dir", str(tiny_dataset)], tmp_path, environment)
    assert result.returncode == 1
    failure = failure_of(tmp_path)
    assert failure.startswith(f"{asked} but CUDA sees 0: {cuda_stack()}; no NVIDIA driver answers on this host")
    assert "--device cpu" in failure
    assert "data:" not in result.stdout and not (tmp_path / "model").exists()  # nothing ran, not even the data check


def test_more_processes_than_gpus_are_refused_naming_both(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    monkeypatch.setenv("SM_NUM_GPUS", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # a one-GPU host, as CUDA would report it
    assert train_main([*FAST_FLAGS, "--processes-per-host", "2", "--data-dir", str(tiny_dataset)]) == 1
    assert failure_of(tmp_path).startswith("--processes-per-host 2 but this host has 1 usable GPU(s)")


def test_the_cpu_on_purpose(monkeypatch):
    from train.gpu import usable_gpus

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert usable_gpus("cpu", 4) == 0 and usable_gpus("auto", 0) == 0  # --device cpu; a CPU instance
    assert usable_gpus("auto", None) == 4 and usable_gpus("auto", 2) == 2 and usable_gpus("cuda", None) == 4


def test_class_mismatch_fails_naming_the_difference(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    valid = tmp_path / "valid"
    for folder in ("001.Red_Disc", "002.Green_Square", "009.Extra"):
        (valid / folder).mkdir(parents=True)
    code = train_main([*FAST_FLAGS, "--train-dir", str(tiny_dataset / "train"), "--valid-dir", str(valid)])
    assert code == 1
    assert "only in valid: 009.Extra" in failure_of(tmp_path)


def test_missing_imagenet_weights_fail_before_training(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    code = train_main(["--weights", "imagenet", "--arch", "resnet18", "--data-dir", str(tiny_dataset),
                       "--num-workers", "0"])
    assert code == 1
    assert "ImageNet weights for resnet18" in failure_of(tmp_path)
    assert not (tmp_path / "checkpoints" / "checkpoint.pt").exists()


def test_unwritable_model_dir_fails_with_the_reason(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    blocker = tmp_path / "model-is-a-file"
    blocker.write_text("")
    code = train_main([*FAST_FLAGS, "--epochs", "1", "--data-dir", str(tiny_dataset), "--model-dir", str(blocker)])
    assert code == 1
    assert "cannot write the model" in failure_of(tmp_path)


def test_the_tuners_objective_is_the_shipped_epochs_valid_accuracy(tiny_dataset, tmp_path):
    # Settings found to make the last epoch worse than the best one (CPU runs are deterministic):
    # a tuner reading the last epoch's line would score a model the job does not ship.
    flags = [*FAST_FLAGS, "--batch-size", "4", "--augment", "false", "--epochs", "5", "--lr", "0.01"]
    result = run_train([*flags, "--data-dir", str(tiny_dataset)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    metadata = json.loads((tmp_path / "model" / "model.json").read_text())["metrics"]
    per_epoch = [float(v) for v in re.findall(r"^METRIC epoch=\d+ .*valid:accuracy=([-+0-9.eE]+);", result.stdout,
                                              re.M)]
    assert len(per_epoch) == 5 and per_epoch[-1] < max(per_epoch), "this run no longer has a worse last epoch"
    assert metadata["best_epoch"] == per_epoch.index(max(per_epoch)) + 1

    # SageMaker's tuner keeps the last value its objective regex matches in the log.
    tuner_reads = metric_values(result.stdout, OBJECTIVE)[-1]
    assert tuner_reads == pytest.approx(metadata["valid:accuracy"], abs=1e-6)
    assert metric_values(result.stdout, "valid:loss")[-1] == pytest.approx(metadata["valid:loss"], abs=1e-6)
    assert f"METRIC best_epoch={metadata['best_epoch']} " in result.stdout


def test_cached_features_train_the_same_head_as_images(tiny_dataset, tmp_path):
    flags = [*FAST_FLAGS, "--freeze-backbone", "true", "--augment", "false", "--epochs", "3", "--batch-size", "4",
             "--data-dir", str(tiny_dataset)]
    runs = {}
    for cache in ("true", "false"):
        result = run_train([*flags, "--cache-features", cache], tmp_path / cache)
        assert result.returncode == 0, result.stdout + result.stderr
        assert ("features cached" in result.stdout) == (cache == "true")
        runs[cache] = result
    cached, uncached = (json.loads((tmp_path / c / "output" / "data" / "evaluation.json").read_text())
                        for c in ("true", "false"))
    for with_cache, without in zip(cached["history"], uncached["history"], strict=True):
        for name in ("train:loss", "train:accuracy", "valid:loss", "valid:accuracy"):
            assert with_cache[name] == pytest.approx(without[name], abs=1e-4), name
    heads = [torch.load(tmp_path / c / "model" / "model.pt", weights_only=True) for c in ("true", "false")]
    for key in heads[0]:
        assert torch.allclose(heads[0][key], heads[1][key], atol=1e-4), key


def test_cache_features_refuses_settings_it_cannot_honour(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    assert train_main(["--cache-features", "true", "--augment", "true"]) == 1
    assert "--cache-features true needs --freeze-backbone true and --augment false" in failure_of(tmp_path)
