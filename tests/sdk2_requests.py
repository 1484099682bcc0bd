"""What SageMaker Python SDK 2 sends for a script's flags: its Estimator, HyperparameterTuner, Model and Transformer
set up as the scripts set them up until they built their requests themselves (scripts/estimator.py's
training_estimator), sending to the AWS that AWS_ENDPOINT_URL names (the tests' moto, which records them).

Run by .venv-sdk2's Python (`make setup-sdk2`): SDK 2 cannot share make setup's environment with SDK 3.
Usage: sdk2_requests.py tune|featurize|debug_profile|transform ARGV_JSON
"""

import json
import sys

import sagemaker
from sagemaker.debugger import (
    DebuggerHookConfig,
    ProfilerConfig,
    ProfilerRule,
    Rule,
    TensorBoardOutputConfig,
    rule_configs,
)
from sagemaker.model import Model
from sagemaker.transformer import Transformer
from sagemaker.tuner import CategoricalParameter, ContinuousParameter, HyperparameterTuner

from scripts import aws, debug_profile, transform, tune
from scripts.estimator import training_estimator


def session(args):
    boto = aws.boto_session(args)
    return sagemaker.Session(boto_session=boto, default_bucket=f"sagemaker-{boto.region_name}-{aws.account_id(boto)}")


def tuning(argv):
    args = tune.parse_args(argv)
    sdk = session(args)
    bucket = f"s3://{sdk.default_bucket()}/dog-classifier"
    estimator = training_estimator(
        image_uri=args.image_uri, role=args.role, instance_type=args.instance_type, session=sdk,
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
    tuner.fit(channels, job_name=args.job_name, wait=False)


def featurize(argv):
    args = tune.parse_args(argv)
    sdk = session(args)
    estimator = training_estimator(
        image_uri=args.image_uri, role=args.role, instance_type=args.featurize_instance_type, session=sdk,
        hyperparameters={**args.static_hyperparameters, "featurize": "true"},
        output_path=f"s3://{sdk.default_bucket()}/dog-classifier/tuning/features", base_job_name="dog-featurize")
    estimator.fit({"training": args.data}, wait=False)


def debugging(argv):
    args = debug_profile.parse_args(argv)
    sdk = session(args)
    output = args.output_path or f"s3://{sdk.default_bucket()}/dog-classifier/debug"
    rules = []
    for name in debug_profile.DEBUG_RULES:
        base = getattr(rule_configs, name)()
        parameters = {"num_steps": debug_profile.LOSS_CHECK_STEPS} if name == "loss_not_decreasing" else None
        collections = debug_profile.every_save_interval(base.get("CollectionConfigurations", [])) or None
        rules.append(Rule.sagemaker(base, rule_parameters=parameters, collections_to_save=collections))
    rules.append(ProfilerRule.sagemaker(rule_configs.ProfilerReport()))
    estimator = training_estimator(
        image_uri=args.image_uri, role=args.role, instance_type=args.instance_type, session=sdk,
        hyperparameters=args.overrides, output_path=output, max_run_hours=args.max_run_hours, base_job_name="dog-debug",
        debugger_hook_config=DebuggerHookConfig(s3_output_path=output,
                                                collection_configs=debug_profile.hook_collections()),
        rules=rules, profiler_config=ProfilerConfig(s3_output_path=output, system_monitor_interval_millis=500),
        tensorboard_output_config=TensorBoardOutputConfig(s3_output_path=f"{output}/{args.job_name}/tensorboard"))
    channels = {"training": args.data, **({"pretrained": args.start_from} if args.start_from else {})}
    estimator.fit(channels, job_name=args.job_name, wait=False)


def transforming(argv):
    args = transform.parse_args(argv)
    sdk = session(args)
    settings = dict(instance_count=args.instance_count, instance_type=args.instance_type, output_path=args.output,
                    accept="application/json", max_concurrent_transforms=args.max_concurrent,
                    max_payload=args.max_payload)
    if args.model_name:
        job = Transformer(model_name=args.model_name, sagemaker_session=sdk, **settings)
    else:
        job = Model(image_uri=args.image_uri, model_data=args.model_data, role=args.role,
                    name=f"{args.job_name}-model", sagemaker_session=sdk,
                    enable_network_isolation=True).transformer(**settings)
    job.transform(f"{args.input}/", data_type="S3Prefix", content_type=transform.CONTENT_TYPE, split_type=None,
                  job_name=args.job_name, wait=False, logs=False)


if __name__ == "__main__":
    kind, argv = sys.argv[1], json.loads(sys.argv[2])
    {"tune": tuning, "featurize": featurize, "debug_profile": debugging, "transform": transforming}[kind](argv)
