#!/usr/bin/env python3
"""Classify every image under an S3 prefix with a SageMaker batch transform job on the serving image.

    python scripts/transform.py --image-uri ACCOUNT.dkr.ecr.REGION.amazonaws.com/dog-classifier-serve:latest \\
        --role arn:aws:iam::ACCOUNT:role/SageMakerExecutionRole --model-data s3://.../model.tar.gz \\
        --input s3://my-bucket/photos --output s3://my-bucket/predictions --wait --summarize predictions.csv
    python scripts/transform.py --model-name dog-classifier-20261130-... --input ... --output ...  # an existing model
    python scripts/transform.py --summarize predictions.csv --input ... --output ...  # a finished job's results

Each object under --input is one request (Content-Type application/x-image: the container reads the
bytes, whatever the file is called); its answer lands in --output as `<name>.out`, the JSON an
endpoint would answer. The container tells the job how many requests to send at once (its workers)
and the payload limit (GET /execution-parameters) unless --max-concurrent / --max-payload say.
--instance-count N splits the objects over N instances.

A file that is not an image, or is corrupt, gets HTTP 400 from the container. SageMaker then writes
no .out for it, goes on with the other files and marks the job Failed at the end (AWS's
TransformOutput reference); --summarize lists it with the reason. --local runs the job on this
machine (a folder in, a folder out, the serving image under Docker: scripts/local_transform.py) and
writes the container's JSON error into that .out, as SDK 2's local mode did.

With --model-data a model <job>-model... is created for the job (AWS refuses a second model of one
name, so each gets a new name) and printed: pass it as --model-name to reuse it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts import aws, aws_errors, local_serving, local_transform, naming, transform_results
from scripts.deploy import model_data
from scripts.isolation import network_isolation

MAX_PAYLOAD_MB = 100  # CreateTransformJob's MaxPayloadInMB limit
CONTENT_TYPE = "application/x-image"
ACCEPT = "application/json"


def payload_mb(value: str) -> int:
    number = aws.positive_int(value)
    if number > MAX_PAYLOAD_MB:
        raise argparse.ArgumentTypeError(f"at most {MAX_PAYLOAD_MB} (MB, SageMaker's limit), got {number}")
    return number


def location(value: str) -> str:
    """An S3 URI, or (with --local) a local folder as file://."""
    if value.startswith("s3://"):
        return aws.s3_uri(value)
    return f"file://{Path(value.removeprefix('file://')).resolve()}"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="scripts/transform.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model-data", type=model_data, help="a model.tar.gz a training job wrote")
    source.add_argument("--model-name", type=aws.name, help="an existing SageMaker model")
    parser.add_argument("--image-uri", type=aws.local_or_registry_image, help="the serving image (with --model-data)")
    parser.add_argument("--role", type=aws.role_arn, help="SageMaker execution role ARN (with --model-data)")
    parser.add_argument("--input", type=location, required=True, help="S3 prefix of the images (--local: a folder)")
    parser.add_argument("--output", type=location, required=True,
                        help="S3 prefix for the .out files (--local: a folder)")
    parser.add_argument("--instance-type", type=aws.instance_type, default="ml.m5.large",
                        help="default ml.m5.large (2 vCPU, 8 GiB)")
    parser.add_argument("--instance-count", type=aws.positive_int, default=1,
                        help="instances to share the files between (default 1)")
    parser.add_argument("--max-concurrent", type=aws.positive_int,
                        help="requests per instance at once (default: the container's workers)")
    parser.add_argument("--max-payload", type=payload_mb, help="largest image in MB, up to 100 (default: the "
                                                                "container's limit, 6)")
    parser.add_argument("--job-name", type=aws.name, help="default dog-transform-<UTC time>")
    parser.add_argument("--wait", action="store_true", help="wait for the job to end (--local always does)")
    parser.add_argument("--summarize", type=Path, metavar="CSV",
                        help="after the job (or alone, for a finished one): one row per input file")
    parser.add_argument("--local", action="store_true", help="the job on this machine (Docker), folders in and out")
    parser.add_argument("--local-port", type=aws.port, default=8080, help="with --local (default 8080)")
    aws.add_aws_arguments(parser)
    args = parser.parse_args(argv)
    args.summarize_only = args.model_data is None and args.model_name is None
    if args.summarize_only and not args.summarize:
        parser.error("give --model-data or --model-name to start a job, or --summarize CSV for a finished one")
    if args.model_data and (not args.image_uri or not args.role):
        parser.error("argument --model-data: needs --image-uri and --role (the model this job creates)")
    if args.image_uri:
        aws.require_registry_image_unless_local(parser, args)
    for flag in ("input", "output"):
        value = getattr(args, flag)
        if not args.local and not value.startswith("s3://"):
            parser.error(f"argument --{flag}: a transform job needs an S3 URI, got {value!r} (or add --local)")
    if args.local and args.instance_count != 1:
        parser.error("argument --instance-count: --local runs one container")
    if args.local and args.model_name:
        parser.error("argument --model-name: not with --local; pass --model-data (a local model.tar.gz)")
    if args.model_data and not args.local and not args.model_data.startswith("s3://"):
        parser.error(f"argument --model-data: a transform job needs an S3 URI, got {args.model_data!r} "
                     "(or add --local)")
    if args.summarize and not (args.wait or args.local or args.summarize_only):
        parser.error("argument --summarize: needs --wait (the .out files exist once the job has ended)")
    return args


def create_model(args, client) -> str:
    """A model on the serving image for --model-data, named after the job; its name."""
    name = f"{args.job_name}-model"[:63]
    client.create_model(ModelName=name, ExecutionRoleArn=args.role,
                        PrimaryContainer={"Image": args.image_uri, "ModelDataUrl": args.model_data, "Environment": {}},
                        EnableNetworkIsolation=network_isolation())
    print(f"model: {name} (reuse it with --model-name {name})")
    return name


def transform_job_request(args, model_name: str) -> dict:
    """CreateTransformJob's request: every object under --input one request (no SplitType); where no limit is
    given, SageMaker asks the container (GET /execution-parameters)."""
    limits = {"MaxConcurrentTransforms": args.max_concurrent, "MaxPayloadInMB": args.max_payload}
    return {
        "TransformJobName": args.job_name,
        "ModelName": model_name,
        # the prefix as a folder: s3://b/photos would also take s3://b/photos-old/...
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{args.input}/"}},
                           "ContentType": CONTENT_TYPE},
        "TransformOutput": {"S3OutputPath": args.output, "Accept": ACCEPT},
        "TransformResources": {"InstanceType": args.instance_type, "InstanceCount": args.instance_count},
        **{field: value for field, value in limits.items() if value is not None},
    }


def batch_environment(args) -> dict[str, str]:
    """What SageMaker sets in a transform job's container: the job's limits where it gives them."""
    limits = (("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", args.max_concurrent),
              ("SAGEMAKER_MAX_PAYLOAD_IN_MB", args.max_payload))
    return {"SAGEMAKER_BATCH": "true", "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD",
            **{name: str(value) for name, value in limits if value is not None}}


def run_local_job(args, boto) -> dict:
    """The whole job on this machine (scripts/local_transform.py); a description as DescribeTransformJob's."""
    model_tarball = aws.local_model_tarball(boto.client("s3"), args.model_data)
    source, target = (Path(getattr(args, flag).removeprefix("file://")) for flag in ("input", "output"))
    print(f"transform job: {args.job_name} (1 x local), {args.input} -> {args.output}", flush=True)
    try:
        with local_serving.serving_container(args.image_uri, model_tarball, args.local_port, args.job_name,
                                             batch_environment(args)) as url:
            ran = local_transform.run(url, source, target, CONTENT_TYPE, ACCEPT, args.max_concurrent,
                                      args.max_payload)
    except local_serving.LocalServingError as error:
        return {"TransformJobStatus": "Failed", "FailureReason": str(error)}
    print(f"sent {ran['files']} files, {ran['MaxConcurrentTransforms']} at once, up to {ran['MaxPayloadInMB']} MB "
          "each", flush=True)
    return {"TransformJobStatus": "Completed"}


def run_job(args, boto) -> dict:
    """Start the job; with --wait (or --local) return DescribeTransformJob once it has ended."""
    if args.local:
        return run_local_job(args, boto)
    client = boto.client("sagemaker")
    model_name = create_model(args, client) if args.model_data else args.model_name
    print(f"transform job: {args.job_name} ({args.instance_count} x {args.instance_type}), {args.input} -> "
          f"{args.output}", flush=True)
    client.create_transform_job(**transform_job_request(args, model_name))
    if args.wait:
        from botocore.exceptions import WaiterError

        try:
            client.get_waiter("transform_job_completed_or_stopped").wait(
                TransformJobName=args.job_name, WaiterConfig={"Delay": 30, "MaxAttempts": 2 * 60 * 24})
        except WaiterError:
            pass  # Failed: the description below says why
    return client.describe_transform_job(TransformJobName=args.job_name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    boto = aws.boto_session(args)
    status = 0
    if not args.summarize_only:
        args.job_name = args.job_name or naming.timestamped("dog-transform")
        if args.model_name and not aws.describe_or_none(boto.client("sagemaker").describe_model,
                                                        ModelName=args.model_name):
            print(f"error: argument --model-name: no model {args.model_name} in {boto.region_name} (deploy.py and "
                  "transform.py print the models they create)", file=sys.stderr)
            return 1
        if not args.local and aws.describe_or_none(boto.client("sagemaker").describe_transform_job,
                                                   TransformJobName=args.job_name):
            print(f"error: argument --job-name: a transform job {args.job_name} exists already (AWS keeps a name "
                  "for good): give another, or leave --job-name out", file=sys.stderr)
            return 1
        described = run_job(args, boto)
        state = described["TransformJobStatus"]
        if state in ("InProgress", "Stopping"):
            if not args.local:
                print(f"console: {aws.console_url(boto.region_name, 'transform-jobs', args.job_name)}")
            return 0
        print(f"transform job: {args.job_name} ({state})")
        if state != "Completed":
            print(f"error: transform job {args.job_name} is {state}: "
                  f"{described.get('FailureReason') or 'see its CloudWatch log'}", file=sys.stderr)
            status = 1
    # local mode reports the job Completed whatever the container answered: its .out files say
    if args.summarize or args.local:
        rows = transform_results.gather(args.input, args.output,
                                        boto.client("s3") if args.input.startswith("s3://") else None)
        failed = [row for row in rows if row.error]
        if args.summarize:
            transform_results.write_csv(rows, args.summarize)
        print(f"summary{f': {args.summarize}' if args.summarize else ''} ({len(rows)} files, "
              f"{len(rows) - len(failed)} classified, {len(failed)} not)")
        for row in failed:
            print(f"  {row.file}: {row.error}")
        status = status or int(bool(failed))
    return status


if __name__ == "__main__":
    sys.exit(aws_errors.run(main))
