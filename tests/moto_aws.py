"""A local AWS for the scripts' tests: a real moto server on loopback that records every request.

The scripts run unchanged against it (boto3 and the SageMaker SDK honour AWS_ENDPOINT_URL);
the tests read what reached "AWS" from moto's request recording, not from mocks.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from serving import free_port

from support.polling import answers, poll_until

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecutionRole"
TRAIN_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/dog-classifier-train:abc1234"
SERVE_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/dog-classifier-serve:abc1234"


class MotoServer:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.recording = workdir / "moto-recording.jsonl"
        self.log = workdir / "moto.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(self.recording)}
        with open(self.log, "wb") as log:
            # moto's server with the SageMaker hosting rules AWS keeps and moto does not (moto_as_aws.py)
            self.process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("moto_as_aws.py")), "-H",
                                             "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=subprocess.STDOUT,
                                            env=env)
        try:
            poll_until(lambda: answers(f"{self.url}/moto-api/"), timeout=120, seen=self.log.read_text,
                       alive=lambda: self.process.poll() is None)
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def reset(self) -> None:
        """Forget every resource and every recorded request."""
        urllib.request.urlopen(urllib.request.Request(self.url + "/moto-api/reset", method="POST"), timeout=10).close()
        self.reset_recording()

    def reset_recording(self) -> None:
        """Forget the recorded requests, keep the resources."""
        urllib.request.urlopen(urllib.request.Request(self.url + "/moto-api/recorder/reset-recording",
                                                      method="POST"), timeout=10).close()

    def requests(self, operation: str | None = None) -> list[dict]:
        """Recorded JSON-protocol requests (SageMaker, ECR, ...) as {"service", "operation", "body"}, in order."""
        found = []
        for entry in self.entries():
            target = {k.lower(): v for k, v in entry["headers"].items()}.get("x-amz-target", "")
            body = base64.b64decode(entry["body"]) if entry.get("body_encoded") else (entry.get("body") or "")
            service, _, name = target.rpartition(".")
            if target and (operation is None or name == operation):
                found.append({"service": service, "operation": name, "body": json.loads(body or "{}")})
        return found

    def entries(self) -> list[dict]:
        """Every recorded request as moto wrote it: method, url, headers, body."""
        # moto's threaded server writes an entry and its newline separately: under concurrent requests
        # (aws s3 sync) two entries can share a line, so decode object after object, not line by line.
        text = self.recording.read_text() if self.recording.exists() else ""
        decoder, entries, position = json.JSONDecoder(), [], 0
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text):
                return entries
            entry, position = decoder.raw_decode(text, position)
            entries.append(entry)

    def request(self, operation: str) -> dict:
        """The body of the one request of this operation (fails if there were none or several)."""
        bodies = [r["body"] for r in self.requests(operation)]
        assert len(bodies) == 1, f"expected one {operation} request, got {len(bodies)}"
        return bodies[0]


def aws_environment(server: MotoServer, home: Path) -> dict[str, str]:
    """Fake credentials, one region, every AWS client pointed at moto, SageMaker SDK telemetry off."""
    sdk_config = home / "sagemaker-config.yaml"
    sdk_config.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
                          "      TelemetryOptOut: true\n")
    return {
        "AWS_ENDPOINT_URL": server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(sdk_config),
    }


class _QuickPolls:
    """The time module as the SageMaker SDK's job waits see it: their 5 s sleeps between describes take 0.05 s
    (moto's jobs have ended by the first describe); every other attribute is time's own."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, 0.05))


