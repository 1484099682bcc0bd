#!/usr/bin/env python3
"""Deploy a trained model to a SageMaker real-time endpoint on the serving image.

    python scripts/deploy.py --image-uri ACCOUNT.dkr.ecr.REGION.amazonaws.com/dog-classifier-serve:latest \\
        --role arn:aws:iam::ACCOUNT:role/SageMakerExecutionRole --tuning-job dog-tune-...   # or --model-data s3://.../model.tar.gz

Creates a model (the serving image + the artifact), an endpoint config and an endpoint
(--instance-type, default ml.m5.large, one instance), waits until it is InService, and prints
its name, what the instance costs per hour and the command that deletes it all again: an
endpoint is billed every hour it exists, used or not.

`--local` deploys the same Model object in SageMaker local mode (docker compose on this machine,
the locally built image, a file:// or local model.tar.gz) on 127.0.0.1:--local-port and serves
until Ctrl-C, then removes the container. `scripts/invoke.py --local` reaches it.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python scripts/deploy.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import aws
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


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="scripts/deploy.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-uri", type=aws.local_or_registry_image, required=True, help="the serving image")
    parser.add_argument("--role", type=aws.role_arn, required=True, help="SageMaker execution role ARN")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-data", type=model_data, help="the model.tar.gz a training job wrote")
    source.add_argument("--tuning-job", type=aws.name, help="deploy the best trial of this tuning job")
    parser.add_argument("--endpoint-name", type=aws.name, default="dog-classifier",
                        help="endpoint, endpoint config and model name (default dog-classifier)")
    parser.add_argument("--instance-type", type=aws.instance_type, default="ml.m5.large",
                        help="default ml.m5.large (2 vCPU, 8 GiB)")
    parser.add_argument("--instance-count", type=aws.positive_int, default=1)
    parser.add_argument("--env", type=environment_pair, action="append", default=[], metavar="NAME=VALUE",
                        help="container setting, e.g. SAGEMAKER_MODEL_SERVER_WORKERS=2 (repeatable)")
    parser.add_argument("--local", action="store_true", help="SageMaker local mode (docker compose), until Ctrl-C")
    parser.add_argument("--local-port", type=aws.positive_int, default=8080, help="with --local (default 8080)")
    aws.add_aws_arguments(parser)
    args = parser.parse_args(argv)
    aws.require_registry_image_unless_local(parser, args)
    if args.local and args.tuning_job:
        parser.error("argument --tuning-job: not with --local; pass --model-data (a local model.tar.gz)")
    if not args.local and args.model_data and not args.model_data.startswith("s3://"):
        parser.error(f"argument --model-data: a SageMaker endpoint needs an S3 URI, got {args.model_data!r} "
                     "(or add --local)")
    return args


def best_model_data(client, tuning_job_name: str) -> str:
    """Where SageMaker put the best trial's model: <S3OutputPath>/<training job>/output/model.tar.gz."""
    best = require_best_training_job(client, tuning_job_name)
    return f"{best['output_path']}/{best['name']}/output/model.tar.gz"


def build_model(args, session):
    from sagemaker.model import Model

    return Model(image_uri=args.image_uri, model_data=args.model_data, role=args.role, name=args.endpoint_name,
                 env=dict(args.env) or None, sagemaker_session=session)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    boto = aws.boto_session(args)
    session = aws.sagemaker_session(boto, local=args.local, serving_port=args.local_port)
    if args.tuning_job:
        args.model_data = best_model_data(session.sagemaker_client, args.tuning_job)
    print(f"model data: {args.model_data}")
    model = build_model(args, session)
    instance_type = "local" if args.local else args.instance_type
    model.deploy(initial_instance_count=args.instance_count, instance_type=instance_type,
                 endpoint_name=args.endpoint_name, wait=args.local)
    if args.local:
        return serve_locally(model, args)
    from botocore.exceptions import WaiterError

    waiter = session.sagemaker_client.get_waiter("endpoint_in_service")
    try:
        waiter.wait(EndpointName=args.endpoint_name, WaiterConfig={"Delay": 15, "MaxAttempts": 120})
    except WaiterError as error:  # the endpoint's own FailureReason says more than the waiter
        description = session.sagemaker_client.describe_endpoint(EndpointName=args.endpoint_name)
        print(f"error: endpoint {args.endpoint_name} is {description['EndpointStatus']}: "
              f"{description.get('FailureReason', error)}", file=sys.stderr)
        print(f"clean up: python scripts/cleanup.py --endpoint-name {args.endpoint_name}", file=sys.stderr)
        return 1
    print(f"endpoint: {args.endpoint_name} (InService)")
    print(f"console: {aws.console_url(boto.region_name, 'endpoints', args.endpoint_name)}")
    print(f"cost: {price_class(args.instance_type)} x {args.instance_count}")
    print(f"try it: python scripts/invoke.py dog.jpg --endpoint-name {args.endpoint_name} --region {boto.region_name}")
    print(f"clean up: python scripts/cleanup.py --endpoint-name {args.endpoint_name} --region {boto.region_name}")
    return 0


def serve_locally(model, args) -> int:
    print(f"endpoint: {args.endpoint_name} (local mode, http://127.0.0.1:{args.local_port}/invocations)", flush=True)
    print(f"try it: python scripts/invoke.py dog.jpg --endpoint-name {args.endpoint_name} --local "
          f"--local-port {args.local_port}", flush=True)
    print("serving until Ctrl-C", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `docker stop`-style shutdown ends it like Ctrl-C
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        model.sagemaker_session.delete_endpoint(args.endpoint_name)  # stops the container
        model.sagemaker_session.delete_endpoint_config(args.endpoint_name)
        model.delete_model()
        print(f"local endpoint {args.endpoint_name} removed", flush=True)
    return 0


def _interrupt(*_):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
