"""scripts/ against a local AWS: the real SageMaker SDK and boto3 talking to a moto server.

What reached AWS is read from moto's own recording of the requests. moto completes every job at
once and trains nothing; where it lacks an API the test says so next to the one call it works around.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3
import iam_evaluation
import pytest
from botocore.awsrequest import AWSResponse
from conftest import REPO
from moto_aws import ACCOUNT, REGION, ROLE, SERVE_IMAGE, TRAIN_IMAGE

from scripts import (
    aws,
    aws_errors,
    cleanup,
    debug_profile,
    deploy,
    iam_policies,
    job_logs,
    local_serving,
    naming,
    transform,
    tune,
)
from train.metrics import metric_definitions

DATA = "s3://dog-data/dogImages"
PUSH_AND_TUNE = Path(__file__).resolve().parents[1] / "scripts" / "push_and_tune.sh"


def client(service: str):
    """The tests' own calls (setup, checks), signed with other credentials than the scripts' (AWS_ACCESS_KEY_ID
    is `testing`), so the IAM test can tell the scripts' requests apart."""
    return boto3.client(service, region_name=REGION, aws_access_key_id="test-setup", aws_secret_access_key="x")


def rewrite_answers(monkeypatch, operation: str, rewrite, service: str = "sagemaker") -> None:
    """Let `rewrite` edit moto's parsed answer to an operation, in every session the scripts open
    (scripts.aws is the one module that makes them)."""
    original = aws.boto_session

    def session_with_rewritten_answers(args):
        session = original(args)
        session.events.register(f"after-call.{service}.{operation}", rewrite)
        return session

    monkeypatch.setattr(aws, "boto_session", session_with_rewritten_answers)


# ---------------------------------------------------------------- tune.py

def test_tune_sends_the_search_space_objective_and_metric_regexes(moto, capsys):
    assert tune.main(["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", DATA, "--max-jobs", "6",
                      "--max-parallel-jobs", "3", "-p", "epochs=10", "--job-name", "dog-tune-test"]) == 0
    out = capsys.readouterr().out
    assert "tuning job: dog-tune-test" in out
    assert f"https://{REGION}.console.aws.amazon.com/sagemaker/home?region={REGION}#/hyper-tuning-jobs/dog-tune-test" \
        in out

    request = moto.request("CreateHyperParameterTuningJob")
    assert request["TrainingJobDefinition"]["EnableNetworkIsolation"] is True  # every trial without a network
    config = request["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "valid:accuracy"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3}
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}]
    assert ranges["CategoricalParameterRanges"] == [
        {"Name": "batch-size", "Values": ["32", "64", "128", "256", "512"]}]
    assert ranges.get("IntegerParameterRanges", []) == []

    definition = request["TrainingJobDefinition"]
    algorithm = definition["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == TRAIN_IMAGE and algorithm["TrainingInputMode"] == "File"
    assert algorithm["MetricDefinitions"] == metric_definitions()  # the training code's single definition
    assert definition["RoleArn"] == ROLE
    assert definition["HyperParameterTuningResourceConfig"] == {"InstanceCount": 1, "InstanceType": "ml.g4dn.xlarge",
                                                                "VolumeSizeInGB": 30}
    [channel] = definition["InputDataConfig"]
    assert channel["ChannelName"] == "training"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == DATA
    assert definition["StaticHyperParameters"] == {"epochs": "10"}
    assert "EnableManagedSpotTraining" not in definition or not definition["EnableManagedSpotTraining"]
    assert definition["OutputDataConfig"]["S3OutputPath"].startswith(f"s3://sagemaker-{REGION}-{ACCOUNT}/")


def test_a_container_path_is_not_looked_for_on_this_machine(moto):
    # /opt/ml/input/data/... exists in the job's container, not here: the scripts check its form only.
    weights = "/opt/ml/input/data/pretrained/resnet50-custom.pth"
    assert tune.main(["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", DATA, "-p", f"weights={weights}"]) == 0
    assert moto.request("CreateHyperParameterTuningJob")["TrainingJobDefinition"]["StaticHyperParameters"] == {
        "weights": weights}


def test_tune_with_spot_checkpoints_and_a_custom_space(moto):
    assert tune.main(["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", DATA, "--spot",
                      "--checkpoint-s3-uri", "s3://my-bucket/ckpt", "--lr-range", "0.0001", "0.01",
                      "--batch-sizes", "16,32", "--instance-type", "ml.p3.2xlarge", "--max-run-hours", "2"]) == 0
    request = moto.request("CreateHyperParameterTuningJob")
    definition = request["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["CheckpointConfig"]["S3Uri"] == "s3://my-bucket/ckpt/"
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 10800}
    assert definition["HyperParameterTuningResourceConfig"]["InstanceType"] == "ml.p3.2xlarge"
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"][0]["MinValue"] == "0.0001"
    assert ranges["CategoricalParameterRanges"][0]["Values"] == ["16", "32"]


def test_tune_wait_prints_the_best_trial(moto, capsys):
    assert tune.main(["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", DATA, "--wait"]) == 0
    out = capsys.readouterr().out
    # moto completes a tuning job at once and reports a fixed placeholder as its best trial.
    assert "best training job: FakeTrainingJobName" in out


class JobsInProgress:
    """A SageMaker client whose tuning and training jobs are InProgress for `polls` describes, then Completed (moto
    completes every job at once, so the scripts' waits never loop against it)."""

    def __init__(self, polls: int):
        self.answers = ["InProgress"] * polls + ["Completed"]

    def describe_hyper_parameter_tuning_job(self, **_):
        return {"HyperParameterTuningJobStatus": self.answers.pop(0)}

    def describe_training_job(self, **_):
        return {"TrainingJobStatus": self.answers.pop(0)}

    def client(self, service: str):  # as a boto3 session: this for sagemaker, no log streams
        return self


def test_the_waits_poll_until_the_job_has_ended():
    sleeps = []
    assert tune.wait_for_tuning_job(JobsInProgress(3), "dog-tune-x", sleep=sleeps.append) == "Completed"
    assert sleeps == [tune.JOB_POLL_SECONDS] * 3
    sleeps.clear()
    description = job_logs.wait_for_training_job(JobsInProgress(2), "dog-debug-x", show_logs=False,
                                                 sleep=sleeps.append)
    assert description["TrainingJobStatus"] == "Completed" and sleeps == [job_logs.POLL_SECONDS] * 2


def test_tune_featurize_runs_one_featurize_job_then_trials_on_its_features(moto, capsys):
    assert tune.main(["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", DATA, "--featurize", "-p", "epochs=10",
                      "-p", "image-size=160", "--job-name", "dog-tune-features"]) == 0
    out = capsys.readouterr().out
    featurize = moto.request("CreateTrainingJob")
    assert featurize["TrainingJobName"].startswith("dog-featurize-")
    assert featurize["HyperParameters"] == {"epochs": "10", "image-size": "160", "freeze-backbone": "true",
                                            "augment": "false", "featurize": "true"}
    assert featurize["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    [channel] = featurize["InputDataConfig"]
    assert channel["ChannelName"] == "training" and channel["DataSource"]["S3DataSource"]["S3Uri"] == DATA
    # moto completes the job at once; SageMaker would report the same place for its model.tar.gz
    features = (f"{featurize['OutputDataConfig']['S3OutputPath']}/{featurize['TrainingJobName']}/output/"
                "model.tar.gz")
    assert featurize["OutputDataConfig"]["S3OutputPath"] == f"s3://sagemaker-{REGION}-{ACCOUNT}/dog-classifier/tuning/features"
    assert f"featurize job: {featurize['TrainingJobName']}" in out and f"features: {features}" in out

    definition = moto.request("CreateHyperParameterTuningJob")["TrainingJobDefinition"]
    [channel] = definition["InputDataConfig"]  # the trials read features, never the images
    assert channel["ChannelName"] == "features" and channel["DataSource"]["S3DataSource"]["S3Uri"] == features
    assert definition["StaticHyperParameters"] == {"epochs": "10", "image-size": "160", "freeze-backbone": "true",
                                                   "augment": "false"}
    assert definition["HyperParameterTuningResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert "next: python scripts/debug_profile.py --tuning-job dog-tune-features" in out  # final model from images


def test_tune_stops_when_the_featurize_job_fails(moto, monkeypatch):
    # moto completes every job; this turns its answer into what SageMaker says of a failed job.
    def failed(parsed, **_):
        parsed.update(TrainingJobStatus="Failed", FailureReason="AlgorithmError: train split: 40 of 400 files "
                                                                "(10%) are unreadable")

    rewrite_answers(monkeypatch, "DescribeTrainingJob", failed)
    with pytest.raises(SystemExit) as exit_:
        tune.main(["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", DATA, "--featurize"])
    assert "failed: AlgorithmError: train split: 40 of 400 files (10%) are unreadable" in str(exit_.value)
    assert str(exit_.value).startswith("error: featurize job dog-featurize-")
    assert moto.requests("CreateHyperParameterTuningJob") == []  # no trials on features that do not exist


def test_tune_reuses_given_features_without_a_featurize_job(moto):
    features = "s3://my-bucket/features/dog-featurize-1/output/model.tar.gz"
    assert tune.main(["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", DATA, "--features", features,
                      "--instance-type", "ml.c5.2xlarge"]) == 0
    assert moto.requests("CreateTrainingJob") == []
    definition = moto.request("CreateHyperParameterTuningJob")["TrainingJobDefinition"]
    assert definition["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == features
    assert definition["HyperParameterTuningResourceConfig"]["InstanceType"] == "ml.c5.2xlarge"


@pytest.mark.parametrize("args, message", [
    (["--role", "SageMakerRole"], "argument --role: expected an IAM role ARN"),
    (["--data", "dog-data/dogImages"], "argument --data: expected an S3 URI"),
    (["--image-uri", "not an image"], "argument --image-uri: expected an image URI"),
    (["--image-uri", "dog-classifier-train:latest"], "argument --image-uri: expected an image URI"),
    (["--instance-type", "g4dn.xlarge"], "argument --instance-type: expected a SageMaker instance type"),
    (["--max-jobs", "0"], "argument --max-jobs: must be at least 1"),
    (["--lr-range", "0.1", "0.01"], "argument --lr-range: expected 0 < MIN < MAX"),
    (["--lr-range", "0.001", "50"], "--lr: must be between"),
    (["--batch-sizes", "32,abc"], "argument --batch-sizes: expected comma-separated whole numbers"),
    (["-p", "epochs=many"], "--epochs: expected a number"),
    (["-p", "colour=red"], "unrecognized arguments: --colour red"),
    (["-p", "lr=0.01"], "--lr is tuned"),
    (["-p", "data-dir=/tmp"], "--data-dir is a path flag, not a hyperparameter"),
    (["-p", "weights=runs/model.pt"], "--weights runs/model.pt: give the file's path inside the container"),
    (["--checkpoint-s3-uri", "s3://bkt/c"], "argument --checkpoint-s3-uri: only used with --spot"),
    (["--job-name", "dog-tune-" + "x" * 24], "argument --job-name: a tuning job's name has at most 32 characters"),
    (["-p", "featurize=true"], "--featurize is not a trial's hyperparameter: use scripts/tune.py --featurize"),
    (["--featurize", "-p", "augment=true"], "--augment true: trials on fixed features need --augment false"),
    (["--featurize", "-p", "freeze-backbone=no"], "--freeze-backbone no: trials on fixed features need"),
    (["--featurize", "-p", "cache-features=false"], "--cache-features false: trials on fixed features train on"),
    (["--features", "features.tar.gz"], "argument --features: expected an S3 URI"),
    (["--featurize-instance-type", "p3"], "argument --featurize-instance-type: expected a SageMaker instance"),
])
def test_tune_refuses_bad_input_before_calling_aws(args, message, moto, capsys):
    base = {"--image-uri": TRAIN_IMAGE, "--role": ROLE, "--data": DATA}
    for flag in list(base):
        if flag in args:
            del base[flag]
    with pytest.raises(SystemExit) as exit_:
        tune.main([*[part for pair in base.items() for part in pair], *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert moto.requests() == []


# ---------------------------------------------------------------- debug_profile.py

DEBUG_JOB = "dog-debug-test"
DEBUG_OUTPUT = f"sagemaker-{REGION}-{ACCOUNT}"  # the default bucket the scripts name
WRITE_TRIAL = """
import sys, numpy as np
from smdebug.core.modes import ModeKeys
from smdebug.core.writer import FileWriter
trial = sys.argv[1]
for mode, losses in ((ModeKeys.TRAIN, [2.0, 1.5, 1.1, 0.8]), (ModeKeys.EVAL, [1.9, 1.6])):
    for mode_step, loss in enumerate(losses):
        step = mode_step if mode == ModeKeys.TRAIN else 100 + mode_step
        with FileWriter(trial_dir=trial, step=step, worker="worker_0", mode=mode) as writer:
            writer.write_tensor(tdata=np.array(loss, dtype=np.float32), tname="CrossEntropyLoss_output_0",
                                mode=mode, mode_step=mode_step)
# what the hook writes besides the tensors: its collections, and the end-of-job marker
from smdebug.core.access_layer.utils import training_has_ended
from smdebug.core.collection_manager import CollectionManager
collections = CollectionManager()
collections.get("losses").add_tensor_name("CrossEntropyLoss_output_0")
collections.set_num_workers(1)
collections.export(trial, "worker_0_collections.json")
training_has_ended(trial)
"""


def upload_job_outputs(tmp_path, prefix: str) -> None:
    """What a finished SageMaker debug job leaves in S3 (moto trains nothing): real smdebug tensors,
    the ProfilerReport rule's HTML, output.tar.gz with the job's evaluation, and the model."""
    trial = tmp_path / "trial"
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    subprocess.run([sys.executable, "-c", WRITE_TRIAL, str(trial)], check=True, env=env, capture_output=True)
    s3 = client("s3")
    s3.create_bucket(Bucket=DEBUG_OUTPUT)
    for path in trial.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), DEBUG_OUTPUT, f"{prefix}/debug-output/{path.relative_to(trial)}")
    s3.put_object(Bucket=DEBUG_OUTPUT, Key=f"{prefix}/rule-output/ProfilerReport/profiler-output/profiler-report.html",
                  Body=b"<html>report</html>")
    archive = io.BytesIO()
    rules = [{"rule": "Overfit", "status": "IssuesFound", "message": "epoch 2: validation loss 1.2 is 50% above"},
             {"rule": "LowGPUUtilization", "status": "NotApplicable", "message": "no GPU in this run"}]
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, content in (("evaluation.json", {"accuracy": 0.875}), ("rules.json", rules)):
            payload = json.dumps(content).encode()
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    s3.put_object(Bucket=DEBUG_OUTPUT, Key=f"{prefix}/output/output.tar.gz", Body=archive.getvalue())
    s3.put_object(Bucket=DEBUG_OUTPUT, Key=f"{prefix}/output/model.tar.gz", Body=b"model")


def with_rule_statuses(monkeypatch, module, rounds: list[list[dict]]):
    """moto stores a job's rules but never evaluates them: this fills in DescribeTrainingJob's rule
    statuses as SageMaker reports them, one round per call (the last one repeats)."""
    original = module.aws.boto_session
    calls = []

    def add_statuses(parsed, **_):
        parsed["DebugRuleEvaluationStatuses"] = rounds[min(len(calls), len(rounds) - 1)]
        calls.append(1)

    def session(args):
        boto = original(args)
        boto.events.register("after-call.sagemaker.DescribeTrainingJob", add_statuses)
        return boto

    monkeypatch.setattr(module.aws, "boto_session", session)
    monkeypatch.setattr(module, "RULE_POLL_SECONDS", 0)


def test_debug_profile_configures_debugger_rules_and_profiler_and_reads_the_results(moto, tmp_path, monkeypatch,
                                                                                   capsys):
    upload_job_outputs(tmp_path, f"dog-classifier/debug/{DEBUG_JOB}")
    downloads = tmp_path / "downloads"
    running = [{"RuleConfigurationName": "LossNotDecreasing", "RuleEvaluationStatus": "InProgress"},
               {"RuleConfigurationName": "Overfit", "RuleEvaluationStatus": "InProgress"}]
    done = [{"RuleConfigurationName": "LossNotDecreasing", "RuleEvaluationStatus": "NoIssuesFound"},
            {"RuleConfigurationName": "Overfit", "RuleEvaluationStatus": "IssuesFound",
             "StatusDetails": "RuleEvaluationConditionMet: Evaluation of the rule Overfit at step 120 resulted in "
                              "the condition being met"}]
    with_rule_statuses(monkeypatch, debug_profile, [running, running, done])
    assert debug_profile.main(["-p", "lr=0.01", "-p", "batch-size=64", "-p", "epochs=3", "--image-uri", TRAIN_IMAGE,
                               "--role", ROLE, "--data", DATA, "--job-name", DEBUG_JOB,
                               "--download-dir", str(downloads)]) == 0
    out = capsys.readouterr().out

    request = moto.request("CreateTrainingJob")
    assert request["EnableNetworkIsolation"] is True  # SageMaker moves Debugger's and the profiler's output itself
    assert request["HyperParameters"] == {"lr": "0.01", "batch-size": "64", "epochs": "3"}
    assert request["AlgorithmSpecification"]["TrainingImage"] == TRAIN_IMAGE
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions()
    assert request["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    assert request["InputDataConfig"][0]["ChannelName"] == "training"
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == DATA
    output_path = f"s3://{DEBUG_OUTPUT}/dog-classifier/debug"
    hook = request["DebugHookConfig"]
    assert hook["S3OutputPath"] == output_path
    collections = hook["CollectionConfigurations"]
    assert {"losses", "weights", "gradients"} <= {c["CollectionName"] for c in collections}
    # every collection, the rules' own included, saved every 10 steps (the rules' default is 500)
    assert {c["CollectionParameters"]["save_interval"] for c in collections} == {"10"}
    rules = {rule["RuleConfigurationName"]: rule for rule in request["DebugRuleConfigurations"]}
    assert set(rules) == {"LossNotDecreasing", "Overfit", "Overtraining", "VanishingGradient",
                          "PoorWeightInitialization"}
    assert all(".dkr.ecr." in rule["RuleEvaluatorImage"] for rule in rules.values())
    assert rules["LossNotDecreasing"]["RuleParameters"]["rule_to_invoke"] == "LossNotDecreasing"
    # losses saved every 10 steps, compared 500 apart: single minibatches 10 steps apart differ by noise alone
    assert rules["LossNotDecreasing"]["RuleParameters"]["num_steps"] == "500"
    assert request["ProfilerConfig"]["S3OutputPath"] == output_path
    assert request["ProfilerConfig"]["ProfilingIntervalInMilliseconds"] == 500
    assert "ProfilingParameters" not in request["ProfilerConfig"]  # framework profiling: deprecated on PyTorch 2
    assert request["TensorBoardOutputConfig"]["S3OutputPath"] == f"{output_path}/{DEBUG_JOB}/tensorboard"
    [profiler_rule] = request["ProfilerRuleConfigurations"]
    assert profiler_rule["RuleConfigurationName"].startswith("ProfilerReport")
    assert profiler_rule["RuleParameters"]["rule_to_invoke"] == "ProfilerReport"

    job_dir = downloads / DEBUG_JOB
    assert f"training job: {DEBUG_JOB} (Completed)" in out
    assert (job_dir / "loss.png").stat().st_size > 5000
    assert f"loss plot: {job_dir / 'loss.png'}" in out
    assert "train CrossEntropyLoss_output_0: 2.0000 -> 0.8000 over 4 saved steps" in out
    assert "valid CrossEntropyLoss_output_0: 1.9000 -> 1.6000 over 2 saved steps" in out
    assert f"profiler report: {job_dir}/rule-output/ProfilerReport/profiler-output/profiler-report.html" in out
    assert "test accuracy: 0.875" in out
    assert "waiting for the rule evaluations" in out
    assert "  LossNotDecreasing  NoIssuesFound\n" in out
    assert "  Overfit            IssuesFound  RuleEvaluationConditionMet: Evaluation of the rule Overfit" in out
    assert "  Overfit            IssuesFound  epoch 2: validation loss 1.2 is 50% above\n" in out  # in-job rules
    assert "  LowGPUUtilization  NotApplicable  no GPU in this run\n" in out
    assert not list(job_dir.rglob("model.tar.gz"))  # the model stays in S3


def test_debug_profile_prints_the_jobs_log_from_every_host(moto, tmp_path, capsys):
    # Where SageMaker writes a job's log: one stream per host under /aws/sagemaker/TrainingJobs.
    logs = client("logs")
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    for host, lines in (("algo-1", ["epoch 1/2 train", "METRIC epoch=1 valid:accuracy=0.5;"]), ("algo-2", ["ready"])):
        stream = f"dog-debug-logs/{host}-1796350000"
        logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)
        events = [{"timestamp": 1796350000000 + i, "message": line} for i, line in enumerate(lines)]
        logs.put_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream, logEvents=events)
    assert debug_profile.main(["-p", "lr=0.01", "--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", DATA,
                               "--job-name", "dog-debug-logs", "--download-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "[algo-1] epoch 1/2 train\n[algo-1] METRIC epoch=1 valid:accuracy=0.5;\n[algo-2] ready\n" in out
    positions = {}  # a poll prints what came since the last one: nothing twice
    for _ in range(2):
        job_logs.print_new_events(logs, "dog-debug-logs", positions)
    assert capsys.readouterr().out.count("[algo-1] epoch 1/2 train") == 1


def test_debug_profile_fine_tunes_a_finished_jobs_model(moto):
    model = "s3://dog-models/dog-classifier/debug/dog-debug-1/output/model.tar.gz"
    assert debug_profile.main(["-p", "lr=0.0001", "--start-from", model, "--image-uri", TRAIN_IMAGE, "--role", ROLE,
                               "--data", DATA, "--no-logs", "--job-name", "dog-debug-again"]) == 0
    request = moto.request("CreateTrainingJob")
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert channels == {"training": DATA, "pretrained": model}
    # SageMaker puts an S3 object given as a channel at /opt/ml/input/data/<channel>/<its file name>
    assert request["HyperParameters"] == {"lr": "0.0001",
                                          "weights": "/opt/ml/input/data/pretrained/model.tar.gz"}


def test_debug_profile_takes_the_best_trial_of_a_tuning_job(moto, monkeypatch, capsys):
    assert tune.main(["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", DATA, "-p", "epochs=7",
                      "--job-name", "dog-tune-best"]) == 0

    # moto answers DescribeHyperParameterTuningJob with a fixed placeholder best trial
    # ({"string": "TunedHyperParameters"}); this replaces only that field with what SageMaker sends.
    def realistic_best_trial(parsed, **_):
        parsed["BestTrainingJob"].update(TrainingJobName="dog-tune-best-003-1a2b3c4d",
                                         TunedHyperParameters={"lr": "0.0123", "batch-size": '"128"'})

    rewrite_answers(monkeypatch, "DescribeHyperParameterTuningJob", realistic_best_trial)
    assert debug_profile.main(["--tuning-job", "dog-tune-best", "-p", "epochs=2", "--image-uri", TRAIN_IMAGE,
                               "--role", ROLE, "--data", DATA, "--no-logs", "--job-name", "dog-debug-best"]) == 0
    request = moto.request("CreateTrainingJob")
    assert request["HyperParameters"] == {"epochs": "2", "lr": "0.0123", "batch-size": "128"}
    out = capsys.readouterr().out
    assert "hyperparameters: batch-size=128 epochs=2 lr=0.0123" in out
    assert "rules: no rule evaluations reported for this job" in out  # what moto itself answers


def test_debug_profile_refuses_moto_placeholder_hyperparameters_by_name(moto, capsys):
    # moto's placeholder best trial tunes a hyperparameter called "string": the training job would
    # reject it after minutes of provisioning, the script refuses it before creating the job.
    assert tune.main(["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", DATA, "--job-name", "dog-tune-x"]) == 0
    with pytest.raises(SystemExit) as exit_:
        debug_profile.main(["--tuning-job", "dog-tune-x", "--image-uri", TRAIN_IMAGE, "--role", ROLE,
                            "--data", DATA])
    assert "unrecognized arguments: --string" in str(exit_.value)
    assert moto.requests("CreateTrainingJob") == []


@pytest.mark.parametrize("args, message", [
    ([], "give --tuning-job or the hyperparameters"),
    (["-p", "lr"], "argument --hyperparameter: expected name=value"),
    (["-p", "lr=0", "--data", "/tmp"], "argument --data: expected an S3 URI"),
    (["-p", "lr=0.01", "--local", "--data", DATA], "argument --data: --local trains on a local folder"),
    (["-p", "lr=0.01", "--data", "/no/such/folder"], "argument --data: folder /no/such/folder does not exist"),
    (["-p", "lr=-1"], "--lr: must be between"),
    (["-p", "lr=0.01", "--image-uri", "dog-classifier-train:local"], "a local image needs --local"),
    (["-p", "lr=0.01", "--start-from", "/no/model.tar.gz"], "argument --start-from: expected an S3 URI or an"),
    (["-p", "weights=/opt/ml/x.pth", "--start-from", "s3://bkt/m.tar.gz"], "it sets the weights hyperparameter"),
])
def test_debug_profile_refuses_bad_input_before_calling_aws(args, message, moto, capsys):
    argv = [*([] if "--image-uri" in args else ["--image-uri", TRAIN_IMAGE]), "--role", ROLE,
            *([] if "--data" in args else ["--data", DATA]), *args]
    with pytest.raises(SystemExit) as exit_:
        debug_profile.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert moto.requests() == []


# ---------------------------------------------------------------- deploy.py and cleanup.py

MODEL_DATA = "s3://dog-models/dog-classifier/model.tar.gz"


def test_the_local_aws_keeps_awss_hosting_rules(moto):
    # moto alone accepts all of these; AWS does not (tests/moto_as_aws.py), and neither does the tests' AWS.
    from botocore.exceptions import ClientError

    sagemaker = client("sagemaker")
    container = {"Image": SERVE_IMAGE, "ModelDataUrl": MODEL_DATA}
    variants = [{"VariantName": "AllTraffic", "ModelName": "dogs", "InitialInstanceCount": 1,
                 "InstanceType": "ml.m5.large"}]
    sagemaker.create_model(ModelName="dogs", ExecutionRoleArn=ROLE, PrimaryContainer=container)
    sagemaker.create_endpoint_config(EndpointConfigName="dogs", ProductionVariants=variants)
    sagemaker.create_endpoint(EndpointName="dogs", EndpointConfigName="dogs")
    for call, message in (
        (lambda: sagemaker.create_model(ModelName="dogs", ExecutionRoleArn=ROLE, PrimaryContainer=container),
         "Cannot create already existing model"),
        (lambda: sagemaker.create_endpoint_config(EndpointConfigName="dogs", ProductionVariants=variants),
         "Cannot create already existing endpoint configuration"),
        (lambda: sagemaker.create_endpoint(EndpointName="dogs", EndpointConfigName="dogs"),
         "Cannot create already existing endpoint"),
        (lambda: sagemaker.update_endpoint(EndpointName="dogs", EndpointConfigName="dogs"),
         "you must create a new EndpointConfig"),
        (lambda: sagemaker.delete_endpoint_config(EndpointConfigName="dogs"), "must not be deleted"),
    ):
        with pytest.raises(ClientError, match=message) as error:
            call()
        assert error.value.response["Error"]["Code"] == "ValidationException"


def test_deploy_creates_model_config_and_endpoint_on_the_serving_image(moto, capsys):
    assert deploy.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data", MODEL_DATA,
                        "--endpoint-name", "dogs", "--env", "SAGEMAKER_MODEL_SERVER_WORKERS=2"]) == 0
    out = capsys.readouterr().out
    model = moto.request("CreateModel")
    assert naming.is_timestamped(model["ModelName"], "dogs") and model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Image"] == SERVE_IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA
    assert model["PrimaryContainer"]["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    assert model["EnableNetworkIsolation"] is True and "network isolation" not in out  # on, so nothing to say
    config = moto.request("CreateEndpointConfig")
    [variant] = config["ProductionVariants"]
    assert variant["ModelName"] == model["ModelName"] and variant["InstanceType"] == "ml.m5.large"
    assert variant["InitialInstanceCount"] == 1
    endpoint = moto.request("CreateEndpoint")
    assert endpoint["EndpointName"] == "dogs" and endpoint["EndpointConfigName"] == config["EndpointConfigName"]
    assert client("sagemaker").describe_endpoint(EndpointName="dogs")["EndpointStatus"] == "InService"
    assert "endpoint: dogs (InService)" in out
    assert "ml.m5.large: about $0.115/hour per instance" in out
    assert f"clean up: python scripts/cleanup.py --endpoint-name dogs --region {REGION}" in out


NEW_MODEL_DATA = "s3://dog-models/dog-classifier-v2/model.tar.gz"


def deploy_dogs(model_data: str) -> int:
    return deploy.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data", model_data,
                        "--endpoint-name", "dogs"])


def test_deploy_to_an_existing_endpoint_updates_it_in_place(moto, capsys):
    assert deploy_dogs(MODEL_DATA) == 0
    first = moto.request("CreateModel")["ModelName"]
    moto.reset_recording()
    assert deploy_dogs(NEW_MODEL_DATA) == 0
    out = capsys.readouterr().out
    second = moto.request("CreateModel")
    assert second["PrimaryContainer"]["ModelDataUrl"] == NEW_MODEL_DATA and second["ModelName"] != first
    # AWS's order: a new model and config, UpdateEndpoint, the wait for InService, then the old ones go
    calls = [(r["operation"], r["body"].get("EndpointConfigName") or r["body"].get("ModelName"))
             for r in moto.requests() if r["service"] == "SageMaker" and r["operation"] != "DescribeEndpointConfig"]
    name = second["ModelName"]
    assert calls[:3] == [("DescribeEndpoint", None), ("CreateModel", name), ("CreateEndpointConfig", name)]
    assert calls[3] == ("UpdateEndpoint", name)
    waited = calls.index(("DescribeEndpoint", None), 4)
    assert calls[waited + 1:] == [("DescribeEndpoint", None), ("DeleteEndpointConfig", first), ("DeleteModel", first)]
    assert moto.requests("CreateEndpoint") == []
    sagemaker = client("sagemaker")
    assert sagemaker.describe_endpoint(EndpointName="dogs")["EndpointConfigName"] == name
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == [name]
    assert [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]] == [name]
    assert f"updating endpoint dogs (from {first})" in out
    assert f"deleted the old endpoint config {first} and its model {first}\n" in out


def test_a_failed_update_leaves_the_endpoint_on_its_old_model(moto, monkeypatch, capsys):
    assert deploy_dogs(MODEL_DATA) == 0
    first = moto.request("CreateModel")["ModelName"]

    # SageMaker accepts the update, the new instances fail their health check, and it rolls the endpoint back
    # to its old config (RollingBack, then InService): moto keeps the old config, DescribeEndpoint says why.
    update_answered = []

    def accepted_then_rolled_back(**_):
        update_answered.append(1)
        return AWSResponse("https://sagemaker", 200, {}, None), {"EndpointArn": "arn:aws:sagemaker:endpoint/dogs"}

    def failure_reason(parsed, **_):
        if update_answered:
            parsed["FailureReason"] = ("The primary container for production variant AllTraffic did not pass the "
                                       "ping health check.")

    original = aws.boto_session

    def session(args):
        boto = original(args)
        boto.events.register("before-call.sagemaker.UpdateEndpoint", accepted_then_rolled_back)
        boto.events.register("after-call.sagemaker.DescribeEndpoint", failure_reason)
        return boto

    monkeypatch.setattr(aws, "boto_session", session)
    assert deploy_dogs(NEW_MODEL_DATA) == 1
    err = capsys.readouterr().err
    assert f"error: endpoint dogs is InService on {first}: The primary container" in err
    sagemaker = client("sagemaker")
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == [first]  # the new one removed
    assert [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]] == [first]


def test_deploy_waits_for_a_busy_endpoint_instead_of_updating_it(moto, monkeypatch, capsys):
    assert deploy_dogs(MODEL_DATA) == 0
    moto.reset_recording()
    rewrite_answers(monkeypatch, "DescribeEndpoint", lambda parsed, **_: parsed.update(EndpointStatus="Updating"))
    assert deploy_dogs(NEW_MODEL_DATA) == 1
    assert "error: endpoint dogs is Updating: wait until it is InService" in capsys.readouterr().err
    assert moto.requests("CreateModel") == [] and moto.requests("UpdateEndpoint") == []


def test_deploy_the_best_trial_of_a_tuning_job(moto, capsys):
    assert tune.main(["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", DATA, "--job-name", "dog-tune-d",
                      "--output-path", "s3://dog-models/tuning"]) == 0
    assert deploy.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--tuning-job", "dog-tune-d",
                        "--instance-type", "ml.c5.xlarge"]) == 0
    # moto's best trial is always named FakeTrainingJobName; SageMaker writes its model to this key
    assert moto.request("CreateModel")["PrimaryContainer"]["ModelDataUrl"] == \
        "s3://dog-models/tuning/FakeTrainingJobName/output/model.tar.gz"
    assert moto.request("CreateEndpointConfig")["ProductionVariants"][0]["InstanceType"] == "ml.c5.xlarge"


SCALING = ["--min-instances", "1", "--max-instances", "4", "--target-invocations-per-instance", "70"]


def deploy_scaled_dogs(model_data: str, *extra: str) -> int:
    return deploy.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data", model_data,
                        "--endpoint-name", "dogs", *extra])


def scalable_targets() -> list[dict]:
    return client("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]


def test_deploy_with_auto_scaling_and_data_capture(moto, capsys):
    assert deploy_scaled_dogs(MODEL_DATA, *SCALING, "--data-capture", "s3://dog-models/capture",
                              "--capture-percent", "20") == 0
    out = capsys.readouterr().out
    capture = moto.request("CreateEndpointConfig")["DataCaptureConfig"]
    assert capture == {"EnableCapture": True, "InitialSamplingPercentage": 20,
                       "DestinationS3Uri": "s3://dog-models/capture",
                       "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                       "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}}
    # Application Auto Scaling's names for a SageMaker variant, after the endpoint is InService
    target = moto.request("RegisterScalableTarget")
    assert target == {"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/dogs/variant/AllTraffic",
                      "ScalableDimension": "sagemaker:variant:DesiredInstanceCount", "MinCapacity": 1,
                      "MaxCapacity": 4}
    policy = moto.request("PutScalingPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling" and policy["ResourceId"] == target["ResourceId"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 70
    metric = tracking["PredefinedMetricSpecification"]
    assert metric == {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}
    operations = [r["operation"] for r in moto.requests()]
    in_service = max(i for i, operation in enumerate(operations) if operation == "DescribeEndpoint")
    assert operations.index("RegisterScalableTarget") > in_service
    assert "auto scaling: 1-4 instances, holding 70 invocations per instance per minute" in out
    assert "data capture: 20% of requests and responses to s3://dog-models/capture" in out


def test_an_update_of_an_autoscaled_endpoint_keeps_its_scaling(moto, capsys):
    assert deploy_scaled_dogs(MODEL_DATA, *SCALING) == 0
    moto.reset_recording()
    # the same instance type: AWS allows the update; the count auto scaling reached is kept
    assert deploy_scaled_dogs(NEW_MODEL_DATA) == 0
    assert moto.request("UpdateEndpoint")["RetainAllVariantProperties"] is True
    assert moto.requests("DeregisterScalableTarget") == [] and len(scalable_targets()) == 1
    moto.reset_recording()
    # another instance type: AWS refuses the update while the variant is a scalable target (see the next test),
    # so the policy and target go first and come back after, with the same settings
    assert deploy_scaled_dogs(MODEL_DATA, "--instance-type", "ml.c5.xlarge") == 0
    out = capsys.readouterr().out
    operations = [r["operation"] for r in moto.requests()]
    assert operations.index("DeleteScalingPolicy") < operations.index("DeregisterScalableTarget") \
        < operations.index("UpdateEndpoint") < operations.index("RegisterScalableTarget")
    assert "RetainAllVariantProperties" not in moto.request("UpdateEndpoint")
    assert "auto scaling removed for the instance type change" in out
    [target] = scalable_targets()
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    assert moto.request("PutScalingPolicy")["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 70


def test_the_local_aws_refuses_an_instance_type_change_under_auto_scaling(moto):
    from botocore.exceptions import ClientError

    assert deploy_scaled_dogs(MODEL_DATA, *SCALING) == 0
    sagemaker = client("sagemaker")
    sagemaker.create_model(ModelName="dogs-bigger", ExecutionRoleArn=ROLE,
                           PrimaryContainer={"Image": SERVE_IMAGE, "ModelDataUrl": MODEL_DATA})
    sagemaker.create_endpoint_config(EndpointConfigName="dogs-bigger", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "dogs-bigger", "InitialInstanceCount": 1,
        "InstanceType": "ml.c5.xlarge"}])
    with pytest.raises(ClientError, match="is a target for auto scaling") as error:
        sagemaker.update_endpoint(EndpointName="dogs", EndpointConfigName="dogs-bigger")
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_cleanup_removes_auto_scaling_before_the_endpoint(moto, capsys):
    assert deploy_scaled_dogs(MODEL_DATA, *SCALING) == 0
    moto.reset_recording()
    assert cleanup.main(["--endpoint-name", "dogs", "--yes"]) == 0
    assert "auto scaling of endpoint dogs (its policy and scalable target)" in capsys.readouterr().out
    operations = [r["operation"] for r in moto.requests()]
    assert operations.index("DeleteScalingPolicy") < operations.index("DeregisterScalableTarget") \
        < operations.index("DeleteEndpoint")
    assert scalable_targets() == []
    assert client("application-autoscaling").describe_scaling_policies(ServiceNamespace="sagemaker")[
        "ScalingPolicies"] == []


@pytest.mark.parametrize("args, message", [
    (["--model-data", "model.tar.gz"], "argument --model-data: expected an S3 URI or an existing model.tar.gz"),
    (["--model-data", MODEL_DATA, "--instance-type", "m5.large"], "argument --instance-type"),
    (["--model-data", MODEL_DATA, "--endpoint-name", "dogs_v2"], "argument --endpoint-name: expected 1-63 letters"),
    (["--model-data", MODEL_DATA, "--role", "arn:aws:iam::12:role/x"], "argument --role"),
    (["--model-data", MODEL_DATA, "--env", "no-equals"], "argument --env: expected NAME=VALUE"),
    (["--model-data", MODEL_DATA, "--image-uri", "dog-classifier-serve:local"], "a local image needs --local"),
    (["--model-data", MODEL_DATA, "--min-instances", "1", "--max-instances", "3"], "give all three for auto scaling"),
    (["--model-data", MODEL_DATA, *SCALING, "--instance-count", "5"], "5 is outside --min-instances 1 .. "),
    (["--model-data", MODEL_DATA, "--min-instances", "0", "--max-instances", "3",
      "--target-invocations-per-instance", "5"], "argument --min-instances: must be at least 1"),
    (["--model-data", MODEL_DATA, *SCALING[:4], "--target-invocations-per-instance", "0"],
     "argument --target-invocations-per-instance: must be above 0"),
    (["--model-data", MODEL_DATA, "--capture-percent", "10"], "argument --capture-percent: needs --data-capture"),
    (["--model-data", MODEL_DATA, "--data-capture", "s3://dog-models/c", "--capture-percent", "101"], "must be 1-100"),
    ([], "one of the arguments --model-data --tuning-job --model-prefix is required"),
])
def test_deploy_refuses_bad_input_before_calling_aws(args, message, moto, capsys):
    with pytest.raises(SystemExit) as exit_:
        deploy.main([*([] if "--image-uri" in args else ["--image-uri", SERVE_IMAGE]),
                     *([] if "--role" in args else ["--role", ROLE]), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert moto.requests() == []


def test_deploy_refuses_a_local_model_for_a_sagemaker_endpoint(moto, tmp_path, capsys):
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"x")
    with pytest.raises(SystemExit):
        deploy.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data", str(archive)])
    assert "a SageMaker endpoint needs an S3 URI" in capsys.readouterr().err


def test_cleanup_leaves_nothing_behind(moto, capsys):
    assert deploy.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data", MODEL_DATA,
                        "--endpoint-name", "dogs"]) == 0
    ecr, s3, sagemaker = client("ecr"), client("s3"), client("sagemaker")
    for repository in ("dog-classifier-train", "dog-classifier-serve"):
        ecr.create_repository(repositoryName=repository)
        ecr.put_image(repositoryName=repository, imageTag="latest",
                      imageManifest=json.dumps({"schemaVersion": 2, "config": {"digest": f"sha256:{'a' * 64}"}}),
                      imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json")
    s3.create_bucket(Bucket="dog-data")
    for key in ("dogImages/train/a.jpg", "dogImages/valid/b.jpg", "other/keep.txt"):
        s3.put_object(Bucket="dog-data", Key=key, Body=b"x")
    capsys.readouterr()

    assert cleanup.main(["--endpoint-name", "dogs", "--ecr-repository", "dog-classifier-train",
                         "--ecr-repository", "dog-classifier-serve", "--s3-prefix", "s3://dog-data/dogImages",
                         "--yes"]) == 0
    out = capsys.readouterr().out
    name = moto.request("CreateModel")["ModelName"]
    assert "endpoint dogs" in out and f"endpoint config {name}" in out and f"model {name}" in out
    assert "2 objects under s3://dog-data/dogImages/" in out
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_models()["Models"] == []
    assert ecr.describe_repositories()["repositories"] == []
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="dog-data")["Contents"]] == ["other/keep.txt"]
    # a second run finds nothing and says so
    assert cleanup.main(["--endpoint-name", "dogs", "--yes"]) == 0
    assert "endpoint dogs: nothing found" in capsys.readouterr().out


def test_cleanup_finds_what_a_failed_deploy_left_without_an_endpoint(moto, capsys):
    sagemaker = client("sagemaker")
    for name in ("dogs-20261130-091500-123", "dogs-20261130-091501-456", "dogs-v2", "cats-20261130-091500-123"):
        sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE,
                               PrimaryContainer={"Image": SERVE_IMAGE, "ModelDataUrl": MODEL_DATA})
    sagemaker.create_endpoint_config(EndpointConfigName="dogs-20261130-091500-123", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "dogs-20261130-091500-123", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}])
    assert cleanup.main(["--endpoint-name", "dogs", "--yes"]) == 0
    assert "endpoint config dogs-20261130-091500-123" in capsys.readouterr().out
    # deploy.py's names for this endpoint go; another endpoint's, and names it never makes, stay
    assert sorted(m["ModelName"] for m in sagemaker.list_models()["Models"]) == ["cats-20261130-091500-123",
                                                                                  "dogs-v2"]
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []


def test_cleanup_reports_each_object_s3_did_not_delete(moto, monkeypatch, capsys):
    s3 = client("s3")
    s3.create_bucket(Bucket="dog-data")
    for key in ("dogImages/a.jpg", "dogImages/b.jpg", "dogImages/c.jpg"):
        s3.put_object(Bucket="dog-data", Key=key, Body=b"x")

    def refused(parsed, **_):  # DeleteObjects answers 200 and lists the objects it kept under Errors
        parsed["Errors"] = [{"Key": "dogImages/b.jpg", "Code": "AccessDenied", "Message": "Access Denied"}]

    rewrite_answers(monkeypatch, "DeleteObjects", refused, service="s3")
    assert cleanup.main(["--s3-prefix", "s3://dog-data/dogImages", "--yes"]) == 1
    captured = capsys.readouterr()
    assert "could not delete s3://dog-data/dogImages/b.jpg: AccessDenied: Access Denied" in captured.err
    assert "error: 1 of 3 objects under s3://dog-data/dogImages/ were not deleted" in captured.err
    assert "deleted:" not in captured.out


def test_cleanup_asks_first_and_deletes_nothing_without_an_answer(moto, monkeypatch, capsys):
    assert deploy.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data", MODEL_DATA,
                        "--endpoint-name", "dogs"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal, as in CI
    assert cleanup.main(["--endpoint-name", "dogs"]) == 1
    assert "pass --yes" in capsys.readouterr().err
    assert client("sagemaker").describe_endpoint(EndpointName="dogs")["EndpointStatus"] == "InService"


@pytest.mark.parametrize("args, message", [
    ([], "nothing to delete"),
    (["--s3-prefix", "s3://dog-data"], "refusing to empty a whole bucket"),
    (["--ecr-repository", "Dog Classifier"], "argument --ecr-repository: expected an ECR repository name"),
])
def test_cleanup_refuses_bad_input(args, message, moto, capsys):
    with pytest.raises(SystemExit) as exit_:
        cleanup.main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


# ---------------------------------------------------------------- IAM policies

USER_DATA = "s3://my-datasets/dogImages"  # a dataset in the user's own bucket, as the scripts' examples take it
DEFAULT_OUTPUT = f"s3://sagemaker-{REGION}-{ACCOUNT}/dog-classifier"


def scripts_requests(moto) -> list[dict]:
    """What the scripts sent: the tests' own setup calls sign with other credentials (see `client`)."""
    return [e for e in moto.entries() if "Credential=testing/" in e["headers"].get("Authorization", "")]


def test_the_operator_policy_allows_every_call_the_scripts_make(moto, tmp_path, monkeypatch):
    # The policy gives no s3:ListAllMyBuckets (iam_evaluation.DENIED_ON_PURPOSE): AWS answers the SDK's ListBuckets
    # with AccessDenied. This answers it so here too, and the workflow must still run.
    original = aws.boto_session

    def session(args):
        boto = original(args)
        boto.events.register("before-call.s3.ListBuckets", lambda **_: (
            AWSResponse("https://s3", 403, {}, None), {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}))
        return boto

    monkeypatch.setattr(aws, "boto_session", session)
    client("ecr").create_repository(repositoryName="dog-classifier-train")
    upload_job_outputs(tmp_path, "dog-classifier/debug/dog-debug-iam")
    assert tune.main(["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", USER_DATA, "--wait", "--job-name",
                      "dog-tune-iam"]) == 0
    assert tune.main(["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", USER_DATA, "--featurize"]) == 0
    assert debug_profile.main(["-p", "lr=0.01", "--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", USER_DATA,
                               "--no-logs", "--job-name", "dog-debug-iam", "--download-dir", str(tmp_path)]) == 0
    assert deploy.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--tuning-job", "dog-tune-iam", *SCALING,
                        "--data-capture", f"{DEFAULT_OUTPUT}/capture"]) == 0
    assert deploy.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data",
                        f"{DEFAULT_OUTPUT}/debug/dog-debug-iam/output/model.tar.gz",
                        "--instance-type", "ml.c5.large"]) == 0  # an update to another type: scaling off, then on
    # a batch transform over photos in the user's bucket, its summary read back from the default output
    photos, predictions = f"{USER_DATA}/new-photos", f"{DEFAULT_OUTPUT}/predictions"
    client("s3").create_bucket(Bucket="my-datasets")
    client("s3").put_object(Bucket="my-datasets", Key="dogImages/new-photos/rex.jpg", Body=b"jpeg")
    client("s3").put_object(Bucket=f"sagemaker-{REGION}-{ACCOUNT}", Key="dog-classifier/predictions/rex.jpg.out",
                            Body=json.dumps({"label": "001.Affenpinscher", "probability": 0.9, "top_k": []}).encode())
    assert transform.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data",
                           f"{DEFAULT_OUTPUT}/debug/dog-debug-iam/output/model.tar.gz", "--input", photos,
                           "--output", predictions, "--wait", "--summarize", str(tmp_path / "predictions.csv")]) == 0
    assert cleanup.main(["--endpoint-name", "dog-classifier", "--ecr-repository", "dog-classifier-train",
                         "--s3-prefix", f"{DEFAULT_OUTPUT}/debug", "--yes"]) == 0

    requests = scripts_requests(moto)
    needed = {a for entry in requests for a in iam_evaluation.authorizations(entry, ACCOUNT)}
    actions = {a.action for a in needed}
    # the whole workflow reached AWS, object-level S3 calls included
    assert {"sagemaker:CreateHyperParameterTuningJob", "sagemaker:CreateTrainingJob", "sagemaker:CreateEndpoint",
            "sagemaker:UpdateEndpoint", "sagemaker:DeleteModel", "sagemaker:ListModels", "iam:PassRole",
            "ecr:DeleteRepository", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket",
            "application-autoscaling:RegisterScalableTarget", "application-autoscaling:PutScalingPolicy",
            "application-autoscaling:DeleteScalingPolicy",
            "application-autoscaling:DeregisterScalableTarget", "sagemaker:CreateTransformJob",
            "sagemaker:DescribeTransformJob"} <= actions
    assert any(a.action == "s3:GetObject" and a.resource.endswith("/rule-output/ProfilerReport/profiler-output/"
                                                                  "profiler-report.html") for a in needed)
    policy = iam_policies.render(REGION, ACCOUNT, [USER_DATA])["operator-policy.json"]
    assert iam_evaluation.denied(policy, requests, ACCOUNT) == []
    for request_ in iam_evaluation.DENIED_ON_PURPOSE:
        assert not iam_evaluation.is_allowed(policy, request_) and request_ not in needed  # never reached AWS
    # the same calls against a policy for another prefix are refused: the evaluation can say no
    narrow = iam_policies.render(REGION, ACCOUNT, [USER_DATA], ["s3://elsewhere/dog-classifier"])
    assert any(line.startswith("s3:GetObject on arn:aws:s3:::sagemaker-")
               for line in iam_evaluation.denied(narrow["operator-policy.json"], requests, ACCOUNT))


OUTSIDE = [  # calls neither policy may allow
    iam_evaluation.Authorization("s3:GetObject", "arn:aws:s3:::someone-elses-bucket/secrets.csv"),
    iam_evaluation.Authorization("s3:DeleteObject", "arn:aws:s3:::my-datasets/other-project/a.jpg"),
    iam_evaluation.Authorization("s3:PutObject", f"arn:aws:s3:::sagemaker-{REGION}-{ACCOUNT}/other/x"),
    iam_evaluation.Authorization("sagemaker:DeleteEndpoint", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/prod-ads"),
    iam_evaluation.Authorization("sagemaker:CreateTrainingJob",
                                 f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/someone-else"),
    iam_evaluation.Authorization("iam:PassRole", ROLE, (("iam:PassedToService", "ec2.amazonaws.com"),)),
    iam_evaluation.Authorization("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/Admin",
                                 (("iam:PassedToService", "sagemaker.amazonaws.com"),)),
    iam_evaluation.Authorization("ecr:DeleteRepository", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/prod-app"),
    iam_evaluation.Authorization("ec2:RunInstances", "*"),
    iam_evaluation.Authorization("iam:CreateServiceLinkedRole",
                                 f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
                                 (("iam:AWSServiceName", "ecs.amazonaws.com"),)),
    iam_evaluation.Authorization("cloudwatch:DeleteAlarms", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:prod-5xx"),
    iam_evaluation.Authorization("s3:ListBucket", "arn:aws:s3:::someone-elses-bucket", (("s3:prefix", ""),)),
    iam_evaluation.Authorization("sns:Publish", f"arn:aws:sns:{REGION}:{ACCOUNT}:prod-alerts"),
]


@pytest.mark.parametrize("request_", OUTSIDE, ids=str)
def test_the_policies_deny_what_lies_outside_the_workflow(request_):
    for name, policy in iam_policies.render(REGION, ACCOUNT, [USER_DATA]).items():
        if name != "execution-role-trust.json":
            assert not iam_evaluation.is_allowed(policy, request_), name


def test_the_execution_role_does_what_sagemaker_does_for_a_job_and_an_endpoint():
    # AWS's "SageMaker execution roles" page: a training job reads its channels, lists their buckets, writes the
    # model and checkpoints, pulls its image and Debugger's rule images, writes logs and metrics; an endpoint
    # reads the model.tar.gz and pulls the serving image.
    policy = iam_policies.render(REGION, ACCOUNT, [USER_DATA])["execution-role-policy.json"]
    A = iam_evaluation.Authorization
    output = f"arn:aws:s3:::sagemaker-{REGION}-{ACCOUNT}/dog-classifier"
    job = [
        A("s3:ListBucket", "arn:aws:s3:::my-datasets", (("s3:prefix", "dogImages/"),)),
        A("s3:GetObject", "arn:aws:s3:::my-datasets/dogImages/train/001.Affenpinscher/a.jpg"),
        A("s3:GetObject", f"{output}/tuning/features/dog-featurize-1/output/model.tar.gz"),  # a features channel
        A("s3:PutObject", f"{output}/tuning/dog-tune-1-001/output/model.tar.gz"),
        A("s3:PutObject", f"{output}/checkpoints/dog-tune-1-001/checkpoint.pt"),
        A("s3:GetObject", f"{output}/debug/dog-debug-1/output/model.tar.gz"),  # an endpoint's model
        A("s3:PutObject", f"{output}/capture/dogs/AllTraffic/2026/11/30/16/00-00-000-a.jsonl"),  # data capture
        A("s3:GetObject", "arn:aws:s3:::my-datasets/dogImages/new-photos/rex.jpg"),  # a transform job's input
        A("s3:PutObject", f"{output}/predictions/rex.jpg.out"),  # and its output
        A("s3:GetObject", f"{output}/async-inputs/0a1b-rex.jpg"),  # an async endpoint reads a queued request
        A("s3:PutObject", f"{output}/async-answers/6f0e-4c2d.out"),  # and writes its answer
        A("sns:Publish", f"arn:aws:sns:{REGION}:{ACCOUNT}:dog-answers"),  # then says so
        A("logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TransformJobs:"
                               "log-stream:dog-transform-1/i-0123456789-AllTraffic"),
        A("ecr:GetAuthorizationToken", "*"),
        A("ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/dog-classifier-train"),
        A("ecr:GetDownloadUrlForLayer", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/dog-classifier-serve"),
        A("ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:503895931360:repository/sagemaker-debugger-rules"),
        A("logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs:"
                               "log-stream:dog-tune-1-001/algo-1-1700000000"),
        A("cloudwatch:PutMetricData", "*", (("cloudwatch:namespace", "/aws/sagemaker/TrainingJobs"),)),
    ]
    assert [str(a) for a in job if not iam_evaluation.is_allowed(policy, a)] == []
    # SageMaker lists a channel's prefix: that one lists, nothing else in the bucket does
    listing = [A("s3:ListBucket", "arn:aws:s3:::my-datasets", (("s3:prefix", prefix),))
               for prefix in ("dogImages", "dogImages/train")]
    assert all(iam_evaluation.is_allowed(policy, a) for a in listing)
    for refused in [A("s3:ListBucket", "arn:aws:s3:::my-datasets"),  # the whole bucket
                    A("s3:ListBucket", "arn:aws:s3:::my-datasets", (("s3:prefix", "other-project/"),)),
                    A("s3:ListBucket", "arn:aws:s3:::my-datasets", (("s3:prefix", "dogImages-private/"),)),
                    A("s3:ListBucket", f"arn:aws:s3:::sagemaker-{REGION}-{ACCOUNT}", (("s3:prefix", "other/"),))]:
        assert not iam_evaluation.is_allowed(policy, refused), str(refused)
    # the data is read-only to the jobs, a dataset uploaded under the output prefix (push_and_tune.sh) too,
    # though the jobs write beside it
    for write in ("s3:PutObject", "s3:DeleteObject"):
        for dataset in ("arn:aws:s3:::my-datasets/dogImages/x.jpg", f"{output}/data/dogImages/train/a/b.jpg"):
            assert not iam_evaluation.is_allowed(policy, A(write, dataset)), (write, dataset)
    assert iam_evaluation.is_allowed(policy, A("s3:GetObject", f"{output}/data/dogImages/train/a/b.jpg"))
    assert f"dog-classifier/{iam_policies.DATA_UPLOAD_FOLDER}/" in PUSH_AND_TUNE.read_text()


def test_the_operator_lists_only_the_projects_prefixes_and_checks_that_its_buckets_exist():
    policy = iam_policies.render(REGION, ACCOUNT, [USER_DATA])["operator-policy.json"]
    A = iam_evaluation.Authorization
    default_bucket = f"arn:aws:s3:::sagemaker-{REGION}-{ACCOUNT}"
    # HeadBucket is s3:ListBucket without a prefix: the SDK's default-bucket check needs it on the output bucket
    assert iam_evaluation.is_allowed(policy, A("s3:ListBucket", default_bucket))
    assert iam_evaluation.is_allowed(policy, A("s3:ListBucket", default_bucket, (("s3:prefix", "dog-classifier/"),)))
    assert not iam_evaluation.is_allowed(policy, A("s3:ListBucket", default_bucket, (("s3:prefix", "other/"),)))
    assert not iam_evaluation.is_allowed(policy, A("s3:ListBucket", "arn:aws:s3:::my-datasets"))  # no output there


def test_iam_policies_refuses_an_output_inside_a_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        iam_policies.main(["--region", REGION, "--account", ACCOUNT, "--data", "s3://my-datasets/dogImages",
                           "--output", "s3://my-datasets/dogImages/runs", "--out-dir", str(tmp_path)])
    assert exit_.value.code == 2
    assert "argument --output: --output s3://my-datasets/dogImages/runs lies inside --data s3://my-datasets/dogImages" \
        in capsys.readouterr().err


def lint(policy: dict, community: bool) -> list[tuple[str, str, list[str]]]:
    """parliament's findings: (issue, severity, actions)."""
    from parliament import analyze_policy_string, enhance_finding

    analyzed = analyze_policy_string(json.dumps(policy), include_community_auditors=community)
    return sorted((f.issue, enhance_finding(f).severity, f.location.get("actions", [])) for f in analyzed.findings)


def test_every_rendered_policy_passes_the_iam_linter():
    from parliament.cli import override_config

    override_config(Path(parliament_dir()) / "community_auditors" / "config_override.yaml")  # their severities
    for name, policy in iam_policies.render(REGION, ACCOUNT, [USER_DATA, "s3://more-data/x"]).items():
        if name == "execution-role-trust.json":
            # A role's trust policy is a resource policy: AWS gives it a Principal and no Resource, which this
            # identity-policy linter reports as its one finding; its content is checked here instead.
            assert [f[:2] for f in lint(policy, community=False)] == [("MALFORMED", "HIGH")]
            assert policy["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                                            "Action": "sts:AssumeRole"}]
            continue
        assert lint(policy, community=False) == [], name  # parliament's own auditors: nothing at all
        # Its community auditors flag two actions by name, however narrow the statement: ecr:GetAuthorizationToken
        # (docker login to ECR and SageMaker's image pull need it; AWS gives it no resource-level permission) and
        # iam:PassRole (CreateTrainingJob needs it; here one role, passed to SageMaker only), and
        # iam:CreateServiceLinkedRole (auto scaling's role, that one role only, for that one service). Nothing else.
        expected = [("CREDENTIALS_EXPOSURE", "MEDIUM", ["ecr:getauthorizationtoken"])]
        if name == "operator-policy.json":
            expected.append(("PERMISSIONS_MANAGEMENT_ACTIONS", "MEDIUM", ["iam:createservicelinkedrole",
                                                                        "iam:passrole"]))
        found = [(issue, severity, sorted(actions)) for issue, severity, actions in lint(policy, community=True)]
        assert found == expected, name  # (parliament lists a finding's actions in no fixed order)


def parliament_dir() -> str:
    import parliament

    return str(Path(parliament.__file__).parent)


def test_iam_policies_renders_the_files_and_refuses_bad_input(tmp_path, capsys):
    assert iam_policies.main(["--region", "eu-west-1", "--account", "210987654321", "--data", USER_DATA,
                              "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["execution-role-policy.json", "execution-role-trust.json", "operator-policy.json"]
    operator = json.loads((tmp_path / "operator-policy.json").read_text())
    text = json.dumps(operator)
    assert "arn:aws:s3:::my-datasets/dogImages/*" in text and "sagemaker-eu-west-1-210987654321" in text
    assert "REGION" not in text and "ACCOUNT" not in text
    assert "aws iam create-role --role-name SageMakerExecutionRole" in out
    for args, message in ((["--region", "useast1"], "argument --region"), (["--account", "12"], "argument --account"),
                          (["--data", "my-datasets/x"], "argument --data")):
        base = {"--region": "us-east-1", "--account": ACCOUNT}
        argv = [*[x for k, v in base.items() if k not in args for x in (k, v)], *args]
        with pytest.raises(SystemExit):
            iam_policies.main(argv)
        assert message in capsys.readouterr().err


# ---------------------------------------------------------------- push_and_tune.sh (its full run: test_cloud_docker.py)

def run_push_and_tune(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHON": sys.executable}
    return subprocess.run(["bash", str(PUSH_AND_TUNE), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_push_and_tune_help():
    result = run_push_and_tune(["--help"])
    assert result.returncode == 0
    for flag in ("--role", "--data", "--registry", "--fetch-dogimages", "--region", "--profile", "--no-tune"):
        assert flag in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--data", "{data}"], "argument --role: required"),
    (["--role", "SageMakerRole", "--data", "{data}"], "argument --role: expected an IAM role ARN"),
    (["--role", ROLE], "argument --data: required"),
    (["--role", ROLE, "--data", "/no/such/folder"], "argument --data: folder /no/such/folder does not exist"),
    (["--role", ROLE, "--data", "{empty}"], "has no train/ folder"),
    (["--role", ROLE, "--data", "s3://x"], "argument --data: expected an S3 URI"),
    (["--role", ROLE, "--data", "{data}", "--fetch-dogimages", "d"], "argument --fetch-dogimages: not with --data"),
    (["--role", ROLE, "--data", "{data}", "--train-repository", "Dogs!"], "expected an ECR repository name"),
    (["--role", ROLE, "--data", "{data}", "--tag", "a b"], "argument --tag: not a valid image tag"),
    (["--role", ROLE, "--data", "{data}", "--registry"], "argument --registry: expected a value"),
    (["--role", ROLE, "--data", "{data}", "--colour", "red"], "unknown argument --colour"),
    (["--role", ROLE, "--data", "{data}", "--platforms", "linux/amd64,linux/arm/v7"],
     "argument --platforms: expected linux/amd64 and/or linux/arm64 (comma-separated), got 'linux/arm/v7'"),
    (["--role", ROLE, "--data", "{data}", "--arm64-build-arg", "BASE_IMAGE=x"],
     "argument --arm64-build-arg: needs --platforms with linux/arm64"),
])
def test_push_and_tune_refuses_bad_input_before_building(args, message, moto, tiny_dataset, tmp_path):
    args = [a.replace("{data}", str(tiny_dataset)).replace("{empty}", str(tmp_path)) for a in args]
    result = run_push_and_tune(args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert moto.requests() == []


def test_a_failed_local_mode_job_is_found_by_its_failure_file(tmp_path):
    # SDK local mode reports every job Completed under Compose v2 (its `up --abort-on-container-exit` exits 0;
    # the Docker stage shows it with a real failed two-host job): the failure file in output.tar.gz decides.
    from scripts.estimator import local_job_failure

    assert local_job_failure(tmp_path).startswith("the job left no output.tar.gz")
    for name, files in (("ok", {"data/evaluation.json": b"{}", "success": b""}),
                        ("failed", {"data/rules.json": b"[]", "failure": b"--lr: invalid float value: 'fast'\n"})):
        folder = tmp_path / name
        folder.mkdir()
        with tarfile.open(folder / "output.tar.gz", "w:gz") as archive:
            for member, data in files.items():
                info = tarfile.TarInfo(member)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    assert local_job_failure(tmp_path / "ok") is None
    assert local_job_failure(tmp_path / "failed") == "--lr: invalid float value: 'fast'"


# ---------------------------------------------------------------- AWS errors a user can fix

def no_aws_configuration(tmp_path) -> dict:
    """An environment with no credentials, no region, no config files and no instance metadata to ask."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "AWS_EC2_METADATA_DISABLED": "true", "PYTHONUNBUFFERED": "1"})
    return env


def run_script(name: str, args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"scripts/{name}.py", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


TUNE_ARGS = ["--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data", "s3://dog-data/dogImages", "--max-jobs", "2"]


@pytest.mark.parametrize("script, args", [
    ("tune", TUNE_ARGS),
    ("deploy", ["--model-data", "s3://dog-data/model.tar.gz", "--image-uri", SERVE_IMAGE, "--role", ROLE]),
    ("cleanup", ["--endpoint-name", "dog-classifier"]),
    ("debug_profile", ["-p", "lr=0.01", "--image-uri", TRAIN_IMAGE, "--role", ROLE, "--data",
                       "s3://dog-data/dogImages"]),
])
def test_no_region_then_no_credentials_each_end_in_one_line_that_says_what_to_do(script, args, tmp_path):
    env = no_aws_configuration(tmp_path)
    result = run_script(script, args, env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "Traceback" not in result.stderr
    assert "no AWS region" in result.stderr and "AWS_DEFAULT_REGION" in result.stderr
    # What the message recommends works: with AWS_DEFAULT_REGION set, the region is found, and the next thing
    # missing is the credentials, again in one line.
    result = run_script(script, args, {**env, "AWS_DEFAULT_REGION": "us-east-1"})
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no AWS credentials found"), result.stderr
    result = run_script(script, [*args, "--debug"], {**env, "AWS_DEFAULT_REGION": "us-east-1"})
    shown = result.stdout + result.stderr  # the SDK's rich traceback hook prints to stdout
    assert result.returncode == 1 and "Traceback" in shown and "NoCredentialsError" in shown


def test_invoke_without_credentials_says_so_in_one_line(tmp_path):
    image = tmp_path / "dog.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 not really")
    result = run_script("invoke", [str(image), "--endpoint-name", "dog-classifier", "--region", "us-east-1"],
                        no_aws_configuration(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: no AWS credentials found") and "Traceback" not in result.stderr


def client_error(code: str, message: str = "details", operation: str = "CreateTrainingJob"):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize("code, expected", [
    ("ExpiredTokenException", "your AWS credentials have expired (ExpiredTokenException on CreateTrainingJob)"),
    ("ExpiredToken", "get new ones"),
    ("AccessDeniedException", "access denied to CreateTrainingJob (User: arn:aws:iam::1:user/x is not authorized)"),
    ("ThrottlingException", "AWS is throttling CreateTrainingJob (ThrottlingException)"),
    ("InvalidClientTokenId", "AWS does not accept these credentials"),
    ("ResourceLimitExceeded", "Service Quotas"),
])
def test_aws_errors_a_user_can_fix_become_one_line(code, expected):
    # The codes AWS's Common Errors list and SageMaker's API reference give; botocore's own ClientError carries them.
    from scripts.aws_errors import explain

    message = "User: arn:aws:iam::1:user/x is not authorized" if code.startswith("AccessDenied") else "details"
    reason = explain(client_error(code, message))
    assert reason is not None and expected in reason and "\n" not in reason, reason


def test_errors_of_ours_keep_their_traceback(capsys):
    from scripts.aws_errors import run

    def fails_with(error):
        def main(argv):
            raise error
        return main

    assert run(fails_with(client_error("ThrottlingException")), []) == 1
    assert capsys.readouterr().err.startswith("error: AWS is throttling CreateTrainingJob")
    with pytest.raises(KeyError):  # a bug, not an AWS error: shown as it is
        run(fails_with(KeyError("bug")), [])
    with pytest.raises(Exception, match="ThrottlingException"):
        run(fails_with(client_error("ThrottlingException")), ["--debug"])
    with pytest.raises(Exception, match="ValidationException"):  # AWS's answer to a bad request: the SDK's text
        run(fails_with(client_error("ValidationException")), [])


@pytest.mark.parametrize("uri, rule", [
    ("s3://b/dogImages", "bucket name 'b' is 1 characters long; bucket names are 3-63 characters"),
    ("s3://Dog_Data/x", "may hold only lowercase letters, digits, dots and hyphens"),
    ("s3://dog..data/x", "may not hold two adjacent dots"),
    ("s3://10.0.0.1/x", "may not be formatted as an IP address"),
])
def test_an_s3_uri_is_refused_naming_the_bucket_rule_it_breaks(uri, rule):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(rule)):
        aws.s3_uri(uri)


def test_local_mode_gets_the_hook_configuration_sagemaker_would(tmp_path):
    # debughookconfig.json is what SageMaker writes into input/config from the job's DebugHookConfig: the cloud
    # job's collections with the same save interval, tensors to SageMaker's default LocalPath; not the ones only
    # Debugger's rules read (relu_input): the rules run on SageMaker, never in local mode.
    written = json.loads(debug_profile.write_local_hook_config(tmp_path / "hook").read_text())
    cloud = debug_profile.debugging_fields("s3://bucket/debug", "job", REGION)["DebugHookConfig"]
    cloud_collections = {c["CollectionName"]: c for c in cloud["CollectionConfigurations"]}
    assert set(cloud_collections) == {"losses", "weights", "gradients", "relu_input"}
    assert all(c == cloud_collections[c["CollectionName"]] for c in written["CollectionConfigurations"])
    assert {c["CollectionName"] for c in written["CollectionConfigurations"]} == {"losses", "weights", "gradients"}
    assert written["LocalPath"] == "/opt/ml/output/tensors" and "S3OutputPath" not in written
    assert debug_profile.LOCAL_HOOK_ENVIRONMENT["SMDEBUG_CONFIG_FILE_PATH"].endswith(
        f"/{debug_profile.LOCAL_HOOK_CHANNEL}/debughookconfig.json")


class ListingS3:
    """An S3 client that lists the given keys and "downloads" each as a file holding its name. A stand-in
    on purpose: what is tested is where the script writes what a key names; S3 stores `../` in a key as
    written, and whether a local stand-in keeps it is beside the point."""

    def __init__(self, keys):
        self.keys, self.downloaded = keys, []

    def get_paginator(self, _name):
        keys = self.keys

        class Pages:
            def paginate(self, Bucket, Prefix):  # boto3's argument names
                return [{"Contents": [{"Key": key} for key in keys if key.startswith(Prefix)]}]

        return Pages()

    def download_file(self, bucket, key, filename):
        self.downloaded.append(key)
        Path(filename).write_text(key)


@pytest.mark.parametrize("evil", ["dog-classifier/debug/job-1/../../../planted.txt",
                                  "dog-classifier/debug/job-1//etc/planted.txt",
                                  "dog-classifier/debug/job-1/rule-output/../../../../planted.txt",
                                  "dog-classifier/debug/job-1/linked/planted.txt"])
def test_job_outputs_never_land_outside_the_download_folder(tmp_path, evil):
    destination = tmp_path / "runs" / "job-1"
    destination.mkdir(parents=True)
    (destination / "linked").symlink_to(tmp_path)  # a link left in the folder by an earlier download
    s3 = ListingS3(["dog-classifier/debug/job-1/rule-output/report.json", evil])
    with pytest.raises(aws_errors.RefusedData, match="would be written outside") as refused:
        debug_profile.download_job_outputs(s3, "s3://bucket/dog-classifier/debug", "job-1", destination)
    assert s3.downloaded == []  # refused before anything was written
    assert not list(tmp_path.rglob("planted.txt")) and not Path("/etc/planted.txt").exists()
    assert aws_errors.explain(refused.value).startswith(f"S3 key {evil!r}")  # the script's one line


def test_job_outputs_keep_their_folders(tmp_path):
    s3 = ListingS3(["dog-classifier/debug/job-1/rule-output/ProfilerReport/report.html",
                    "dog-classifier/debug/job-1/output/model.tar.gz", "dog-classifier/debug/job-1/debug-output/"])
    files = debug_profile.download_job_outputs(s3, "s3://bucket/dog-classifier/debug", "job-1", tmp_path / "d")
    assert files == [tmp_path / "d" / "rule-output" / "ProfilerReport" / "report.html"]


def test_local_mode_serves_an_s3_or_local_model_unpacked_where_the_serving_user_can_read_it(moto, tmp_path):
    # pytest's folders are 0700 and home folders often 0750: the serving image's unprivileged model-server user
    # reads /opt/ml/model from a folder of its own, 0755 with 0644 files
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in (("model.json", b"{}"), ("code/inference.py", b"# handler")):
            member = tarfile.TarInfo(name)
            member.size, member.mode = len(data), 0o600
            tar.addfile(member, io.BytesIO(data))
    client("s3").create_bucket(Bucket="dog-models")
    client("s3").put_object(Bucket="dog-models", Key="runs/model.tar.gz", Body=archive.getvalue())
    (tmp_path / "mine.tar.gz").write_bytes(archive.getvalue())
    tmp_path.chmod(0o700)
    for given in ("s3://dog-models/runs/model.tar.gz", f"file://{tmp_path / 'mine.tar.gz'}"):
        folder = local_serving.unpacked_model(aws.local_model_tarball(client("s3"), given))
        try:
            assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == [
                "code", "code/inference.py", "model.json"]
            assert folder.stat().st_mode & 0o777 == 0o755 and (folder / "code").stat().st_mode & 0o777 == 0o755
            assert (folder / "code" / "inference.py").stat().st_mode & 0o777 == 0o644
        finally:
            shutil.rmtree(folder)


@pytest.mark.parametrize("member, refused", [
    (lambda: _link("model.json", "/etc/shadow"), "only plain files inside the archive"),
    (lambda: _file("../../outside.txt", b"x"), "only plain files inside the archive"),
])
def test_local_mode_refuses_a_model_archive_that_reaches_outside_its_folder(member, refused, tmp_path):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info, data = member()
        tar.addfile(info, data)
    with pytest.raises(local_serving.LocalServingError, match=refused):
        local_serving.unpacked_model(archive)
    assert not (tmp_path / "outside.txt").exists()


def _link(name: str, target: str):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def _file(name: str, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def test_the_local_serving_container_is_published_on_loopback_alone_with_the_model_read_only():
    command = local_serving.run_command("dog-classifier-serve:local", "dog-local-dogs", Path("/tmp/m"), 8085,
                                        {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    assert command == ["docker", "run", "-d", "--name", "dog-local-dogs", "-p", "127.0.0.1:8085:8080",
                       "-v", "/tmp/m:/opt/ml/model:ro", "-e", "SAGEMAKER_MODEL_SERVER_WORKERS=2", "--",
                       "dog-classifier-serve:local", "serve"]
    assert local_serving.container_name("dogs/../x y") == "dog-local-dogs-..-x-y"
