"""What every AWS script shares: the session (standard credential chain, --region, --profile), the default
bucket, and input checks that run before any AWS call.

Each check is an argparse `type=`, so a bad value ends the script with
`argument --role: ...`, naming the flag, before anything is sent to AWS.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from scripts.aws_errors import RefusedData

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")
# [registry/]repository[:tag][@digest]; ECR's registry is ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]
IMAGE_URI = re.compile(r"^(?:(?P<registry>[a-z0-9-]+(?:\.[a-z0-9-]+)*(?::\d+)?|localhost)/)?"
                       r"(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
                       r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@sha256:[0-9a-f]{64})?$")
INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9-]+\.[0-9]*(?:nano|micro|small|medium|large|xlarge)$")
NAME = re.compile(r"^[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62}$")  # SageMaker job/endpoint/model names


# Before the SDK is imported: it prints "Not applying SDK defaults from location ..." lines at INFO, and
# SDK 2 warns that it is deprecated (the scripts run on either SDK).
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")


def matching(pattern: re.Pattern, expected: str, check_name: str) -> Callable[[str], str]:
    """An argparse `type=` that takes a value `pattern` matches and refuses any other, saying what it expected."""
    def check(value: str) -> str:
        if not pattern.match(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        return value

    check.__name__ = check_name  # argparse names it in its own messages
    return check


role_arn = matching(ROLE_ARN, "an IAM role ARN like arn:aws:iam::123456789012:role/SageMakerExecutionRole",
                    "role_arn")


def s3_uri(value: str) -> str:
    if not value.startswith("s3://"):
        raise argparse.ArgumentTypeError(f"expected an S3 URI like s3://bucket/prefix, got {value!r}")
    bucket = value[len("s3://"):].split("/", 1)[0]
    problem = bucket_name_problem(bucket)
    if problem:
        raise argparse.ArgumentTypeError(f"{value!r}: bucket name {bucket!r} {problem}")
    if not S3_URI.match(value):
        raise argparse.ArgumentTypeError(f"expected an S3 URI like s3://bucket/prefix, got {value!r}")
    return value.rstrip("/")


def bucket_name_problem(bucket: str) -> str | None:
    """Which of S3's naming rules for general purpose buckets a name breaks, or None."""
    if not 3 <= len(bucket) <= 63:
        return f"is {len(bucket)} characters long; bucket names are 3-63 characters"
    if not re.fullmatch(r"[a-z0-9.-]+", bucket):
        return "may hold only lowercase letters, digits, dots and hyphens"
    if not (bucket[0].isalnum() and bucket[-1].isalnum()):
        return "must begin and end with a letter or digit"
    if ".." in bucket:
        return "may not hold two adjacent dots"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket):
        return "may not be formatted as an IP address"
    if bucket.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or bucket.endswith(("-s3alias", "--ol-s3", ".mrap",
                                                                                    "--x-s3", "--table-s3")):
        return "uses a prefix or suffix S3 reserves (xn--, sthree-, -s3alias, --ol-s3, ...)"
    return None


def image_uri(value: str) -> str:
    """An image SageMaker can pull: in a registry (ECR), with the registry's host in front."""
    match = IMAGE_URI.match(value)
    if not match or not _is_registry(match["registry"]):
        raise argparse.ArgumentTypeError(
            f"expected an image URI like 123456789012.dkr.ecr.us-east-1.amazonaws.com/dog-classifier-train:latest, "
            f"got {value!r}")
    return value


def local_or_registry_image(value: str) -> str:
    """With --local, an image on this machine (dog-classifier-train:local) will do too."""
    if not IMAGE_URI.match(value):
        raise argparse.ArgumentTypeError(f"expected an image name like dog-classifier-train:local or an image URI, "
                                         f"got {value!r}")
    return value


def require_registry_image_unless_local(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """SageMaker pulls `--image-uri` from a registry; an image on this machine only does with --local."""
    if not args.local:
        try:
            image_uri(args.image_uri)
        except argparse.ArgumentTypeError as error:
            parser.error(f"argument --image-uri: {error} (a local image needs --local)")


def _is_registry(host: str | None) -> bool:
    # Docker's rule: a first path component with a dot or a port, or localhost, names a registry.
    return bool(host) and ("." in host or ":" in host or host == "localhost")


instance_type = matching(INSTANCE_TYPE, "a SageMaker instance type like ml.m5.large", "instance_type")
name = matching(NAME, "1-63 letters, digits and hyphens, starting with a letter or digit", "name")


def existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"folder {value} does not exist")
    return path


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def port(value: str) -> int:
    """A TCP port for --local-port (1-65535)."""
    number = positive_int(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is at most 65535, got {number}")
    return number


def split_s3_uri(uri: str) -> tuple[str, str]:
    match = S3_URI.match(uri)
    if not match:
        raise ValueError(f"not an S3 URI: {uri!r}")
    return match["bucket"], (match["key"] or "").strip("/")


def s3_keys(s3, uri: str) -> tuple[str, str, list[str]]:
    """(bucket, prefix, every key under prefix/) of an S3 URI: the prefix as a folder, so s3://b/photos never
    takes s3://b/photos-old/...; a URI without a prefix lists the whole bucket. The scripts' one S3 lister."""
    bucket, prefix = split_s3_uri(uri)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return bucket, prefix, keys


def local_model_tarball(s3, uri: str) -> Path:
    """A model.tar.gz on this machine for --local: a file:// one as it is, an S3 one downloaded into a private
    temporary folder removed when the script ends (scripts/local_serving.py unpacks it for the container)."""
    if not uri.startswith("s3://"):
        return Path(uri.removeprefix("file://"))
    folder = Path(tempfile.mkdtemp(prefix="dog-local-model-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    bucket, key = split_s3_uri(uri)
    path = folder / "model.tar.gz"
    s3.download_file(bucket, key, str(path))
    return path


def local_path(destination: Path, relative_key: str, key: str) -> Path:
    """Where an object under a downloaded prefix goes: inside `destination`, whatever the key says. A key is
    the writer's choice (the execution role can write under the job's prefix): `..`, an absolute path or a
    link already in the folder must not put a file elsewhere on the operator's machine."""
    parts = PurePosixPath(relative_key).parts
    target = destination.joinpath(*parts) if parts else destination
    root = destination.resolve()
    if relative_key.startswith("/") or ".." in parts or not target.resolve().is_relative_to(root) \
            or target.resolve() == root:
        raise RefusedData(f"S3 key {key!r} would be written outside {destination}: not downloaded, nothing "
                          "written (someone who can write under that prefix put it there)")
    return target


def describe_or_none(call, **kwargs) -> dict | None:
    """A SageMaker Describe* call's answer, or None where the resource does not exist (ValidationException)."""
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
            return None
        raise


def add_aws_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("AWS (default: the standard credential chain)")
    group.add_argument("--region", help="AWS region, e.g. us-east-1")
    group.add_argument("--profile", help="named profile from ~/.aws/config")
    group.add_argument("--debug", action="store_true", help="show the Python traceback of an AWS error")


def boto_session(args: argparse.Namespace):
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        session = boto3.Session(profile_name=args.profile, region_name=args.region)
    except ProfileNotFound as error:
        raise SystemExit(f"error: --profile: {error}") from None
    if not session.region_name:
        raise SystemExit("error: no AWS region: pass --region or set AWS_DEFAULT_REGION (or a region in your "
                         "profile)")
    return session


def default_bucket(boto) -> str:
    """SageMaker's default bucket, sagemaker-REGION-ACCOUNT, created where it does not exist yet (as SDK 2's
    Session.default_bucket() does); refused where the name is taken by a bucket this account does not own."""
    from botocore.exceptions import ClientError

    account = account_id(boto)
    bucket = f"sagemaker-{boto.region_name}-{account}"
    s3 = boto.client("s3")
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in ("403", "AccessDenied"):
            raise SystemExit(f"error: the default bucket {bucket} is not this account's or this identity may not "
                             "read it: pass --output-path s3://BUCKET/PREFIX") from None
        if code not in ("404", "NoSuchBucket"):
            raise
        where = {} if boto.region_name == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": boto.region_name}}
        s3.create_bucket(Bucket=bucket, **where)
    return bucket


def account_id(boto) -> str:
    return boto.client("sts").get_caller_identity()["Account"]


def console_url(region: str, kind: str, job_name: str) -> str:
    """The SageMaker console page of a job (kind: `hyper-tuning-jobs`, `jobs`, `endpoints`)."""
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/{kind}/{job_name}"
