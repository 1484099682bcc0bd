"""The requests the scripts build themselves (scripts/training_requests.py, sent with boto3) against what SageMaker
Python SDK 2 sent for the same flags, and the same scripts under SDK 3 (`.venv-sdk3`, `make setup-sdk3`).

SDK 2's side is its Estimator and HyperparameterTuner set up as scripts/tune.py set them up until it built its
requests itself (scripts/estimator.py's training_estimator), sending to the same moto. Job names with a timestamp
differ by construction and are compared by their form.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from conftest import REPO
from moto_aws import ROLE, TRAIN_IMAGE

from scripts import aws, tune
from scripts.estimator import training_estimator

DATA = "s3://dog-data/dogImages"
SDK3_PYTHON = REPO / ".venv-sdk3" / "bin" / "python"
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


def sdk2_tuning_request(argv: list[str], moto) -> dict:
    """CreateHyperParameterTuningJob as SDK 2's HyperparameterTuner sent it for these flags."""
    from sagemaker.tuner import CategoricalParameter, ContinuousParameter, HyperparameterTuner

    args = tune.parse_args(argv)
    session = aws.sagemaker_session(aws.boto_session(args))
    bucket = f"s3://{session.default_bucket()}/dog-classifier"
    estimator = training_estimator(
        image_uri=args.image_uri, role=args.role, instance_type=args.instance_type, session=session,
        hyperparameters=args.static_hyperparameters, output_path=args.output_path or f"{bucket}/tuning",
        spot=args.spot, checkpoint_s3_uri=args.checkpoint_s3_uri or (f"{bucket}/checkpoints" if args.spot else None),
        max_run_hours=args.max_run_hours)
    tuner = HyperparameterTuner(
        estimator, objective_metric_name=tune.OBJECTIVE, objective_type="Maximize",
        hyperparameter_ranges={"lr": ContinuousParameter(*args.lr_range, scaling_type="Logarithmic"),
                               "batch-size": CategoricalParameter(args.batch_sizes)},
        metric_definitions=estimator.metric_definitions, max_jobs=args.max_jobs,
        max_parallel_jobs=args.max_parallel_jobs, early_stopping_type="Auto", base_tuning_job_name="dog-tune")
    channels = {"features": args.features} if args.features else {"training": args.data}
    moto.reset_recording()
    tuner.fit(channels, job_name=args.job_name, wait=False)
    return moto.request("CreateHyperParameterTuningJob")


def without_generated_name(request: dict) -> dict:
    name = request.pop("HyperParameterTuningJobName")
    assert re.fullmatch(r"dog-tune-\d{6}-\d{4,6}", name) and len(name) <= 32, name
    return request


@pytest.mark.parametrize("flags", FLAG_SETS.values(), ids=FLAG_SETS.keys())
def test_tune_sends_what_sdk2s_tuner_sent_for_the_same_flags(flags, moto):
    expected = without_generated_name(sdk2_tuning_request([*BASE, *flags], moto))
    moto.reset_recording()
    assert tune.main([*BASE, *flags]) == 0
    assert without_generated_name(moto.request("CreateHyperParameterTuningJob")) == expected


def test_the_featurize_job_is_the_training_job_sdk2s_estimator_started(moto):
    args = tune.parse_args([*BASE, "--featurize", "-p", "epochs=10"])
    session = aws.sagemaker_session(aws.boto_session(args))
    estimator = training_estimator(
        image_uri=args.image_uri, role=args.role, instance_type=args.featurize_instance_type, session=session,
        hyperparameters={**args.static_hyperparameters, "featurize": "true"},
        output_path=f"s3://{session.default_bucket()}/dog-classifier/tuning/features", base_job_name="dog-featurize")
    moto.reset_recording()
    estimator.fit({"training": args.data}, wait=False)
    expected = moto.request("CreateTrainingJob")
    moto.reset_recording()
    assert tune.main([*BASE, "--featurize", "-p", "epochs=10"]) == 0
    sent = moto.request("CreateTrainingJob")
    for request in (expected, sent):
        assert re.fullmatch(r"dog-featurize-\d{4}(-\d\d){5}-\d{3}", request.pop("TrainingJobName"))
    assert sent == expected


def test_tune_runs_under_sdk3_and_sends_the_same_requests(moto, tmp_path):
    # .venv-sdk3 holds SageMaker Python SDK 3 (sagemaker-core 2, no Estimator) and, through a .pth file, this project:
    # make test makes it (make setup-sdk3), as a user runs the scripts there.
    assert SDK3_PYTHON.is_file(), f"{SDK3_PYTHON} is missing: run make setup-sdk3"
    flags = [*BASE, "--featurize", "-p", "epochs=10", "--job-name", "dog-tune-sdk3", "--wait"]
    assert tune.main(flags) == 0
    expected = [(r["operation"], r["body"]) for r in moto.requests()]
    moto.reset()
    result = subprocess.run([str(SDK3_PYTHON), "scripts/tune.py", *flags], cwd=REPO, capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "best training job:" in result.stdout
    sent = [(r["operation"], r["body"]) for r in moto.requests()]
    assert [operation for operation, _ in sent] == [operation for operation, _ in expected]
    version = subprocess.run([str(SDK3_PYTHON), "-c", "import importlib.metadata as m; print(m.version('sagemaker'))"],
                             capture_output=True, text=True, check=True).stdout
    assert version.startswith("3."), version
    featurize_name = re.compile(r"dog-featurize-[\d-]+")
    assert featurize_name.sub("NAME", json.dumps(sent)) == featurize_name.sub("NAME", json.dumps(expected))
