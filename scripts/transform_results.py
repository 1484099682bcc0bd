"""A batch transform job's `.out` files, gathered into one CSV: file, label, probability, top-k, error.

Where each answer lies: SageMaker writes, for every input object, `<output prefix>/<its path>.out`
(AWS's TransformOutput reference); local mode writes the same under a file:// folder. A file the
container refused gets no `.out` on SageMaker (AWS: "uploads only the output for successfully
processed objects", and marks the job Failed); local mode writes the container's JSON error into
its `.out` instead. Both end up as a row with the error column filled, so a summary lists every
input file once.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from scripts import aws

COLUMNS = ["file", "label", "probability", "top_k", "error"]
NO_OUTPUT = ("no output: the container refused this file (SageMaker writes no .out for it and marks the job "
             "Failed; its CloudWatch log /aws/sagemaker/TransformJobs says why)")


@dataclass(frozen=True)
class Row:
    file: str
    label: str = ""
    probability: str = ""
    top_k: str = ""
    error: str = ""


class Store:
    """List and read objects under an S3 prefix or a local folder (file://, or a plain path)."""

    def __init__(self, uri: str, s3=None):
        self.uri = uri
        self.s3 = s3
        if uri.startswith("s3://"):
            self.bucket, self.prefix = aws.split_s3_uri(uri)
        else:
            self.root = Path(uri.removeprefix("file://"))

    def relative_names(self) -> list[str]:
        """Every object under the prefix, as a path relative to it."""
        if self.uri.startswith("s3://"):
            # as a folder: transform.py hands SageMaker the prefix with its trailing slash too
            _, _, keys = aws.s3_keys(self.s3, self.uri)
            folder = f"{self.prefix}/" if self.prefix else ""
            return sorted(key[len(folder):] for key in keys if not key.endswith("/"))
        if self.root.is_file():
            return [self.root.name]
        return sorted(path.relative_to(self.root).as_posix() for path in self.root.rglob("*") if path.is_file())

    def read(self, name: str) -> bytes:
        if self.uri.startswith("s3://"):
            key = f"{self.prefix}/{name}" if self.prefix else name
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return (self.root / name).read_bytes() if not self.root.is_file() else self.root.read_bytes()


def match_outputs(inputs: list[str], outputs: list[str]) -> dict[str, str | None]:
    """Each input's .out: `<input>.out` itself, or one that ends in `/<input>.out` (SageMaker may keep
    the input prefix's last folder in the output path)."""
    out_files = [name for name in outputs if name.endswith(".out")]
    matched = {}
    for name in inputs:
        wanted = f"{name}.out"
        matched[name] = next((out for out in out_files if out == wanted), None) or \
            next((out for out in out_files if out.endswith(f"/{wanted}")), None)
    return matched


def parse_answer(file: str, payload: bytes) -> Row:
    """One row from one .out: the container's JSON answer (or its JSON error, as local mode keeps it)."""
    try:
        answer = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return Row(file, error=f"output is not JSON: {payload[:120]!r}")
    if isinstance(answer, dict) and "error" in answer:
        return Row(file, error=str(answer["error"]))
    if not isinstance(answer, dict) or "label" not in answer:
        return Row(file, error=f"unexpected answer: {json.dumps(answer)[:200]}")
    top = ";".join(f"{entry['label']}:{entry['probability']:.4f}" for entry in answer.get("top_k", []))
    return Row(file, answer["label"], f"{answer['probability']:.6f}", top)


def gather(input_uri: str, output_uri: str, s3=None) -> list[Row]:
    """One row per input file, in name order."""
    inputs = Store(input_uri, s3)
    outputs = Store(output_uri, s3)
    matched = match_outputs(inputs.relative_names(), outputs.relative_names())
    return [parse_answer(name, outputs.read(out)) if out else Row(name, error=NO_OUTPUT)
            for name, out in matched.items()]


def write_csv(rows: list[Row], csv_path: Path) -> None:
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows([row.file, row.label, row.probability, row.top_k, row.error] for row in rows)
