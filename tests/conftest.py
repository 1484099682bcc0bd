"""Shared fixtures: datasets the tests make themselves (no download can happen here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from preloaded_jobs import PRELOADED_JOBS

from contract.booleans import parse_bool
from contract.cpus import usable_cpus
from train.sample_data import make_sample_dataset

REPO = Path(__file__).resolve().parents[1]
# make setup-sdk2's environment (SageMaker Python SDK 2; make setup's has SDK 3): it finds this project through a
# .pth file, so its processes get environment_without_pythonpath()
SDK2_PYTHON = Path(os.environ.get("SDK2_PYTHON", REPO / ".venv-sdk2" / "bin" / "python"))


def environment_without_pythonpath() -> dict[str, str]:
    """This process's environment for a process of another virtualenv: this one's PYTHONPATH left out."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
MAX_WORKERS = 4  # beyond this, the copies of the session's fixtures (trained model, moto, job server) cost more


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per usable core (affinity and cgroup quota, as the training job counts them)."""
    return min(MAX_WORKERS, usable_cpus())


# pytest-xdist hands out one file at a time, in collection order (--no-loadscope-reorder): the files that take
# longest go first, so that no worker is still in a long one at the end while the others have nothing left to do.
LONGEST_FIRST = ("test_bench.py", "test_diagnostics.py", "test_training_job.py", "test_readme.py",
                 "test_training_faults.py", "test_featurize.py", "test_cloud_scripts.py")


def pytest_collection_modifyitems(items) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: within a file, the file's order


def pytest_configure(config) -> None:
    """Each of N workers on C cores gets C // N of them for torch's threads, in this process and in the jobs and
    servers it starts (OMP_NUM_THREADS, read when torch starts), as a DDP job shares a host between its
    processes: two workers each running two threads on two cores would wait on each other's spinning."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cpus() // workers))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """3 classes, 6/3/3 images each, with the sample generator's broken files in train."""
    return make_sample_dataset(tmp_path_factory.mktemp("tiny") / "data", num_classes=3,
                               sizes={"train": 8, "valid": 3, "test": 3}, seed=1, broken=False)


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> Path:
    """The demo's dataset: 4 classes, 40/10/10 images each, 3 broken files in train."""
    return make_sample_dataset(tmp_path_factory.mktemp("sample") / "data")


def run_train(args: list[str], base_dir: Path, extra_env: dict | None = None, timeout: float = 300,
              script: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m train` (or `python SCRIPT`, a script that runs it) as SageMaker would: a process of its
    own, SAGEMAKER_BASE_DIR as its /opt/ml. It is forked from a process that has imported torch already
    (tests/preloaded_jobs.py says what that changes) unless its environment changes how Python starts;
    JOBS_AS_FRESH_INTERPRETERS=1 starts a new interpreter for every job."""
    env = train_env(base_dir, extra_env)
    if parse_bool(os.environ.get("JOBS_AS_FRESH_INTERPRETERS", "false")) or not PRELOADED_JOBS.forkable(env):
        command = [str(script)] if script else ["-m", "train"]
        return subprocess.run([sys.executable, *command, *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=timeout)
    return PRELOADED_JOBS.run(args, env, cwd=REPO, timeout=timeout, script=script)


def pytest_sessionfinish(session, exitstatus):
    PRELOADED_JOBS.close()


def train_env(base_dir: Path, extra_env: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    env.update({"SAGEMAKER_BASE_DIR": str(base_dir), "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)})
    env.update(extra_env or {})
    return env


# Small and fast: these runs test plumbing, not accuracy. No int8 model (its quantizer's process is 2 of a
# tiny run's 7 s): the tests of int8 and of serving it ask for one with --quantize int8.
FAST_FLAGS = ["--arch", "resnet18", "--weights", "none", "--image-size", "32", "--batch-size", "8",
              "--num-workers", "0", "--hidden-units", "16", "--quantize", "none"]


@pytest.fixture(scope="session")
def trained_model_dir(tiny_dataset, tmp_path_factory) -> Path:
    """A model artifact made by the real training program (small net, tiny images, a few epochs)."""
    base = tmp_path_factory.mktemp("trained")
    result = run_train([*FAST_FLAGS, "--freeze-backbone", "false", "--epochs", "3", "--lr", "0.003",
                        "--quantize", "int8", "--data-dir", str(tiny_dataset)], base)
    assert result.returncode == 0, result.stdout + result.stderr
    return base / "model"


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """A local AWS (moto server on loopback) for the scripts' tests; see moto_aws.py."""
    from moto_aws import MotoServer

    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server, tmp_path, monkeypatch):
    """A clean moto for each test, with this process's (and its children's) AWS clients pointed at it."""
    from moto_aws import aws_environment

    moto_server.reset()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in aws_environment(moto_server, tmp_path).items():
        monkeypatch.setenv(name, value)
    return moto_server
