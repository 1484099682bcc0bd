#!/usr/bin/env python3
"""Classify image files with the deployed model and print the top classes.

    python scripts/invoke.py dog.jpg --endpoint-name dog-classifier         # a SageMaker endpoint (boto3)
    python scripts/invoke.py dog.jpg cat.png --url http://127.0.0.1:8080    # a local container (docker compose)
    python scripts/invoke.py dog.jpg --endpoint-name dog-classifier --local  # SageMaker local mode (deploy.py --local)
    python scripts/invoke.py photos/ --endpoint-name dog-classifier         # every image in a folder, one line each

Each file goes in its own request (Content-Type from its extension, Accept: application/json,
top_k as a SageMaker custom attribute). Exit status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from scripts import aws_errors

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
                 ".gif": "image/gif", ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff"}


class InvokeError(Exception):
    """A request that came back with an error status; the message is the server's."""


def content_type_for(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower(), "application/x-image")


def invoke_url(url: str, body: bytes, content_type: str, top_k: int, timeout: float = 60) -> dict:
    if not url.rstrip("/").endswith("/invocations"):
        url = url.rstrip("/") + "/invocations"
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": content_type, "Accept": "application/json",
        "X-Amzn-SageMaker-Custom-Attributes": f"top_k={top_k}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise InvokeError(f"HTTP {error.code}: {_error_message(error.read())}") from None


def invoke_endpoint(client, endpoint_name: str, body: bytes, content_type: str, top_k: int) -> dict:
    from botocore.exceptions import ClientError

    try:
        response = client.invoke_endpoint(EndpointName=endpoint_name, ContentType=content_type,
                                          Accept="application/json", CustomAttributes=f"top_k={top_k}", Body=body)
    except ClientError as error:
        # A model error (the container's 4xx) arrives as ModelError with the container's body in Message.
        raise InvokeError(f"{error.response['Error'].get('Code')}: "
                          f"{_error_message(error.response['Error'].get('Message', ''))}") from None
    body = response["Body"]
    payload = body.read()
    # Local mode's runtime client hands back the container's raw HTTP response, error statuses included.
    status = getattr(body, "status", 200)
    if status >= 400:
        raise InvokeError(f"HTTP {status}: {_error_message(payload)}")
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
                        help="with --endpoint-name: a SageMaker local-mode endpoint (scripts/deploy.py --local)")
    parser.add_argument("--local-port", type=int, default=8080, help="the local-mode endpoint's port (default 8080)")
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
    if args.local and not args.endpoint_name:
        parser.error("argument --local: needs --endpoint-name (for a container's URL use --url)")
    if args.url and not args.url.startswith(("http://", "https://")):
        parser.error(f"--url must start with http:// or https://, got {args.url!r}")
    return args


def runtime_client(args):
    if args.local:
        from sagemaker.local import LocalSagemakerRuntimeClient

        return LocalSagemakerRuntimeClient(config={"local": {"serving_port": args.local_port}})
    import boto3

    return boto3.Session(profile_name=args.profile, region_name=args.region).client("sagemaker-runtime")


def main(argv: list[str] | None = None, client=None) -> int:
    args = parse_args(argv)
    if args.endpoint_name and client is None:
        client = runtime_client(args)
    failed = 0
    for path in args.images:
        body, content_type = path.read_bytes(), content_type_for(path)
        try:
            if args.url:
                answer = invoke_url(args.url, body, content_type, args.top_k)
            else:
                answer = invoke_endpoint(client, args.endpoint_name, body, content_type, args.top_k)
            print(f"{path}: {answer['label']} ({answer['probability']:.3f})" if args.one_line
                  else format_answer(path, answer))
        except (InvokeError, OSError) as error:
            failed += 1
            print(f"{path}: error: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(aws_errors.run(main))
