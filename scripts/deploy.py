#!/usr/bin/env python3
"""Deploy a trained model to a SageMaker real-time endpoint on the serving image.

    python scripts/deploy.py --image-uri ACCOUNT.dkr.ecr.REGION.amazonaws.com/dog-classifier-serve:latest \\
        --role arn:aws:iam::ACCOUNT:role/SageMakerExecutionRole --tuning-job dog-tune-...   # or --model-data s3://.../model.tar.gz

Creates a model (the serving image + the artifact) and an endpoint config, both named
<endpoint>-<UTC time> (SageMaker refuses a second resource of one name), then the endpoint
(--instance-type, default ml.m5.large, one instance), waits until it is InService, and prints
its name, what the instance costs per hour and the command that deletes it all again: an
endpoint is billed every hour it exists, used or not.

If the endpoint exists, the same command updates it in place: the new model and endpoint config,
then UpdateEndpoint (SageMaker moves the traffic to new instances with no downtime), a wait for
InService, and only then the old endpoint config and model are deleted. An update that fails
leaves the endpoint on its old model and removes the new, unused config and model.

Auto scaling: `--min-instances 1 --max-instances 4 --target-invocations-per-instance 100` registers the
variant with Application Auto Scaling and attaches a target-tracking policy on
SageMakerVariantInvocationsPerInstance (invocations per instance per minute). An update that changes
the instance type of an autoscaled endpoint removes the policy and target first and puts them back
after (AWS refuses the update otherwise); one that keeps it retains the instance count reached.
Data capture: `--data-capture s3://BUCKET/capture --capture-percent 10` records that share of requests
and responses there (images base64-encoded, JSON answers as text); the execution role must be allowed
to write there (scripts/iam_policies.py --output).

Serverless: `--serverless-memory 3072 --max-concurrency 5` makes a serverless endpoint instead
(ServerlessConfig: no instance to pay for while idle, billed per request by memory size, a cold
start after idle time; one worker in the container, as AWS recommends; 4 MB payloads at most).
AWS offers no auto scaling of instances, no data capture and no GPU there, and cannot turn an
instance-based endpoint into a serverless one (the script refuses before calling).

Asynchronous: `--async --output s3://BUCKET/async-answers` makes an asynchronous endpoint
(AsyncInferenceConfig): requests are queued, read from S3 and answered into --output (errors
into --failure-output, notices to --success-topic / --error-topic SNS topics); up to
--max-concurrent-invocations per instance. The container waits up to an hour per request and takes
images up to 100 MB there (SAGEMAKER_MODEL_SERVER_TIMEOUT=3600, SAGEMAKER_MAX_PAYLOAD_IN_MB=100,
unless --env says otherwise): what InvokeEndpointAsync's InvocationTimeoutSeconds allows at most.
`scripts/invoke.py --async` sends to it.

Multi-model: `--multi-model --model-prefix s3://BUCKET/kennels` serves every model.tar.gz under the
prefix from one endpoint (Mode MultiModel; the image's SAGEMAKER_MULTI_MODEL mode): SageMaker
loads a model on its first request (`invoke.py --target-model NAME.tar.gz`) and unloads the least
used when memory is short. Adding a model is copying its model.tar.gz under the prefix.

`--local` runs the serving image on this machine as SageMaker runs it on an instance (Docker; the
locally built image; an S3, file:// or local model.tar.gz, unpacked at /opt/ml/model) on
127.0.0.1:--local-port, streams its log and serves until Ctrl-C, then removes the container
(scripts/local_serving.py; the same under SDK 2 and SDK 3). `scripts/invoke.py --local` reaches it.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
from pathlib import Path

from scripts import autoscaling, aws, aws_errors, local_serving, naming
from scripts.isolation import SERVERLESS, network_isolation
from scripts.tune import require_best_training_job

# On-demand real-time inference, us-east-1, USD per instance-hour (2026 list prices; other regions
# differ by up to ~30%): an order of magnitude for "what does leaving it running cost".
HOURLY_PRICE_US_EAST_1 = {
    "ml.t2.medium": 0.056, "ml.m5.large": 0.115, "ml.m5.xlarge": 0.23, "ml.m5.2xlarge": 0.461,
    "ml.c5.large": 0.102, "ml.c5.xlarge": 0.204, "ml.c5.2xlarge": 0.408,
    "ml.g4dn.xlarge": 0.736, "ml.g5.xlarge": 1.408, "ml.inf2.xlarge": 0.99,
}


def price_class(instance_type: str) -> str:
    price = HOURLY_PRICE_US_EAST_1.get(instance_type)
    if price is None:
        return f"{instance_type}: see the SageMaker pricing page (real-time inference)"
    return (f"{instance_type}: about ${price:.3f}/hour per instance on demand (us-east-1), "
            f"${price * 24 * 30:,.0f} a month if left running")


def model_data(value: str) -> str:
    """An S3 URI, or with --local a file:// URI or an existing local model.tar.gz."""
    if value.startswith("s3://"):
        return aws.s3_uri(value)
    path = Path(value.removeprefix("file://"))
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"expected an S3 URI or an existing model.tar.gz, got {value!r}")
    return f"file://{path.resolve()}"


def environment_pair(value: str) -> tuple[str, str]:
    name, sep, setting = value.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {value!r}")
    return name, setting


def positive_number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value!r}")
    return number


SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)  # ProductionVariantServerlessConfig's values
MAX_SERVERLESS_CONCURRENCY = 200


def serverless_memory(value: str) -> int:
    number = aws.positive_int(value)
    if number not in SERVERLESS_MEMORY_MB:
        raise argparse.ArgumentTypeError(f"one of {', '.join(map(str, SERVERLESS_MEMORY_MB))} (MB), got {number}")
    return number


def concurrency(value: str) -> int:
    number = aws.positive_int(value)
    if number > MAX_SERVERLESS_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"at most {MAX_SERVERLESS_CONCURRENCY} (AWS's limit), got {number}")
    return number


SNS_TOPIC = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}$")
ASYNC_ENVIRONMENT = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "3600", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100"}


def sns_topic(value: str) -> str:
    if not SNS_TOPIC.match(value):
        raise argparse.ArgumentTypeError(f"expected an SNS topic ARN like arn:aws:sns:us-east-1:123456789012:dog-done, "
                                         f"got {value!r}")
    return value


def percent(value: str) -> int:
    number = aws.positive_int(value)
    if number > 100:
        raise argparse.ArgumentTypeError(f"must be 1-100, got {number}")
    return number


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="scripts/deploy.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-uri", type=aws.local_or_registry_image, required=True, help="the serving image")
    parser.add_argument("--role", type=aws.role_arn, required=True, help="SageMaker execution role ARN")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-data", type=model_data, help="the model.tar.gz a training job wrote")
    source.add_argument("--tuning-job", type=aws.name, help="deploy the best trial of this tuning job")
    source.add_argument("--model-prefix", type=aws.s3_uri,
                        help="with --multi-model: the S3 prefix whose .tar.gz files are the endpoint's models")
    parser.add_argument("--endpoint-name", type=aws.name, default="dog-classifier",
                        help="endpoint, endpoint config and model name (default dog-classifier)")
    parser.add_argument("--instance-type", type=aws.instance_type, default="ml.m5.large",
                        help="default ml.m5.large (2 vCPU, 8 GiB)")
    parser.add_argument("--instance-count", type=aws.positive_int, default=1)
    parser.add_argument("--env", type=environment_pair, action="append", default=[], metavar="NAME=VALUE",
                        help="container setting, e.g. SAGEMAKER_MODEL_SERVER_WORKERS=2 (repeatable)")
    scaling = parser.add_argument_group("auto scaling (all three together)")
    scaling.add_argument("--min-instances", type=aws.positive_int, help="fewest instances auto scaling keeps")
    scaling.add_argument("--max-instances", type=aws.positive_int, help="most instances auto scaling starts")
    scaling.add_argument("--target-invocations-per-instance", type=positive_number,
                         help="SageMakerVariantInvocationsPerInstance to hold (requests per instance per minute)")
    serverless = parser.add_argument_group("serverless (instead of instances)")
    serverless.add_argument("--serverless-memory", type=serverless_memory, metavar="MB",
                            help=f"memory of a serverless endpoint: {', '.join(map(str, SERVERLESS_MEMORY_MB))}")
    serverless.add_argument("--max-concurrency", type=concurrency,
                            help="requests a serverless endpoint serves at once, 1-200 (default 5)")
    parser.add_argument("--multi-model", action="store_true",
                        help="a multi-model endpoint: every model.tar.gz under --model-prefix, picked per request")
    queued = parser.add_argument_group("asynchronous inference")
    queued.add_argument("--async", dest="async_", action="store_true", help="an asynchronous endpoint")
    queued.add_argument("--output", type=aws.s3_uri, help="S3 prefix for the answers (with --async)")
    queued.add_argument("--failure-output", type=aws.s3_uri, help="S3 prefix for failed requests' errors")
    queued.add_argument("--success-topic", type=sns_topic, help="SNS topic ARN told of each answer")
    queued.add_argument("--error-topic", type=sns_topic, help="SNS topic ARN told of each failure")
    queued.add_argument("--max-concurrent-invocations", type=aws.positive_int,
                        help="requests SageMaker hands each instance at once (default: SageMaker's choice)")
    capture = parser.add_argument_group("data capture")
    capture.add_argument("--data-capture", type=aws.s3_uri, help="S3 prefix for captured requests and responses")
    capture.add_argument("--capture-percent", type=percent, help="share of requests captured (default 100)")
    parser.add_argument("--local", action="store_true", help="the serving container on this machine (Docker), "
                                                               "until Ctrl-C")
    parser.add_argument("--local-port", type=aws.port, default=8080, help="with --local (default 8080)")
    aws.add_aws_arguments(parser)
    args = parser.parse_args(argv)
    aws.require_registry_image_unless_local(parser, args)
    if args.local and args.tuning_job:
        parser.error("argument --tuning-job: not with --local; pass --model-data (a local model.tar.gz)")
    if args.local and args.instance_count != 1:
        parser.error("argument --instance-count: --local serves one container")
    scaling = [args.min_instances, args.max_instances, args.target_invocations_per_instance]
    if any(value is not None for value in scaling) and None in scaling:
        parser.error("arguments --min-instances, --max-instances, --target-invocations-per-instance: give all three "
                     "for auto scaling")
    args.scaling = autoscaling.Scaling(*scaling) if None not in scaling else None
    if args.scaling and not args.min_instances <= args.instance_count <= args.max_instances:
        parser.error(f"argument --instance-count: {args.instance_count} is outside --min-instances "
                     f"{args.min_instances} .. --max-instances {args.max_instances}")
    if args.capture_percent is not None and not args.data_capture:
        parser.error("argument --capture-percent: needs --data-capture s3://...")
    if args.local and (args.scaling or args.data_capture or args.serverless_memory):
        parser.error("auto scaling, data capture and serverless are SageMaker endpoint features: not with --local")
    if args.multi_model != bool(args.model_prefix):
        parser.error("arguments --multi-model, --model-prefix: give both (a multi-model endpoint serves the models "
                     "under a prefix)")
    if args.multi_model and (args.local or args.serverless_memory or args.async_):
        parser.error("argument --multi-model: not with --local, --serverless-memory or --async (AWS has no "
                     "serverless or asynchronous multi-model endpoints)")
    async_only = [flag for flag, value in (("--output", args.output), ("--failure-output", args.failure_output),
                                           ("--success-topic", args.success_topic),
                                           ("--error-topic", args.error_topic),
                                           ("--max-concurrent-invocations", args.max_concurrent_invocations)) if value]
    if async_only and not args.async_:
        parser.error(f"argument {async_only[0]}: needs --async")
    if args.async_ and not args.output:
        parser.error("argument --async: needs --output s3://... (where SageMaker writes the answers)")
    if args.async_ and (args.local or args.serverless_memory):
        parser.error("argument --async: not with --local or --serverless-memory (AWS has no asynchronous serverless "
                     "endpoints)")
    if args.max_concurrency is not None and args.serverless_memory is None:
        parser.error("argument --max-concurrency: needs --serverless-memory MB")
    if args.serverless_memory:
        args.max_concurrency = args.max_concurrency or 5
        given = [flag for flag, value in (("--instance-type", args.instance_type != "ml.m5.large"),
                                          ("--instance-count", args.instance_count != 1),
                                          ("--min-instances ...", args.scaling), ("--data-capture", args.data_capture))
                 if value]
        if given:
            parser.error(f"argument --serverless-memory: not with {', '.join(given)} (a serverless endpoint has no "
                         "instances, and AWS offers no data capture there)")
    if not args.local and args.model_data and not args.model_data.startswith("s3://"):
        parser.error(f"argument --model-data: a SageMaker endpoint needs an S3 URI, got {args.model_data!r} "
                     "(or add --local)")
    return args


def best_model_data(client, tuning_job_name: str) -> str:
    """Where SageMaker put the best trial's model: <S3OutputPath>/<training job>/output/model.tar.gz."""
    best = require_best_training_job(client, tuning_job_name)
    return f"{best['output_path']}/{best['name']}/output/model.tar.gz"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    boto = aws.boto_session(args)
    if args.local:
        print(f"model data: {args.model_data}")
        return serve_locally(aws.local_model_tarball(boto.client("s3"), args.model_data), args)
    client = boto.client("sagemaker")
    if args.tuning_job:
        args.model_data = best_model_data(client, args.tuning_job)
    if args.multi_model:
        args.model_data = f"{args.model_prefix}/"  # ModelDataUrl: the prefix, as a folder
    print(f"model data: {args.model_data}")
    status = deploy_to_sagemaker(client, boto.client("application-autoscaling"), args)
    if status:
        return status
    print(f"endpoint: {args.endpoint_name} (InService)")
    if args.data_capture:
        print(f"data capture: {args.capture_percent or 100}% of requests and responses to {args.data_capture}")
    if args.async_:
        print(f"asynchronous: requests queued, answers written to {args.output}")
    if args.multi_model:
        print(f"multi-model: each .tar.gz under {args.model_prefix}/ is a model, loaded on its first request; add "
              f"one while it runs: aws s3 cp model.tar.gz {args.model_prefix}/NAME.tar.gz")
    print(f"console: {aws.console_url(boto.region_name, 'endpoints', args.endpoint_name)}")
    if args.serverless_memory:
        print(f"serverless: {args.serverless_memory} MB, up to {args.max_concurrency} requests at once; payloads up "
              "to 4 MB; the first request after idle time waits for a cold start")
        print("cost: per request, by memory size and milliseconds of compute (see the SageMaker pricing page, "
              "Serverless Inference); nothing while idle")
    else:
        print(f"cost: {price_class(args.instance_type)} x {args.instance_count}")
    target = " --target-model NAME.tar.gz" if args.multi_model else " --async" if args.async_ else ""
    print(f"try it: python scripts/invoke.py dog.jpg{target} --endpoint-name {args.endpoint_name} "
          f"--region {boto.region_name}")
    print(f"clean up: python scripts/cleanup.py --endpoint-name {args.endpoint_name} --region {boto.region_name}")
    return 0


# DescribeEndpoint's statuses in which an endpoint takes no UpdateEndpoint
NOT_UPDATABLE = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed", "Failed")


def data_capture_config(destination: str, share: int) -> dict:
    """Requests and responses; content types not listed as CSV or JSON (images) are captured base64-encoded."""
    return {"EnableCapture": True, "InitialSamplingPercentage": share, "DestinationS3Uri": destination,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}}


def async_inference_config(args) -> dict:
    output = {"S3OutputPath": args.output, **({"S3FailurePath": args.failure_output} if args.failure_output else {})}
    topics = {key: value for key, value in (("SuccessTopic", args.success_topic), ("ErrorTopic", args.error_topic))
              if value}
    if topics:
        output["NotificationConfig"] = topics
    client = {"MaxConcurrentInvocationsPerInstance": args.max_concurrent_invocations} \
        if args.max_concurrent_invocations else {}
    return {"OutputConfig": output, **({"ClientConfig": client} if client else {})}


def deploy_to_sagemaker(client, scaling_client, args) -> int:
    """Create the endpoint, or update it in place; 0 once it is InService on the new model (and scaled)."""
    previous = aws.describe_or_none(client.describe_endpoint, EndpointName=args.endpoint_name)
    if previous and previous["EndpointStatus"] in NOT_UPDATABLE:
        what = "delete it (python scripts/cleanup.py --endpoint-name ...) and deploy again" \
            if previous["EndpointStatus"] == "Failed" else "wait until it is InService and run this again"
        print(f"error: endpoint {args.endpoint_name} is {previous['EndpointStatus']}: {what}", file=sys.stderr)
        return 1
    if previous and args.serverless_memory and not _is_serverless(client, previous["EndpointConfigName"]):
        print(f"error: endpoint {args.endpoint_name} runs on instances, and AWS cannot turn it into a serverless "
              f"endpoint: deploy under another --endpoint-name, or delete it first (scripts/cleanup.py)",
              file=sys.stderr)
        return 1
    name = naming.timestamped(args.endpoint_name)  # a new model and endpoint config per deploy
    environment = dict(args.env)
    if args.serverless_memory:  # one worker, one copy of the model (AWS's advice for serverless)
        environment.setdefault("SAGEMAKER_MODEL_SERVER_WORKERS", "1")
    if args.async_:  # the container must not give up on a request SageMaker still waits for
        environment = {**ASYNC_ENVIRONMENT, **environment}
    if args.multi_model:  # SageMaker loads models through POST /models: the image's multi-model mode
        environment["SAGEMAKER_MULTI_MODEL"] = "true"
    container = {"Image": args.image_uri, "ModelDataUrl": args.model_data,
                 **({"Mode": "MultiModel"} if args.multi_model else {}),
                 **({"Environment": environment} if environment else {})}
    client.create_model(ModelName=name, ExecutionRoleArn=args.role, PrimaryContainer=container,
                        EnableNetworkIsolation=network_isolation(SERVERLESS if args.serverless_memory else None))
    capture = {"DataCaptureConfig": data_capture_config(args.data_capture, args.capture_percent or 100)} \
        if args.data_capture else {}
    if args.async_:
        capture["AsyncInferenceConfig"] = async_inference_config(args)
    client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[production_variant(name, args)],
                                  **capture)
    print(f"model and endpoint config: {name}")
    scaled = autoscaling.current(scaling_client, args.endpoint_name) if previous else None
    restore = None  # scaling taken off for this update, to put back if it fails
    if previous:
        old_config = previous["EndpointConfigName"]
        if scaled and _instance_type(client, old_config) != args.instance_type:
            removed = autoscaling.remove(scaling_client, args.endpoint_name)
            print(f"auto scaling removed for the instance type change (AWS refuses it otherwise): {', '.join(removed)}")
            restore, scaled = scaled, None
        print(f"updating endpoint {args.endpoint_name} (from {old_config}); it keeps serving meanwhile")
        # with auto scaling in place, keep the instance count it reached instead of resetting it
        client.update_endpoint(EndpointName=args.endpoint_name, EndpointConfigName=name,
                               **({"RetainAllVariantProperties": True} if scaled else {}))
    else:
        client.create_endpoint(EndpointName=args.endpoint_name, EndpointConfigName=name)
    final = wait_for_endpoint(client, args.endpoint_name)
    if final["EndpointStatus"] != "InService" or final["EndpointConfigName"] != name:
        # a failed update is rolled back to the old config (RollingBack, then InService): the endpoint's own
        # FailureReason says more than the waiter
        print(f"error: endpoint {args.endpoint_name} is {final['EndpointStatus']} on {final['EndpointConfigName']}: "
              f"{final.get('FailureReason') or 'the new endpoint config did not take'}", file=sys.stderr)
        if final["EndpointConfigName"] != name:  # the new config and model serve nothing
            delete_config_and_models(client, name)
            print(f"removed the unused {name}; the endpoint serves what it served before", file=sys.stderr)
            if restore:
                autoscaling.register(scaling_client, args.endpoint_name, restore)
                print("auto scaling put back as it was", file=sys.stderr)
        else:
            print(f"clean up: python scripts/cleanup.py --endpoint-name {args.endpoint_name}", file=sys.stderr)
        return 1
    if previous:
        deleted = delete_config_and_models(client, old_config)
        if deleted:  # the config and its models often share one versioned name: say which is which
            print(f"deleted the old endpoint config {deleted[0]} and its model{'s' if len(deleted) > 2 else ''} "
                  f"{', '.join(deleted[1:])}")
    wanted = args.scaling or restore
    if wanted:
        autoscaling.register(scaling_client, args.endpoint_name, wanted)
        print(f"auto scaling: {wanted.minimum}-{wanted.maximum} instances, holding {wanted.target:g} invocations "
              f"per instance per minute ({autoscaling.policy_name(args.endpoint_name)})")
    return 0


def production_variant(model_name: str, args) -> dict:
    variant = {"VariantName": autoscaling.VARIANT, "ModelName": model_name}
    if args.serverless_memory:
        return {**variant, "ServerlessConfig": {"MemorySizeInMB": args.serverless_memory,
                                                "MaxConcurrency": args.max_concurrency}}
    return {**variant, "InitialInstanceCount": args.instance_count, "InstanceType": args.instance_type,
            "InitialVariantWeight": 1.0}


def _is_serverless(client, config_name: str) -> bool:
    config = aws.describe_or_none(client.describe_endpoint_config, EndpointConfigName=config_name)
    return bool(config) and "ServerlessConfig" in config["ProductionVariants"][0]


def _instance_type(client, config_name: str) -> str | None:
    config = aws.describe_or_none(client.describe_endpoint_config, EndpointConfigName=config_name)
    return config["ProductionVariants"][0].get("InstanceType") if config else None


def wait_for_endpoint(client, endpoint_name: str) -> dict:
    """DescribeEndpoint's answer once the endpoint is InService, or once the waiter gives up (Failed, timeout)."""
    from botocore.exceptions import WaiterError

    try:
        client.get_waiter("endpoint_in_service").wait(EndpointName=endpoint_name,
                                                      WaiterConfig={"Delay": 15, "MaxAttempts": 120})
    except WaiterError:
        pass  # the description below says what happened
    return client.describe_endpoint(EndpointName=endpoint_name)


def delete_config_and_models(client, config_name: str) -> list[str]:
    """Delete an endpoint config no endpoint uses any more, and the models of its variants."""
    config = aws.describe_or_none(client.describe_endpoint_config, EndpointConfigName=config_name)
    models = [variant["ModelName"] for variant in config["ProductionVariants"]] if config else []
    if config:
        client.delete_endpoint_config(EndpointConfigName=config_name)
    for model in models:
        client.delete_model(ModelName=model)
    return [config_name, *models] if config else []


def serve_locally(model_tarball: Path, args) -> int:
    """The serving container on 127.0.0.1:--local-port with its log on stdout, until Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, _interrupt)  # `docker stop`-style shutdown ends it like Ctrl-C
    stopped = []
    try:
        with local_serving.serving_container(args.image_uri, model_tarball, args.local_port, args.endpoint_name,
                                             dict(args.env), on_stopped=stopped.append) as url:
            print(f"endpoint: {args.endpoint_name} (local, {url}/invocations)", flush=True)
            print(f"try it: python scripts/invoke.py dog.jpg --endpoint-name {args.endpoint_name} --local "
                  f"--local-port {args.local_port}", flush=True)
            print("serving until Ctrl-C", flush=True)
            signal.pause()
    except KeyboardInterrupt:
        pass
    except local_serving.LocalServingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"local endpoint {args.endpoint_name} removed (its container exited {stopped[0]})", flush=True)
    return 0 if stopped[0] == 0 else 1


def _interrupt(*_):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(aws_errors.run(main))
