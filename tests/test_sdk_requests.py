"""The requests the scripts build themselves (scripts/training_requests.py, sent with boto3) against what SageMaker
Python SDK 2 sent for the same flags, and the same scripts under SDK 2 (`.venv-sdk2`, `make setup-sdk2`); this
environment has SDK 3 (make setup).

SDK 2's side (tests/sdk2_requests.py, run in .venv-sdk2) is its Estimator, HyperparameterTuner, Model and
Transformer set up as the scripts set them up until they built their requests themselves, sending to the same
moto. Job names with a timestamp differ by construction and are compared by their form.
"""

from __future__ import annotations

import json
import re
import subprocess

import boto3
import pytest
from conftest import REPO, SDK2_PYTHON, environment_without_pythonpath
from moto_aws import REGION, ROLE, SERVE_IMAGE, TRAIN_IMAGE

from scripts import cleanup, debug_profile, deploy, local_training, transform, tune

DATA = "s3://dog-data/dogImages"
BASE = ["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", DATA]
FLAG_SETS = {
    "the defaults": [],
    "a custom space, static hyperparameters, limits": ["--max-jobs", "6", "--max-parallel-jobs", "3", "-p", "epochs=10",
                                                       "--lr-range", "0.0001", "0.01", "--batch-sizes", "16,32",
                                                       "--instance-type", "ml.p3.2xlarge", "--max-run-hours", "2"],
    "spot with the default checkpoints": ["--spot"],
    "spot with given checkpoints and output": ["--spot", "--checkpoint-s3-uri", "s3://my-bucket/ckpt",
                                               "--output-path", "s3://my-bucket/out"],
    "trials on given features": ["--features", "s3://my-bucket/features/dog-featurize-1/output/model.tar.gz",
                                 "-p", "image-size=160"],
}


def run_under_sdk2(argv: list[str]) -> subprocess.CompletedProcess:
    assert SDK2_PYTHON.is_file(), f"{SDK2_PYTHON} is missing: run make setup-sdk2"
    result = subprocess.run([str(SDK2_PYTHON), *argv], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env=environment_without_pythonpath())
    return result


def sdk2_sent(kind: str, argv: list[str], moto) -> list[dict]:
    """The requests SDK 2 sent for a script's flags (tests/sdk2_requests.py), as moto recorded them."""
    moto.reset_recording()
    result = run_under_sdk2([str(REPO / "tests" / "sdk2_requests.py"), kind, json.dumps(argv)])
    assert result.returncode == 0, result.stdout + result.stderr
    return moto.requests()


def sdk2_tuning_request(argv: list[str], moto) -> dict:
    """CreateHyperParameterTuningJob as SDK 2's HyperparameterTuner sent it for these flags."""
    sdk2_sent("tune", argv, moto)
    return moto.request("CreateHyperParameterTuningJob")


def without_generated_name(request: dict) -> dict:
    name = request.pop("HyperParameterTuningJobName")
    # SDK 2's form (to the minute) or the scripts' (scripts/naming.py, to the millisecond)
    assert re.fullmatch(r"dog-tune-(\d{6}-\d{4}|\d{8}-\d{6}-\d{3})", name) and len(name) <= 32, name
    return request


@pytest.mark.parametrize("flags", FLAG_SETS.values(), ids=FLAG_SETS.keys())
def test_tune_sends_what_sdk2s_tuner_sent_for_the_same_flags(flags, moto):
    expected = without_generated_name(sdk2_tuning_request([*BASE, *flags], moto))
    moto.reset_recording()
    assert tune.main([*BASE, *flags]) == 0
    assert without_generated_name(moto.request("CreateHyperParameterTuningJob")) == expected


def test_the_featurize_job_is_the_training_job_sdk2s_estimator_started(moto):
    sdk2_sent("featurize", [*BASE, "--featurize", "-p", "epochs=10"], moto)
    expected = moto.request("CreateTrainingJob")
    moto.reset_recording()
    assert tune.main([*BASE, "--featurize", "-p", "epochs=10"]) == 0
    sent = moto.request("CreateTrainingJob")
    for request in (expected, sent):  # SDK 2's form or the scripts' (scripts/naming.py)
        name = request.pop("TrainingJobName")
        assert re.fullmatch(r"dog-featurize-(\d{4}(-\d\d){5}-\d{3}|\d{8}-\d{6}-\d{3})", name), name
    assert sent == expected


def with_collections_as_a_set(request: dict) -> dict:
    hook = request["DebugHookConfig"]
    hook["CollectionConfigurations"] = sorted(hook["CollectionConfigurations"], key=json.dumps)
    return request


@pytest.mark.parametrize("flags", [
    ["-p", "lr=0.01", "-p", "batch-size=64", "--instance-type", "ml.p3.2xlarge", "--max-run-hours", "3"],
    ["-p", "lr=0.0001", "--start-from", "s3://dog-models/m/output/model.tar.gz", "--output-path", "s3://my-bucket/dbg"],
], ids=["hyperparameters and limits", "fine-tuning a finished model into a given output"])
def test_debug_profile_sends_what_sdk2s_estimator_sent_for_the_same_flags(flags, moto, tmp_path):
    argv = [*BASE, *flags, "--job-name", "dog-debug-same", "--no-logs", "--download-dir", str(tmp_path)]
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="my-bucket")  # the given output's bucket
    sdk2_sent("debug_profile", argv, moto)
    expected = with_collections_as_a_set(moto.request("CreateTrainingJob"))
    moto.reset_recording()
    assert debug_profile.main(argv) == 0
    assert with_collections_as_a_set(moto.request("CreateTrainingJob")) == expected


def test_local_mode_runs_on_the_sdk_each_environment_has():
    # debug_profile.py --local trains in the installed SDK's own local mode: ModelTrainer here, the Estimator there
    # (both run in CI's Docker stage, tests/test_cloud_docker.py)
    assert local_training.installed_sdk() == 3
    found = run_under_sdk2(["-c", "from scripts.local_training import installed_sdk; print(installed_sdk())"])
    assert found.returncode == 0 and found.stdout.split()[-1] == "2", found.stdout + found.stderr


TRANSFORM_BASE = ["--input", "s3://dog-data/photos", "--output", "s3://dog-data/predictions"]
MODEL_DATA = "s3://dog-models/dog-classifier-v1/model.tar.gz"
REUSED_MODEL = "dog-transform-first-model"


def model_and_job_requests(moto) -> list[dict]:
    return [r for r in moto.requests() if r["operation"] in ("CreateModel", "CreateTransformJob")]


def reused_model() -> None:
    assert transform.main([*TRANSFORM_BASE, "--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data", MODEL_DATA,
                           "--job-name", "dog-transform-first"]) == 0


@pytest.mark.parametrize("flags", [
    ["--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data", MODEL_DATA, "--instance-count", "2",
     "--instance-type", "ml.c5.xlarge"],
    ["--model-name", REUSED_MODEL, "--max-payload", "20", "--max-concurrent", "4"],
], ids=["a new model from --model-data", "an existing model with limits"])
def test_transform_sends_what_sdk2s_transformer_sent_for_the_same_flags(flags, moto):
    argv = [*TRANSFORM_BASE, *flags, "--job-name", "dog-transform-same"]
    if REUSED_MODEL in flags:
        reused_model()
    sdk2_sent("transform", argv, moto)
    expected = model_and_job_requests(moto)
    moto.reset()
    if REUSED_MODEL in flags:
        reused_model()
    moto.reset_recording()
    assert transform.main(argv) == 0
    assert model_and_job_requests(moto) == expected


DEPLOY = ["--image-uri", SERVE_IMAGE, "--role", ROLE, "--endpoint-name", "dogs"]


def deployed() -> None:
    assert deploy.main([*DEPLOY, "--model-data", MODEL_DATA]) == 0


SDK2_RUNS = {  # script, its flags, what is there before it runs (made in this process)
    "tune": (tune, [*BASE, "--featurize", "-p", "epochs=10", "--job-name", "dog-tune-sdk3", "--wait"], None),
    "debug_profile": (debug_profile, [*BASE, "-p", "lr=0.01", "--job-name", "dog-debug-sdk3", "--no-logs",
                                      "--rules-timeout-minutes", "0", "--download-dir", "{tmp}"], None),
    "transform": (transform, [*TRANSFORM_BASE, "--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data",
                              MODEL_DATA, "--job-name", "dog-transform-sdk3", "--wait"], None),
    "deploy, real-time with auto scaling and data capture": (
        deploy, [*DEPLOY, "--model-data", MODEL_DATA, "--min-instances", "1", "--max-instances", "4",
                 "--target-invocations-per-instance", "70", "--data-capture", "s3://dog-models/capture"], None),
    "deploy, an update in place": (deploy, [*DEPLOY, "--model-data", "s3://dog-models/v2/model.tar.gz"], deployed),
    "deploy, serverless": (deploy, [*DEPLOY, "--model-data", MODEL_DATA, "--serverless-memory", "3072"], None),
    "deploy, asynchronous": (deploy, [*DEPLOY, "--model-data", MODEL_DATA, "--async", "--output",
                                      "s3://dog-models/async-answers"], None),
    "deploy, multi-model": (deploy, [*DEPLOY, "--multi-model", "--model-prefix", "s3://dog-models/kennels"], None),
    "cleanup": (cleanup, ["--endpoint-name", "dogs", "--yes"], deployed),
}
# a name with the time in it (scripts/naming.py): a featurize job's, a deploy's model and endpoint config
GENERATED_NAME = re.compile(r"-\d{8}-\d{6}-\d{3}")


@pytest.mark.parametrize("script, flags, before", SDK2_RUNS.values(), ids=SDK2_RUNS.keys())
def test_the_script_runs_under_sdk2_and_sends_the_same_requests(script, flags, before, moto, tmp_path):
    # .venv-sdk2 holds SageMaker Python SDK 2 (sagemaker-core 1, the Estimator) and, through a .pth file, this
    # project: make test makes it (make setup-sdk2), and a user runs the scripts there as here (SDK 3).
    version = run_under_sdk2(["-c", "import importlib.metadata as m; print(m.version('sagemaker'))"]).stdout
    assert version.startswith("2."), version
    import importlib.metadata

    assert importlib.metadata.version("sagemaker").startswith("3.")
    flags = [flag.replace("{tmp}", str(tmp_path)) for flag in flags]
    sent = []
    for run in ("in this environment", "under SDK 2"):
        moto.reset()
        if before:
            before()
            moto.reset_recording()
        if run == "under SDK 2":
            result = run_under_sdk2([f"scripts/{script.__name__.split('.')[-1]}.py", *flags])
            assert result.returncode == 0, result.stdout + result.stderr
        else:
            assert script.main(flags) == 0
        sent.append(GENERATED_NAME.sub("-NAME", json.dumps(moto.requests())))
    assert sent[0] == sent[1]
