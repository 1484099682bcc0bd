"""A batch transform job on this machine, as SageMaker runs one on an instance: the serving container
(scripts/local_serving.py), its limits from GET /execution-parameters where the job gives none, every file under
the input folder one request (Content-Type application/x-image, Accept application/json), its answer written to
the output folder as `<its path>.out`, up to MaxConcurrentTransforms requests at once.

Where SageMaker writes no `.out` for a file the container refused (and marks the job Failed), this writes the
container's JSON error into it, as SDK 2's local mode did, so that transform.py's summary can say why; a file over
MaxPayloadInMB is refused here, as SageMaker refuses it, without being sent.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REQUEST_TIMEOUT_S = 600  # SageMaker's default InvocationsTimeoutInSeconds for a transform job
MB = 1 << 20


def execution_parameters(url: str) -> dict:
    """The container's own limits (SageMaker asks for them when the job sets none)."""
    with urllib.request.urlopen(f"{url}/execution-parameters", timeout=60) as response:
        return json.loads(response.read())


def input_files(folder: Path) -> list[Path]:
    """Every file under the folder, subfolders too, in name order (SageMaker takes every key under the prefix);
    links are not followed, so nothing outside the folder is sent."""
    return sorted(path for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def classify(url: str, path: Path, content_type: str, accept: str, max_payload_mb: int) -> bytes:
    """The container's answer to one file, or its JSON error (refused, or too large to send)."""
    size = path.stat().st_size
    if size > max_payload_mb * MB:
        return json.dumps({"error": f"{size:,} bytes is more than the job's MaxPayloadInMB of {max_payload_mb}: "
                                    "not sent"}).encode()
    request = urllib.request.Request(f"{url}/invocations", data=path.read_bytes(), method="POST",
                                     headers={"Content-Type": content_type, "Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        return error.read()


def run(url: str, input_dir: Path, output_dir: Path, content_type: str, accept: str,
        max_concurrent: int | None = None, max_payload_mb: int | None = None) -> dict:
    """Send every file and write its .out; the limits the job ran with and how many files it sent."""
    limits = execution_parameters(url) if max_concurrent is None or max_payload_mb is None else {}
    max_concurrent = max_concurrent or int(limits.get("MaxConcurrentTransforms", 1))
    max_payload_mb = max_payload_mb or int(limits.get("MaxPayloadInMB", 6))
    files = input_files(input_dir)

    def transform(path: Path) -> None:
        target = output_dir / f"{path.relative_to(input_dir)}.out"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(classify(url, path, content_type, accept, max_payload_mb))

    output_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max_concurrent) as pool:
        list(pool.map(transform, files))  # list(): a worker's exception is raised here
    return {"MaxConcurrentTransforms": max_concurrent, "MaxPayloadInMB": max_payload_mb, "files": len(files)}
