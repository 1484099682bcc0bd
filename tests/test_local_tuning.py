"""`python -m train.tune`: the tuner's search space with Optuna on this machine, features computed once."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO, train_env

from train.tune import DEFAULT_BATCH_SIZES, DEFAULT_LR_RANGE


def run_tune(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train.tune", *args], cwd=REPO, env=train_env(tmp_path),
                          capture_output=True, text=True, timeout=300)


def test_trials_train_heads_on_features_computed_once_and_the_best_is_printed(tiny_dataset, tmp_path):
    result = run_tune(["--data-dir", str(tiny_dataset), "--arch", "resnet50", "--weights", "none", "--image-size", "32",
                       "--num-workers", "0", "--trials", "4", "--epochs", "2", "--lr-range", "0.001", "0.05",
                       "--batch-sizes", "4,8,16"], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("computed once") == 1  # one backbone pass for all trials
    rows = re.findall(r"^\s+(\d+)\s+([0-9.]+)\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+(\w+)$", result.stdout, re.M)
    assert [int(row[0]) for row in rows] == [1, 2, 3, 4]
    assert all(0.001 <= float(row[1]) <= 0.05 and int(row[2]) in (4, 8, 16) for row in rows)
    best = max((row for row in rows if row[5] == "complete"), key=lambda row: float(row[3]))
    assert f"best: trial {best[0]}," in result.stdout
    assert re.search(r"^train it from images with these: -p lr=[0-9.e-]+ -p batch-size=\d+$", result.stdout, re.M)


def test_the_search_space_is_the_sagemaker_tuners():
    from scripts import tune as sagemaker_tune

    assert DEFAULT_LR_RANGE == (0.001, 0.1) and DEFAULT_BATCH_SIZES == (32, 64, 128, 256, 512)
    args = sagemaker_tune.parse_args(["--image-uri", "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1", "--role",
                                      "arn:aws:iam::123456789012:role/R", "--data", "s3://bucket/data"])
    assert tuple(args.lr_range) == DEFAULT_LR_RANGE and tuple(args.batch_sizes) == DEFAULT_BATCH_SIZES


@pytest.mark.parametrize(("args", "message"), [
    (["--lr-range", "0.1", "0.01"], "--lr-range: MIN must be below MAX"),
    (["--batch-sizes", "8,8"], "--batch-sizes"),
    (["--trials", "0"], "--trials"),
])
def test_bad_flags_name_the_flag(args, message, tiny_dataset, tmp_path):
    result = run_tune(["--data-dir", str(tiny_dataset), *args], tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_a_missing_data_folder_is_named(tmp_path):
    result = run_tune(["--data-dir", str(tmp_path / "nowhere")], tmp_path)
    assert result.returncode == 1 and "nowhere does not exist" in result.stderr and "Traceback" not in result.stderr
