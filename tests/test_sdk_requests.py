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

import boto3
import pytest
from conftest import REPO
from moto_aws import REGION, ROLE, SERVE_IMAGE, TRAIN_IMAGE

from scripts import aws, cleanup, debug_profile, deploy, transform, tune
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


def sdk2_session(args):
    """SDK 2's Session as the scripts made it before they built their requests themselves."""
    import sagemaker

    boto = aws.boto_session(args)
    return sagemaker.Session(boto_session=boto, default_bucket=f"sagemaker-{boto.region_name}-{aws.account_id(boto)}")


def sdk2_tuning_request(argv: list[str], moto) -> dict:
    """CreateHyperParameterTuningJob as SDK 2's HyperparameterTuner sent it for these flags."""
    from sagemaker.tuner import CategoricalParameter, ContinuousParameter, HyperparameterTuner

    args = tune.parse_args(argv)
    session = sdk2_session(args)
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
    args = tune.parse_args([*BASE, "--featurize", "-p", "epochs=10"])
    session = sdk2_session(args)
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
    for request in (expected, sent):  # SDK 2's form or the scripts' (scripts/naming.py)
        name = request.pop("TrainingJobName")
        assert re.fullmatch(r"dog-featurize-(\d{4}(-\d\d){5}-\d{3}|\d{8}-\d{6}-\d{3})", name), name
    assert sent == expected


def sdk2_debug_request(argv: list[str], moto) -> dict:
    """CreateTrainingJob as SDK 2's Estimator sent it for debug_profile.py's Debugger hook, rules and profiler."""
    from sagemaker.debugger import (
        DebuggerHookConfig,
        ProfilerConfig,
        ProfilerRule,
        Rule,
        TensorBoardOutputConfig,
        rule_configs,
    )

    args = debug_profile.parse_args(argv)
    session = sdk2_session(args)
    output = args.output_path or f"s3://{session.default_bucket()}/dog-classifier/debug"
    rules = []
    for name in debug_profile.DEBUG_RULES:
        base = getattr(rule_configs, name)()
        parameters = {"num_steps": debug_profile.LOSS_CHECK_STEPS} if name == "loss_not_decreasing" else None
        collections = debug_profile.every_save_interval(base.get("CollectionConfigurations", [])) or None
        rules.append(Rule.sagemaker(base, rule_parameters=parameters, collections_to_save=collections))
    rules.append(ProfilerRule.sagemaker(rule_configs.ProfilerReport()))
    estimator = training_estimator(
        image_uri=args.image_uri, role=args.role, instance_type=args.instance_type, session=session,
        hyperparameters=args.overrides, output_path=output, max_run_hours=args.max_run_hours, base_job_name="dog-debug",
        debugger_hook_config=DebuggerHookConfig(s3_output_path=output,
                                                collection_configs=debug_profile.hook_collections()),
        rules=rules, profiler_config=ProfilerConfig(s3_output_path=output, system_monitor_interval_millis=500),
        tensorboard_output_config=TensorBoardOutputConfig(s3_output_path=f"{output}/{args.job_name}/tensorboard"))
    channels = {"training": args.data, **({"pretrained": args.start_from} if args.start_from else {})}
    moto.reset_recording()
    estimator.fit(channels, job_name=args.job_name, wait=False)
    return moto.request("CreateTrainingJob")


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
    expected = with_collections_as_a_set(sdk2_debug_request(argv, moto))
    moto.reset_recording()
    assert debug_profile.main(argv) == 0
    assert with_collections_as_a_set(moto.request("CreateTrainingJob")) == expected


def test_local_mode_under_sdk3_says_in_one_line_where_it_runs(tmp_path):
    # --local is SDK 2's local mode; SDK 3 has none for a custom image. One line, no traceback.
    result = subprocess.run([str(SDK3_PYTHON), "scripts/debug_profile.py", "-p", "lr=0.01", "--local",
                             "--image-uri", "dog-classifier-train:local", "--role", ROLE, "--data", str(tmp_path),
                             "--region", REGION], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: --local runs on SageMaker Python SDK 2's local mode, which this "
                                     "environment lacks (SDK 3 has none for a custom image): run it from make "
                                     "setup's environment, .venv")


TRANSFORM_BASE = ["--input", "s3://dog-data/photos", "--output", "s3://dog-data/predictions"]
MODEL_DATA = "s3://dog-models/dog-classifier-v1/model.tar.gz"
REUSED_MODEL = "dog-transform-first-model"


def sdk2_transform_requests(argv: list[str], moto) -> list[dict]:
    """CreateModel (for --model-data) and CreateTransformJob as SDK 2's Model and Transformer sent them."""
    from sagemaker.model import Model
    from sagemaker.transformer import Transformer

    args = transform.parse_args(argv)
    session = sdk2_session(args)
    settings = dict(instance_count=args.instance_count, instance_type=args.instance_type, output_path=args.output,
                    accept="application/json", max_concurrent_transforms=args.max_concurrent,
                    max_payload=args.max_payload)
    moto.reset_recording()
    if args.model_name:
        job = Transformer(model_name=args.model_name, sagemaker_session=session, **settings)
    else:
        job = Model(image_uri=args.image_uri, model_data=args.model_data, role=args.role,
                    name=f"{args.job_name}-model", sagemaker_session=session,
                    enable_network_isolation=True).transformer(**settings)
    job.transform(f"{args.input}/", data_type="S3Prefix", content_type=transform.CONTENT_TYPE, split_type=None,
                  job_name=args.job_name, wait=False, logs=False)
    return model_and_job_requests(moto)


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
    expected = sdk2_transform_requests(argv, moto)
    moto.reset()
    if REUSED_MODEL in flags:
        reused_model()
    moto.reset_recording()
    assert transform.main(argv) == 0
    assert model_and_job_requests(moto) == expected


DEPLOY = ["--image-uri", SERVE_IMAGE, "--role", ROLE, "--endpoint-name", "dogs"]


def deployed() -> None:
    assert deploy.main([*DEPLOY, "--model-data", MODEL_DATA]) == 0


SDK3_RUNS = {  # script, its flags, what is there before it runs (made in this process)
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


@pytest.mark.parametrize("script, flags, before", SDK3_RUNS.values(), ids=SDK3_RUNS.keys())
def test_the_script_runs_under_sdk3_and_sends_the_same_requests(script, flags, before, moto, tmp_path):
    # .venv-sdk3 holds SageMaker Python SDK 3 (sagemaker-core 2, no Estimator) and, through a .pth file, this project:
    # make test makes it (make setup-sdk3), and a user runs the scripts there as here.
    assert SDK3_PYTHON.is_file(), f"{SDK3_PYTHON} is missing: run make setup-sdk3"
    version = subprocess.run([str(SDK3_PYTHON), "-c", "import importlib.metadata as m; print(m.version('sagemaker'))"],
                             capture_output=True, text=True, check=True).stdout
    assert version.startswith("3."), version
    flags = [flag.replace("{tmp}", str(tmp_path)) for flag in flags]
    sent = []
    for run in ("in this environment", "under SDK 3"):
        moto.reset()
        if before:
            before()
            moto.reset_recording()
        if run == "under SDK 3":
            result = subprocess.run([str(SDK3_PYTHON), f"scripts/{script.__name__.split('.')[-1]}.py", *flags],
                                    cwd=REPO, capture_output=True, text=True, timeout=120,
                                    env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
            assert result.returncode == 0, result.stdout + result.stderr
        else:
            assert script.main(flags) == 0
        sent.append(GENERATED_NAME.sub("-NAME", json.dumps(moto.requests())))
    assert sent[0] == sent[1]
