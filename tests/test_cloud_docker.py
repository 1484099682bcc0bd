"""The cloud workflow's Docker parts, for real (CI's Docker stage: `make test-docker`).

- push_and_tune.sh builds both images, creates the ECR repositories (moto), logs in, pushes to a
  real registry on loopback (Debian's docker-registry, standing in for ECR's registry), fetches
  and uploads the dataset, and starts the tuning job.
- SageMaker local mode: the SDK's own Estimator and Model (`instance_type="local"`, docker compose)
  train on a file:// channel with the training image, then serve the model with the serving image,
  and invoke.py --local classifies through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import iam_evaluation
import pytest
from conftest import REPO
from moto_aws import ACCOUNT, REGION, ROLE
from PIL import Image
from serving import free_port

from scripts import iam_policies
from scripts.invoke import main as invoke_main

TRAIN_IMAGE = os.environ.get("TRAIN_IMAGE", "dog-classifier-train:local")
SERVE_IMAGE = os.environ.get("SERVE_IMAGE", "dog-classifier-serve:local")
BASE_IMAGE = os.environ.get("BASE_IMAGE", "python:3.11-slim-bookworm")
TINY = ["-p", "arch=resnet18", "-p", "weights=none", "-p", "image-size=32", "-p", "epochs=1", "-p", "batch-size=8",
        "-p", "num-workers=0", "-p", "hidden-units=16", "-p", "freeze-backbone=false"]


def script_env() -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHON": sys.executable,
            "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def registry(tmp_path):
    """Debian's docker-registry (the Distribution registry) on a loopback port."""
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).close()
                break
            assert time.monotonic() < deadline and process.poll() is None, "docker-registry did not start"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        # 3.6 GB of pushed layers: pytest keeps the last three runs' tmp_path, which filled this
        # machine's disk after a few CI runs
        shutil.rmtree(tmp_path / "registry", ignore_errors=True)


def registry_json(registry: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{registry}{path}", timeout=10) as response:
        return json.loads(response.read())


def dogimages_zip(dataset: Path, destination: Path) -> Path:
    """A small archive in dogImages.zip's layout: dogImages/{train,valid,test}/NNN.Name/*.jpg."""
    with zipfile.ZipFile(destination, "w") as archive:
        for path in sorted(dataset.rglob("*")):
            if path.is_file():
                archive.write(path, f"dogImages/{path.relative_to(dataset)}")
    return destination


@pytest.mark.docker
def test_push_and_tune_pushes_uploads_and_starts_tuning(moto, registry, tiny_dataset, tmp_path):
    import boto3

    archive = dogimages_zip(tiny_dataset, tmp_path / "dogImages.zip")
    try:
        result = subprocess.run(
            ["bash", str(REPO / "scripts" / "push_and_tune.sh"), "--role", ROLE, "--registry", registry,
             "--fetch-dogimages", str(tmp_path / "dogImages"), "--dogimages-url", archive.as_uri(),
             "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--tag", "test-1", "--", "--max-jobs", "2"],
            capture_output=True, text=True, env=script_env(), timeout=1800)
    finally:  # the registry-tagged names only (the images stay: they are the stage's own builds)
        tags = [f"{registry}/dog-classifier-{image}:{tag}" for image in ("train", "serve")
                for tag in ("test-1", "latest")]
        subprocess.run(["docker", "rmi", *tags], capture_output=True)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    # every call the script (AWS CLI and tune.py) made, against the operator policy iam_policies.py renders
    operator = iam_policies.render(REGION, ACCOUNT, [])["operator-policy.json"]
    assert iam_evaluation.denied(operator, moto.entries(), ACCOUNT) == []

    catalog = registry_json(registry, "/v2/_catalog")["repositories"]
    assert {"dog-classifier-train", "dog-classifier-serve"} <= set(catalog)
    for repository in ("dog-classifier-train", "dog-classifier-serve"):
        assert set(registry_json(registry, f"/v2/{repository}/tags/list")["tags"]) == {"test-1", "latest"}

    created = moto.requests("CreateRepository")
    assert sorted(r["body"]["repositoryName"] for r in created) == ["dog-classifier-serve", "dog-classifier-train"]
    assert all(r["body"]["imageScanningConfiguration"] == {"scanOnPush": True} for r in created)
    assert moto.requests("GetAuthorizationToken")  # aws ecr get-login-password

    bucket = f"sagemaker-{REGION}-{ACCOUNT}"
    keys = [o["Key"] for o in boto3.client("s3", region_name=REGION).list_objects_v2(
        Bucket=bucket, Prefix="dog-classifier/data/dogImages/")["Contents"]]
    expected = sum(1 for p in tiny_dataset.rglob("*") if p.is_file())
    assert len(keys) == expected and any("/train/" in k for k in keys) and any("/valid/" in k for k in keys)

    tuning = moto.request("CreateHyperParameterTuningJob")
    definition = tuning["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"]["TrainingImage"] == f"{registry}/dog-classifier-train:test-1"
    assert definition["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == \
        f"s3://{bucket}/dog-classifier/data/dogImages"
    assert tuning["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 2
    assert "tuning job: dog-tune-" in result.stdout


@pytest.mark.docker
def test_sagemaker_local_mode_train_deploy_invoke(moto, tiny_dataset, tmp_path):
    downloads = tmp_path / "runs"
    train = subprocess.run(
        [sys.executable, "scripts/debug_profile.py", "--local", *TINY, "--image-uri", TRAIN_IMAGE, "--role", ROLE,
         "--data", str(tiny_dataset), "--download-dir", str(downloads), "--job-name", "dog-local-test"],
        cwd=REPO, capture_output=True, text=True, env=script_env(), timeout=900)
    assert train.returncode == 0, train.stdout[-5000:] + train.stderr[-5000:]
    assert "training job: dog-local-test (Completed)" in train.stdout
    assert "valid:accuracy=" in train.stdout + train.stderr  # the job's own log, streamed by local mode
    model_data = downloads / "dog-local-test" / "model.tar.gz"
    assert model_data.is_file() and "test accuracy: " in train.stdout

    port = free_port()
    deploy = subprocess.Popen(
        [sys.executable, "scripts/deploy.py", "--local", "--local-port", str(port), "--image-uri", SERVE_IMAGE,
         "--role", ROLE, "--model-data", str(model_data), "--endpoint-name", "dogs-local"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=script_env())
    lines = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = deploy.stdout.readline()
            assert line or deploy.poll() is None, "deploy.py --local ended early:\n" + "".join(lines)
            lines.append(line)
            if "serving until Ctrl-C" in line:
                break
        else:
            pytest.fail("deploy.py --local did not come up:\n" + "".join(lines))

        image = tmp_path / "red.jpg"
        Image.new("RGB", (80, 60), (200, 30, 30)).save(image, "JPEG")
        assert invoke_main([str(image), "--endpoint-name", "dogs-local", "--local", "--local-port", str(port)]) == 0
    finally:
        deploy.send_signal(signal.SIGTERM)
        rest, _ = deploy.communicate(timeout=120)
        lines.append(rest)
    assert deploy.returncode == 0, "".join(lines)
    assert "local endpoint dogs-local removed" in "".join(lines)
    running = subprocess.run(["docker", "ps", "--filter", f"ancestor={SERVE_IMAGE}", "-q"], capture_output=True,
                             text=True).stdout.strip()
    assert running == ""
    shutil.rmtree(downloads, ignore_errors=True)  # root-owned files from the container
