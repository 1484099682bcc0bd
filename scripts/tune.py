#!/usr/bin/env python3
"""Start a SageMaker hyperparameter tuning job on the training image.

    python scripts/tune.py --image-uri ACCOUNT.dkr.ecr.REGION.amazonaws.com/dog-classifier-train:latest \\
        --role arn:aws:iam::ACCOUNT:role/SageMakerExecutionRole --data s3://BUCKET/dogImages --wait

Search space (the original Udacity project's, overridable): lr continuous on a log scale, batch-size categorical.
Objective: valid:accuracy of the epoch the job ships (its last line, `best_epoch=`), maximised, read
from the job's log with the training program's own regexes. Early stopping Auto. `--spot` runs every
trial on managed spot capacity with checkpoints in S3 (interrupted trials resume). Prints the job
name and its console page; `--wait` also prints the best job, its hyperparameters and objective value.

`--featurize`: a frozen backbone gives every trial the same features, so one featurize job
(`featurize=true`, on --featurize-instance-type) computes them once, and each trial takes its
model.tar.gz as a `features` channel and trains only the head: seconds on a CPU instance
(--instance-type defaults to ml.m5.xlarge then). `--features S3_URI` reuses an earlier featurize
job's model.tar.gz. The final model is still trained from images: the `next:` line's
debug_profile.py run takes the best trial's hyperparameters and the image data.
"""

from __future__ import annotations

import argparse
import sys
import time

from scripts import aws, aws_errors, naming
from scripts.estimator import check_hyperparameters, parse_hyperparameters
from scripts.job_logs import wait_for_training_job
from scripts.training_requests import (
    DEFAULT_MAX_RUN_HOURS,
    TUNING_JOB_NAME_LENGTH,
    SearchSpace,
    TrainingJobSpec,
    create_training_job,
    create_tuning_job,
)
from train.errors import UsageError
from train.hyperparameters import str_to_bool
from train.metrics import OBJECTIVE  # the job prints the shipped epoch's value last
from train.tune import DEFAULT_BATCH_SIZES, DEFAULT_LR_RANGE, batch_sizes  # one search space, local and SageMaker

GPU_INSTANCE = "ml.g4dn.xlarge"
CPU_INSTANCE = "ml.m5.xlarge"  # a trial on fixed features trains a small head: a GPU would idle
JOB_POLL_SECONDS = 30


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="scripts/tune.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-uri", type=aws.image_uri, required=True, help="the training image in ECR")
    parser.add_argument("--role", type=aws.role_arn, required=True, help="SageMaker execution role ARN")
    parser.add_argument("--data", type=aws.s3_uri, required=True,
                        help="S3 prefix holding train/ valid/ test/ (the `training` channel)")
    parser.add_argument("--max-jobs", type=aws.positive_int, default=8, help="trials in all (default 8)")
    parser.add_argument("--max-parallel-jobs", type=aws.positive_int, default=2,
                        help="trials at once (default 2; your account's instance quota bounds it)")
    parser.add_argument("--instance-type", type=aws.instance_type,
                        help=f"instance per trial (default {GPU_INSTANCE}: one T4 GPU; "
                             f"with --featurize {CPU_INSTANCE})")
    parser.add_argument("--featurize", action="store_true",
                        help="compute the frozen backbone's features once, in a featurize job, and tune heads on them")
    parser.add_argument("--featurize-instance-type", type=aws.instance_type, default=GPU_INSTANCE,
                        help=f"instance of the featurize job (default {GPU_INSTANCE})")
    parser.add_argument("--features", type=aws.s3_uri,
                        help="an earlier featurize job's model.tar.gz: no new featurize job (implies --featurize)")
    parser.add_argument("--spot", action="store_true", help="managed spot training, checkpoints to S3")
    parser.add_argument("--checkpoint-s3-uri", type=aws.s3_uri,
                        help="with --spot (default: s3://<default bucket>/dog-classifier/checkpoints)")
    parser.add_argument("--output-path", type=aws.s3_uri,
                        help="where trial models go (default: s3://<default bucket>/dog-classifier/tuning)")
    parser.add_argument("--lr-range", type=float, nargs=2, metavar=("MIN", "MAX"), default=DEFAULT_LR_RANGE,
                        help="learning rate range, log scale (default 0.001 0.1)")
    parser.add_argument("--batch-sizes", type=batch_sizes, default=list(DEFAULT_BATCH_SIZES),
                        help="batch sizes to choose from (default 32,64,128,256,512)")
    parser.add_argument("--hyperparameter", "-p", action="append", default=[], metavar="NAME=VALUE",
                        help="a static hyperparameter of every trial, e.g. -p epochs=10 (repeatable)")
    parser.add_argument("--max-run-hours", type=float, default=DEFAULT_MAX_RUN_HOURS,
                        help=f"per trial (default {DEFAULT_MAX_RUN_HOURS})")
    parser.add_argument("--job-name", type=aws.name, help="tuning job name (default: dog-tune-<timestamp>)")
    parser.add_argument("--wait", action="store_true", help="wait for the tuning job and print the best trial")
    aws.add_aws_arguments(parser)
    args = parser.parse_args(argv)
    low, high = args.lr_range
    if not 0 < low < high:
        parser.error(f"argument --lr-range: expected 0 < MIN < MAX, got {low} {high}")
    if args.job_name and len(args.job_name) > TUNING_JOB_NAME_LENGTH:
        parser.error(f"argument --job-name: a tuning job's name has at most {TUNING_JOB_NAME_LENGTH} characters, "
                     f"got {len(args.job_name)}")
    if args.checkpoint_s3_uri and not args.spot:
        parser.error("argument --checkpoint-s3-uri: only used with --spot")
    args.featurize = args.featurize or args.features is not None
    args.instance_type = args.instance_type or (CPU_INSTANCE if args.featurize else GPU_INSTANCE)
    try:
        args.static_hyperparameters = parse_hyperparameters(args.hyperparameter)
        tuned = {"lr", "batch-size"} & set(args.static_hyperparameters)
        if tuned:
            raise UsageError(f"--{sorted(tuned)[0]} is tuned: set its range with --lr-range / --batch-sizes")
        if "featurize" in args.static_hyperparameters:
            raise UsageError("--featurize is not a trial's hyperparameter: use scripts/tune.py --featurize")
        if args.featurize:
            args.static_hyperparameters = features_trial_hyperparameters(args.static_hyperparameters)
        for lr in (low, high):  # the ends of the search space must be values the job accepts
            for size in (min(args.batch_sizes), max(args.batch_sizes)):
                check_hyperparameters({**args.static_hyperparameters, "lr": str(lr), "batch-size": str(size)})
    except UsageError as error:
        parser.error(f"argument --hyperparameter/--lr-range/--batch-sizes: {error}")
    return args


def features_trial_hyperparameters(static: dict[str, str]) -> dict[str, str]:
    """A trial on fixed features trains a head on a frozen backbone without augmentation: say so, or refuse.
    (The values were already checked by the training program's parser.)"""
    required = {"freeze-backbone": True, "augment": False}
    for name, value in required.items():
        if name in static and str_to_bool(static[name]) != value:
            raise UsageError(f"--{name} {static[name]}: trials on fixed features need --{name} {str(value).lower()}")
    if static.get("cache-features", "auto").strip().lower() != "auto" and not str_to_bool(static["cache-features"]):
        raise UsageError("--cache-features false: trials on fixed features train on the cached features")
    return {**static, **{name: str(value).lower() for name, value in required.items()}}


def start_featurize_job(args, boto, client) -> str:
    """Run the featurize job to the end; the S3 URI of its model.tar.gz (the trials' `features` channel)."""
    spec = TrainingJobSpec(image_uri=args.image_uri, role=args.role, instance_type=args.featurize_instance_type,
                           channels={"training": args.data}, output_path=f"{args.output_path}/features",
                           hyperparameters={**args.static_hyperparameters, "featurize": "true"},
                           max_run_hours=args.max_run_hours)
    name = naming.timestamped("dog-featurize")
    client.create_training_job(**create_training_job(spec, name))
    print(f"featurize job: {name} (one backbone pass over {args.data})")
    print(f"console: {aws.console_url(boto.region_name, 'jobs', name)}", flush=True)
    description = wait_for_training_job(boto, name, show_logs=False)
    if description["TrainingJobStatus"] != "Completed":
        raise SystemExit(f"error: featurize job {name} {description['TrainingJobStatus'].lower()}: "
                         f"{description.get('FailureReason', 'no reason given')}")
    features = description["ModelArtifacts"]["S3ModelArtifacts"]
    print(f"features: {features}", flush=True)
    return features


def default_locations(args, boto) -> None:
    """--output-path and, with --spot, --checkpoint-s3-uri where not given: under the default bucket."""
    if args.output_path and (args.checkpoint_s3_uri or not args.spot):
        return
    prefix = f"s3://{aws.default_bucket(boto)}/dog-classifier"
    args.output_path = args.output_path or f"{prefix}/tuning"
    if args.spot:
        args.checkpoint_s3_uri = args.checkpoint_s3_uri or f"{prefix}/checkpoints"


def tuning_request(args, channels: dict[str, str]) -> dict:
    spec = TrainingJobSpec(image_uri=args.image_uri, role=args.role, instance_type=args.instance_type,
                           channels=channels, output_path=args.output_path, hyperparameters=args.static_hyperparameters,
                           spot=args.spot, checkpoint_s3_uri=args.checkpoint_s3_uri, max_run_hours=args.max_run_hours)
    space = SearchSpace(continuous={"lr": tuple(args.lr_range)}, categorical={"batch-size": args.batch_sizes})
    name = args.job_name or naming.timestamped("dog-tune", TUNING_JOB_NAME_LENGTH)
    return create_tuning_job(spec, name, OBJECTIVE, space, args.max_jobs, args.max_parallel_jobs)


def wait_for_tuning_job(client, name: str, sleep=time.sleep) -> str:
    """Poll until the tuning job has ended; its status (boto3 has no waiter for tuning jobs)."""
    while True:
        status = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
            "HyperParameterTuningJobStatus"]
        if status in ("Completed", "Failed", "Stopped"):
            return status
        sleep(JOB_POLL_SECONDS)


def best_training_job(client, tuning_job_name: str) -> dict | None:
    """The tuner's best trial (None before one finishes): its name, tuned hyperparameters and objective
    value, with the tuning job's static hyperparameters and output path beside them."""
    description = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job_name)
    best = description.get("BestTrainingJob")
    if not best:
        return None
    definition = description.get("TrainingJobDefinition", {})
    return {"name": best["TrainingJobName"], "hyperparameters": best.get("TunedHyperParameters", {}),
            "objective": best.get("FinalHyperParameterTuningJobObjectiveMetric", {}),
            "static_hyperparameters": definition.get("StaticHyperParameters", {}),
            "output_path": definition.get("OutputDataConfig", {}).get("S3OutputPath", "").rstrip("/")}


def require_best_training_job(client, tuning_job_name: str) -> dict:
    best = best_training_job(client, tuning_job_name)
    if best is None:
        raise SystemExit(f"error: --tuning-job: {tuning_job_name} has no completed trial yet")
    return best


def print_best(best: dict | None) -> None:
    if best is None:
        print("no trial has finished with an objective value yet")
        return
    objective = best["objective"]
    print(f"best training job: {best['name']}")
    print(f"  {objective.get('MetricName', OBJECTIVE)} = {objective.get('Value')}")
    for name, value in sorted(best["hyperparameters"].items()):
        print(f"  {name} = {value}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    boto = aws.boto_session(args)
    client = boto.client("sagemaker")
    default_locations(args, boto)
    channels = {"training": args.data}
    if args.featurize:
        channels = {"features": args.features or start_featurize_job(args, boto, client)}
    request = tuning_request(args, channels)
    client.create_hyper_parameter_tuning_job(**request)
    name = request["HyperParameterTuningJobName"]
    print(f"tuning job: {name}")
    print(f"console: {aws.console_url(boto.region_name, 'hyper-tuning-jobs', name)}")
    print(f"next: python scripts/debug_profile.py --tuning-job {name} --image-uri {args.image_uri} "
          f"--role {args.role} --data {args.data}")
    if args.wait:
        print(f"tuning job {name}: {wait_for_tuning_job(client, name).lower()}")
        print_best(best_training_job(client, name))
    return 0


if __name__ == "__main__":
    sys.exit(aws_errors.run(main))
