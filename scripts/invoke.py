#!/usr/bin/env python3
"""Classify image files with the deployed model and print the top classes.

    python scripts/invoke.py dog.jpg --endpoint-name dog-classifier         # a SageMaker endpoint (boto3)
    python scripts/invoke.py dog.jpg cat.png --url http://127.0.0.1:8080    # a local container (docker compose)
    python scripts/invoke.py dog.jpg --endpoint-name dog-classifier --local  # deploy.py --local's endpoint
    python scripts/invoke.py photos/ --endpoint-name dog-classifier         # every image in a folder, one line each
    python scripts/invoke.py big.png --endpoint-name dog-async --async      # an asynchronous endpoint (via S3)
    python scripts/invoke.py dog.jpg --endpoint-name kennels --target-model kennel-a.tar.gz  # a multi-model endpoint

Each file goes in its own request (Content-Type from its extension, Accept: application/json,
top_k as a SageMaker custom attribute). Exit status 1 if any request failed.

--async (an endpoint deployed with deploy.py --async): each file is uploaded under --async-input
(default s3://sagemaker-REGION-ACCOUNT/dog-classifier/async-inputs), sent with InvokeEndpointAsync,
and its answer read from the OutputLocation SageMaker names, waiting up to --wait seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from scripts import async_invoke, aws, aws_errors

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
                 ".gif": "image/gif", ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff"}


class InvokeError(Exception):
    """A request that came back with an error status; the message is the server's."""


def content_type_for(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower(), "application/x-image")


def invoke_url(url: str, body: bytes, content_type: str, top_k: int, timeout: float = 60,
               target_model: str | None = None) -> dict:
    if target_model:  # a multi-model container's own route for one model
        url = f"{url.rstrip('/')}/models/{urllib.parse.quote(target_model, safe='')}/invoke"
    elif not url.rstrip("/").endswith("/invocations"):
        url = url.rstrip("/") + "/invocations"
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": content_type, "Accept": "application/json",
        "X-Amzn-SageMaker-Custom-Attributes": f"top_k={top_k}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise InvokeError(f"HTTP {error.code}: {_error_message(error.read())}") from None


def invoke_endpoint(client, endpoint_name: str, body: bytes, content_type: str, top_k: int,
                    target_model: str | None = None) -> dict:
    from botocore.exceptions import ClientError

    try:
        response = client.invoke_endpoint(EndpointName=endpoint_name, ContentType=content_type,
                                          Accept="application/json", CustomAttributes=f"top_k={top_k}", Body=body,
                                          **({"TargetModel": target_model} if target_model else {}))
    except ClientError as error:
        # A model error (the container's 4xx) arrives as ModelError with the container's body in Message.
        raise InvokeError(f"{error.response['Error'].get('Code')}: "
                          f"{_error_message(error.response['Error'].get('Message', ''))}") from None
    body = response["Body"]
    payload = body.read()
    return json.loads(payload)


def _error_message(body) -> str:
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    try:
        return json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        return text.strip()


def format_answer(path: Path, answer: dict) -> str:
    lines = [f"{path}: {answer['label']} ({answer['probability']:.3f})"]
    lines += [f"    {entry['probability']:.3f}  {entry['label']}" for entry in answer["top_k"]]
    return "\n".join(lines)


def invocation_timeout(value: str) -> int:
    number = aws.positive_int(value)
    if number > async_invoke.MAX_INVOCATION_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"at most {async_invoke.MAX_INVOCATION_TIMEOUT_S} s (AWS's limit), "
                                         f"got {number}")
    return number


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="scripts/invoke.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", type=Path,
                        help="image files (JPEG, PNG, WebP, GIF, BMP, TIFF), or folders: every such file in them "
                             "(subfolders too), one line each")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--endpoint-name", help="SageMaker endpoint to call with boto3 sagemaker-runtime")
    target.add_argument("--url", help="a serving container instead, e.g. http://127.0.0.1:8080")
    parser.add_argument("--top-k", type=int, default=5, help="classes to print per image (default 5)")
    parser.add_argument("--local", action="store_true",
                        help="with --endpoint-name: a local endpoint (scripts/deploy.py --local) on 127.0.0.1")
    parser.add_argument("--local-port", type=aws.port, default=8080, help="the local endpoint's port (default 8080)")
    parser.add_argument("--target-model", help="a multi-model endpoint's model: its .tar.gz name under the endpoint's "
                                               "prefix (with --url: a model name loaded by POST /models)")
    queued = parser.add_argument_group("asynchronous endpoints")
    queued.add_argument("--async", dest="async_", action="store_true",
                        help="with --endpoint-name: an asynchronous endpoint (deploy.py --async)")
    queued.add_argument("--async-input", type=aws.s3_uri,
                        help="S3 prefix the images are uploaded to (default s3://sagemaker-REGION-ACCOUNT/"
                             "dog-classifier/async-inputs)")
    queued.add_argument("--invocation-timeout", type=invocation_timeout,
                        help="seconds SageMaker gives the container per request, up to 3600 (default 900)")
    queued.add_argument("--wait", type=float, default=1200,
                        help="seconds to wait for each answer (default 1200)")
    parser.add_argument("--region", help="AWS region (default: the credential chain's)")
    parser.add_argument("--profile", help="AWS profile (default: the credential chain's)")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an AWS error")
    args = parser.parse_args(argv)
    args.one_line = any(path.is_dir() for path in args.images)
    files = []
    for path in args.images:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CONTENT_TYPES)
            if not found:
                parser.error(f"folder {path} holds no image files ({', '.join(sorted(CONTENT_TYPES))})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            parser.error(f"{path}: no such file or folder")
    args.images = files
    if args.top_k < 1:
        parser.error(f"--top-k must be at least 1, got {args.top_k}")
    if args.target_model and args.async_:
        parser.error("argument --target-model: not with --async (AWS has no asynchronous multi-model endpoints)")
    if args.async_ and (not args.endpoint_name or args.local):
        parser.error("argument --async: needs --endpoint-name of a SageMaker endpoint (not --local or --url)")
    if (args.async_input or args.invocation_timeout) and not args.async_:
        parser.error("arguments --async-input, --invocation-timeout: need --async")
    if args.local and not args.endpoint_name:
        parser.error("argument --local: needs --endpoint-name (for a container's URL use --url)")
    if args.url and not args.url.startswith(("http://", "https://")):
        parser.error(f"--url must start with http:// or https://, got {args.url!r}")
    return args


def runtime_client(args):
    import boto3

    return boto3.Session(profile_name=args.profile, region_name=args.region).client("sagemaker-runtime")


def main(argv: list[str] | None = None, client=None) -> int:
    args = parse_args(argv)
    if args.local:  # a local endpoint is its container on this machine's port (scripts/local_serving.py)
        args.url, args.endpoint_name = f"http://127.0.0.1:{args.local_port}", None
    if args.endpoint_name and client is None:
        client = runtime_client(args)
    queue = AsyncQueue(args, client) if args.async_ else None
    failed = 0
    for path in args.images:
        body, content_type = path.read_bytes(), content_type_for(path)
        try:
            if queue:
                answer = queue.classify(path, content_type)
            elif args.url:
                answer = invoke_url(args.url, body, content_type, args.top_k, target_model=args.target_model)
            else:
                answer = invoke_endpoint(client, args.endpoint_name, body, content_type, args.top_k,
                                         target_model=args.target_model)
            print(f"{path}: {answer['label']} ({answer['probability']:.3f})" if args.one_line
                  else format_answer(path, answer))
        except (InvokeError, OSError, TimeoutError) as error:
            failed += 1
            print(f"{path}: error: {error}", file=sys.stderr)
    return 1 if failed else 0


class AsyncQueue:
    """Upload, InvokeEndpointAsync, wait for the answer: one image at a time."""

    def __init__(self, args, runtime):
        boto = aws.boto_session(args)
        self.args, self.runtime, self.s3 = args, runtime, boto.client("s3")
        self.prefix = args.async_input or f"s3://sagemaker-{boto.region_name}-{aws.account_id(boto)}/" \
                                          "dog-classifier/async-inputs"

    def classify(self, path: Path, content_type: str) -> dict:
        input_uri = async_invoke.upload(self.s3, path, self.prefix)
        queued = async_invoke.invoke(self.runtime, self.args.endpoint_name, input_uri, content_type, self.args.top_k,
                                     self.args.invocation_timeout)
        try:
            answer = async_invoke.wait_for_answer(self.s3, queued["OutputLocation"], queued.get("FailureLocation"),
                                                  self.args.wait)
        except async_invoke.AsyncFailure as failure:
            raise InvokeError(f"failed ({queued.get('FailureLocation')}): {_error_message(str(failure))}") from None
        return json.loads(answer)


if __name__ == "__main__":
    sys.exit(aws_errors.run(main))
