"""`invoke.py --async`: an image up to S3, InvokeEndpointAsync on its location, then the answer object.

SageMaker answers InvokeEndpointAsync at once with where the answer will be (OutputLocation) and
where an error would be (FailureLocation), queues the request, reads the image from S3, calls the
container's /invocations and writes what it answered to one of the two (AWS's "Invoke an
Asynchronous Endpoint"). This module waits for whichever object appears first.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from scripts import aws

MAX_INVOCATION_TIMEOUT_S = 3600  # InvokeEndpointAsync's InvocationTimeoutSeconds limit (its default: 900)


class AsyncFailure(Exception):
    """SageMaker wrote the request's error to its FailureLocation (the message is that object's text)."""


def upload(s3, path: Path, prefix_uri: str) -> str:
    bucket, prefix = aws.split_s3_uri(prefix_uri)
    key = f"{prefix}/{uuid.uuid4().hex}-{path.name}" if prefix else f"{uuid.uuid4().hex}-{path.name}"
    s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


def invoke(runtime, endpoint_name: str, input_uri: str, content_type: str, top_k: int,
           timeout_s: int | None) -> dict:
    """InvokeEndpointAsync's answer: InferenceId, OutputLocation, FailureLocation."""
    return runtime.invoke_endpoint_async(
        EndpointName=endpoint_name, InputLocation=input_uri, ContentType=content_type, Accept="application/json",
        CustomAttributes=f"top_k={top_k}", **({"InvocationTimeoutSeconds": timeout_s} if timeout_s else {}))


def wait_for_answer(s3, output_uri: str, failure_uri: str | None, wait_s: float, poll_s: float = 2.0) -> bytes:
    """The answer object's bytes; AsyncFailure with the failure object's text; TimeoutError after wait_s."""
    deadline = time.monotonic() + wait_s
    while True:
        body = _read_if_there(s3, output_uri)
        if body is not None:
            return body
        failure = _read_if_there(s3, failure_uri) if failure_uri else None
        if failure is not None:
            raise AsyncFailure(failure.decode(errors="replace").strip())
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no answer at {output_uri} after {wait_s:.0f} s (the request may still be queued: "
                               "look there later)")
        time.sleep(poll_s)


def _read_if_there(s3, uri: str) -> bytes | None:
    from botocore.exceptions import ClientError

    bucket, key = aws.split_s3_uri(uri)
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
