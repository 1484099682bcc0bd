"""The cloud workflow's Docker parts, for real (CI's Docker stage: `make test-docker`).

- push_and_tune.sh builds both images, creates the ECR repositories (moto), logs in, pushes to a
  real registry on loopback (Debian's docker-registry, standing in for ECR's registry), fetches
  and uploads the dataset, and starts the tuning job.
- SageMaker local mode: the SDK's own Estimator and Model (`instance_type="local"`, docker compose)
  train on a file:// channel with the training image, then serve the model with the serving image,
  and invoke.py --local classifies through it.
"""

from __future__ import annotations

import csv
import http.server
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import iam_evaluation
import pytest
import torch
from conftest import REPO, SDK2_PYTHON, environment_without_pythonpath
from moto_aws import ACCOUNT, REGION, ROLE
from PIL import Image
from serving import free_port

from scripts import iam_policies
from scripts.estimator import local_job_failure
from scripts.invoke import main as invoke_main
from support.polling import answers, poll_until

TRAIN_IMAGE = os.environ.get("TRAIN_IMAGE", "dog-classifier-train:local")
SERVE_IMAGE = os.environ.get("SERVE_IMAGE", "dog-classifier-serve:local")
BASE_IMAGE = os.environ.get("BASE_IMAGE", "python:3.11-slim-bookworm")
# CI's stand-in for NVIDIA's CUDA image (.ci/docker-stage.sh); unset, the Dockerfile's default
COMPAT_BUILD_ARG = (["--build-arg", f"CUDA_COMPAT_IMAGE={os.environ['CUDA_COMPAT_IMAGE']}"]
                    if os.environ.get("CUDA_COMPAT_IMAGE") else [])
# Each SDK's environment (they cannot share one): this one (make setup) with SDK 3, make setup-sdk2's with SDK 2
SDK3_PYTHON = Path(sys.executable)
TINY = ["-p", "arch=resnet18", "-p", "weights=none", "-p", "image-size=32", "-p", "epochs=1", "-p", "batch-size=8",
        "-p", "num-workers=0", "-p", "hidden-units=16", "-p", "freeze-backbone=false"]


def script_env(python: Path = Path(sys.executable)) -> dict:
    """The environment a script runs in under `python`: its venv's tools first (docker compose), no PYTHONPATH
    (the other venv finds this project through its .pth file)."""
    path = f"{python.parent}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    return {**environment_without_pythonpath(), "PATH": path, "PYTHON": str(python), "PYTHONUNBUFFERED": "1"}


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
        poll_until(lambda: answers(f"http://127.0.0.1:{port}/v2/"), timeout=120, seen=lambda: "docker-registry",
                   alive=lambda: process.poll() is None)
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


def standin_training_image(tag: str) -> str:
    """A one-file image pushed as the training image. The real one is 8.6 GB: docker gzips it on one core,
    ~9 minutes here, which tests docker and the registry, not the script; the serving image is built from
    its Dockerfile by the script and pushed whole, and the training image's build is the stage's own."""
    content = b"a stand-in for the training image\n"
    member = tarfile.TarInfo("standin.txt")
    member.size = len(content)
    with io.BytesIO() as layer:
        with tarfile.open(fileobj=layer, mode="w") as archive:
            archive.addfile(member, io.BytesIO(content))
        subprocess.run(["docker", "import", "-", tag], input=layer.getvalue(), capture_output=True, check=True)
    return tag


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_push_and_tune_pushes_uploads_and_starts_tuning(moto, registry, tiny_dataset, tmp_path):
    import boto3

    archive = dogimages_zip(tiny_dataset, tmp_path / "dogImages.zip")
    push = ["bash", str(REPO / "scripts" / "push_and_tune.sh"), "--role", ROLE, "--registry", registry,
            "--fetch-dogimages", str(tmp_path / "dogImages"), "--dogimages-url", archive.as_uri(),
            "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", *COMPAT_BUILD_ARG, "--tag", "test-1"]
    calls_before = len(moto.entries())
    # a missing image, and one of docker's own flags (which `docker image inspect` would answer with its help)
    for missing_image, flag in (("no-such-image:anywhere", "--train-image"), ("--help", "--serve-image")):
        missing = subprocess.run([*push, flag, missing_image], capture_output=True, text=True, env=script_env(),
                                 timeout=60)
        assert (missing.returncode, missing.stderr) == (
            2, f"error: argument --train-image/--serve-image: no local image '{missing_image}' "
               "(docker images lists them)\n")
    assert len(moto.entries()) == calls_before  # refused before any AWS call
    standin = standin_training_image(f"local/train-standin:{os.getpid()}")
    try:
        result = subprocess.run([*push, "--train-image", standin, "--", "--max-jobs", "2"],
                                capture_output=True, text=True, env=script_env(), timeout=800)
    finally:  # the registry-tagged names and the stand-in (the serving image stays: it is the stage's own build)
        tags = [f"{registry}/dog-classifier-{image}:{tag}" for image in ("train", "serve")
                for tag in ("test-1", "latest")]
        subprocess.run(["docker", "rmi", *tags, standin], capture_output=True)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert f"training image: {standin}, as built" in result.stdout
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


def local_training_job(python: Path, downloads: Path, job_name: str) -> Path:
    """debug_profile.py --local under the SDK that `python`'s environment has; the model.tar.gz it leaves."""
    train = subprocess.run(
        [str(python), "scripts/debug_profile.py", "--local", *TINY, "--image-uri", TRAIN_IMAGE, "--role", ROLE,
         "--data", str(tiny_dataset_of(downloads)), "--download-dir", str(downloads), "--job-name", job_name],
        cwd=REPO, capture_output=True, text=True, env=script_env(python), timeout=900)
    log = train.stdout + train.stderr
    assert train.returncode == 0, log[-5000:]
    assert f"training job: {job_name} (Completed)" in train.stdout
    assert "valid:accuracy=" in log  # the job's own log, streamed by the SDK's local mode
    model_data = downloads / job_name / "model.tar.gz"
    assert model_data.is_file() and "test accuracy: " in train.stdout
    # The Debugger hook SageMaker would configure, in local mode too: tensors saved, the loss plot drawn from them.
    assert "SageMaker Debugger: hook created" in log
    assert "loss plot: " in train.stdout and (downloads / job_name / "loss.png").is_file(), train.stdout[-3000:]
    return model_data


def tiny_dataset_of(downloads: Path) -> Path:
    return downloads.parent / "dataset"


@pytest.mark.docker
def test_local_mode_train_deploy_invoke_under_sdk3_and_sdk2(moto, tiny_dataset, tmp_path):
    # Training in each SDK's own local mode (SDK 3's ModelTrainer, SDK 2's Estimator); serving is the scripts' own
    # `docker run` (scripts/local_serving.py), the same under both.
    downloads = tmp_path / "runs"
    shutil.copytree(tiny_dataset, tiny_dataset_of(downloads))
    local_training_job(SDK2_PYTHON, downloads, "dog-local-sdk2")
    model_data = local_training_job(SDK3_PYTHON, downloads, "dog-local-sdk3")

    port = free_port()
    deploy = subprocess.Popen(
        [str(SDK3_PYTHON), "scripts/deploy.py", "--local", "--local-port", str(port), "--image-uri", SERVE_IMAGE,
         "--role", ROLE, "--model-data", str(model_data), "--endpoint-name", "dogs-local"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=script_env(SDK3_PYTHON))
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
    # the server shut down cleanly on docker stop's SIGTERM, and the container is gone
    assert "local endpoint dogs-local removed (its container exited 0)" in "".join(lines)
    assert "ready: POST" in "".join(lines)  # the container's own log, streamed
    assert_no_container("dog-local-dogs-local")
    shutil.rmtree(downloads, ignore_errors=True)  # root-owned files from the container


def assert_no_container(name: str) -> None:
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{name}$"], capture_output=True, text=True)
    assert left.returncode == 0 and left.stdout.split() == [], left


SDK2_LOCAL_JOB = """
import json, sys
from pathlib import Path
import boto3
from sagemaker.local import image as local_image
from scripts import local_training
from scripts.estimator import local_job_failure, training_estimator

# Before the SDK merges every host's /opt/ml/model and /opt/ml/output, say what each host wrote.
merge = local_image._SageMakerContainer.retrieve_artifacts
def report_each_host(self, compose_data, output_data_config, job_name):
    for host in self.hosts:
        for volume in compose_data["services"][str(host)]["volumes"]:
            host_dir, container_dir = volume.removesuffix(":z").split(":")[:2]
            if container_dir in ("/opt/ml/model", "/opt/ml/output"):
                files = sorted(str(p.relative_to(host_dir)) for p in Path(host_dir).rglob("*") if p.is_file())
                print("HOST-FILES " + json.dumps({"host": str(host), "dir": container_dir, "files": files}))
                if (Path(host_dir) / "failure").is_file():
                    print("HOST-FAILURE " + json.dumps({"host": str(host),
                                                        "reason": (Path(host_dir) / "failure").read_text()}))
    return merge(self, compose_data, output_data_config, job_name)
local_image._SageMakerContainer.retrieve_artifacts = report_each_host

image, role, data, output, hyperparameters, job_name, instance_count = sys.argv[1:8]
session = local_training.sdk2_session(boto3.Session())
estimator = training_estimator(image_uri=image, role=role, instance_type="local", instance_count=int(instance_count),
                               session=session, hyperparameters=json.loads(hyperparameters), output_path=output)
estimator.fit({"training": data}, job_name=job_name, wait=True)  # "Completed" even for a failed job
reason = local_job_failure(Path(output.removeprefix("file://")))
if reason is not None:
    sys.exit(f"LOCAL-FAILURE {reason}")
"""


def host_reports(stdout: str, kind: str) -> list[dict]:
    return [json.loads(line.split(" ", 1)[1]) for line in stdout.splitlines() if line.startswith(kind + " ")]


def sdk2_local_job(instance_count: int, hyperparameters: dict, data: Path, output: Path, job_name: str,
                   ) -> subprocess.CompletedProcess:
    """SDK 2's Estimator in local mode (scripts/estimator.py's), `training` channel on file://DATA."""
    return subprocess.run(
        [str(SDK2_PYTHON), "-c", SDK2_LOCAL_JOB, TRAIN_IMAGE, ROLE, f"file://{data}", f"file://{output}",
         json.dumps(hyperparameters), job_name, str(instance_count)],
        cwd=REPO, capture_output=True, text=True, env=script_env(SDK2_PYTHON), timeout=900)


def sdk3_local_job(instance_count: int, hyperparameters: dict, data: Path, root: Path) -> subprocess.CompletedProcess:
    """SDK 3's ModelTrainer in LOCAL_CONTAINER mode (tests/sdk3_model_trainer.py)."""
    root.mkdir()
    return subprocess.run(
        [str(SDK3_PYTHON), str(REPO / "tests" / "sdk3_model_trainer.py"), TRAIN_IMAGE, str(data), str(root),
         str(instance_count), json.dumps(hyperparameters)],
        capture_output=True, text=True, env={**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}, timeout=900)


def unpacked_model(model_data: Path, folder: Path) -> tuple[dict, dict]:
    """(model.json's metrics, model.pt's state dict) of a job's model.tar.gz."""
    with tarfile.open(model_data) as archive:
        archive.extractall(folder, filter="data")
    return (json.loads((folder / "model.json").read_text())["metrics"],
            torch.load(folder / "model.pt", weights_only=True))


@pytest.mark.docker
def test_sdk3_model_trainer_on_one_and_two_hosts_trains_the_model_sdk2_local_mode_trains(moto, tiny_dataset,
                                                                                         tmp_path):
    # SageMaker SDK 2 local mode and SDK 3's ModelTrainer (LOCAL_CONTAINER: no `train` argument, hyperparameters
    # JSON-encoded), instance_count 1 and 2. Two hosts: two containers, one process each, gloo over the compose
    # network, rendezvous on the first host. Head only on fixed features (no BatchNorm in training, no random
    # crops): 2 hosts x batch 4 see the same images per step as 1 host x batch 8, so all three jobs make one model.
    # (No SDK 2 job on one host: SDK 3's one host against SDK 2's two already shows one host trains what two do.)
    # The values as a user writes them in Python: SDK 2 sends str(value) ("True", "0.01"), SDK 3 JSON ("true").
    # No int8 model and no rules: neither changes the weights, both cost each job ~20 s.
    hyperparameters = {"arch": "resnet18", "weights": "none", "image-size": 32, "epochs": 2, "num-workers": 0,
                       "hidden-units": 16, "freeze-backbone": True, "augment": False, "lr": 0.01, "quantize": "none",
                       "diagnostics": False}
    one_host, two_hosts = {**hyperparameters, "batch-size": 8}, {**hyperparameters, "batch-size": 4}
    output = tmp_path / "sdk2-two-hosts"
    result = sdk2_local_job(2, two_hosts, tiny_dataset, output, "dog-two-hosts")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-8000:]
    assert "2 host(s) x 1 process(es), CPU" in log
    by_host = {}
    for entry in host_reports(result.stdout, "HOST-FILES"):
        by_host.setdefault(entry["host"], {})[entry["dir"]] = entry["files"]
    first, second = sorted(by_host)
    assert first.startswith("algo-1") and second.startswith("algo-2"), by_host
    # Local mode mounts one model folder into both containers (SageMaker gives each host its own): who wrote
    # the model shows in the log, each line prefixed with its container's name (<project>-algo-1-<id>). The
    # output folders are per host.
    writers = [line.split("|")[0].strip() for line in log.splitlines() if "model artifact written to" in line]
    assert len(writers) == 1 and "algo-1-" in writers[0], writers  # rank 0 alone writes the model ...
    assert {"model.onnx", "model.json", "model.pt"} <= set(by_host[first]["/opt/ml/model"])
    assert [f for f in by_host[first]["/opt/ml/output"] if f.startswith("data/")]
    assert not [f for f in by_host[second]["/opt/ml/output"] if f.startswith("data/")]  # ... and the report
    reference_metrics, reference_weights = unpacked_model(output / "model.tar.gz", tmp_path / "sdk2-model")

    models = {}
    # One SDK 3 job at a time: its hosts are plain algo-1, algo-2 on the shared sagemaker-local network.
    for count, values in ((1, one_host), (2, two_hosts)):
        root = tmp_path / f"sdk3-{count}"
        result = sdk3_local_job(count, values, tiny_dataset, root)
        log = result.stdout + result.stderr
        assert result.returncode == 0, log[-8000:]
        assert f"{count} host(s) x 1 process(es), CPU" in log, log[-8000:]
        model_data = Path(result.stdout.split("MODEL-DATA ")[1].strip())
        assert local_job_failure(model_data.parent) is None, log[-8000:]  # SDK 3 says done for a failed job too
        models[f"SDK 3, {count} host(s)"] = unpacked_model(model_data, tmp_path / f"sdk3-{count}-model")

    for run, (metrics, weights) in models.items():  # SDK 3 on 1 host and on 2 against SDK 2 on 2
        for name in ("valid:loss", "valid:accuracy", "test:loss", "test:accuracy"):
            assert metrics[name] == pytest.approx(reference_metrics[name], abs=1e-4), (run, name)
        assert weights.keys() == reference_weights.keys(), run
        for key in reference_weights:
            assert torch.allclose(weights[key].float(), reference_weights[key].float(), atol=1e-4), (run, key)
    shutil.rmtree(tmp_path, ignore_errors=True)  # root-owned files from the containers


KILL_THE_TRAINING_PROGRAM = """
import os, signal
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        command = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
    except OSError:
        continue
    if any(part.endswith(b"train_entry.py") for part in command):
        os.kill(int(pid), signal.SIGKILL)
        print("killed", pid)
"""


@pytest.mark.docker
def test_two_instances_a_program_killed_on_the_second_host_ends_the_job_with_failure_files(moto, tiny_dataset,
                                                                                            tmp_path):
    # The kernel's OOM killer on algo-2 mid-training (SIGKILL to its training program): the job must end, not wait
    # in a collective, and each host says why in one line: algo-2 names the signal, algo-1 the lost peer (or, when
    # local mode's docker compose stops it first, SIGTERM and its checkpoint).
    hyperparameters = {"arch": "resnet18", "weights": "none", "image-size": "32", "epochs": "300", "num-workers": "0",
                       "hidden-units": "16", "freeze-backbone": "true", "augment": "false", "batch-size": "4",
                       "diagnostics": "false"}
    job = subprocess.Popen(
        [str(SDK2_PYTHON), "-c", SDK2_LOCAL_JOB, TRAIN_IMAGE, ROLE, f"file://{tiny_dataset}",
         f"file://{tmp_path / 'out'}",
         json.dumps(hyperparameters), "dog-two-hosts-killed", "2"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=script_env(SDK2_PYTHON))
    lines, killed_at = [], None
    try:
        deadline = time.monotonic() + 600
        while killed_at is None and time.monotonic() < deadline:
            line = job.stdout.readline()
            assert line or job.poll() is None, "the job ended before the kill:\n" + "".join(lines[-80:])
            lines.append(line)
            if "train:loss=" in line:  # training under way on both hosts (rank 0 prints the epochs)
                # SDK 2 names its containers <prefix>-algo-N-<5 characters>: not another test's SDK 3 <project>-algo-2-1
                names = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True,
                                       text=True, check=True).stdout.split()
                second = [name for name in names if re.search(r"-algo-2-[a-z0-9]{5}$", name)]
                assert len(second) == 1, second
                kill = subprocess.run(["docker", "exec", second[0], "python", "-c", KILL_THE_TRAINING_PROGRAM],
                                      capture_output=True, text=True, timeout=60)
                assert "killed" in kill.stdout, kill.stdout + kill.stderr
                killed_at = time.monotonic()
        assert killed_at is not None, "training never started:\n" + "".join(lines[-80:])
        rest, _ = job.communicate(timeout=300)
        lines.append(rest)
        ended_after = time.monotonic() - killed_at
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    log = "".join(lines)
    # Local mode's compose exits 0 after a container failed: scripts.estimator.local_job_failure finds the failure.
    assert job.returncode == 1 and "LOCAL-FAILURE " in log, log[-6000:]
    print(f"the job ended {ended_after:.1f} s after the kill")
    assert ended_after < 150, log[-6000:]  # SageMaker's SIGTERM grace is 120 s; a collective timeout is 30 min
    reasons = {entry["host"].split("-")[0] + "-" + entry["host"].split("-")[1]: entry["reason"]
               for entry in host_reports(log, "HOST-FAILURE")}
    assert set(reasons) == {"algo-1", "algo-2"}, log[-6000:]
    assert all(reason.count("\n") == 1 and "Traceback" not in reason for reason in reasons.values()), reasons
    assert reasons["algo-2"].startswith("the training program was killed by SIGKILL"), reasons
    assert (reasons["algo-1"].startswith("lost another process of this job")
            or reasons["algo-1"].startswith("stopped by SIGTERM")), reasons
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


@pytest.mark.docker
def test_batch_transform_in_local_mode_classifies_a_folder_and_names_the_files_it_could_not(moto, trained_model_dir,
                                                                                           tiny_dataset, tmp_path):
    from serve.codec import ImageLimits, decode_image
    from serve.config import read_config
    from serve.model import OnnxClassifier

    model_data = tmp_path / "model.tar.gz"
    with tarfile.open(model_data, "w:gz") as archive:
        for path in trained_model_dir.iterdir():
            archive.add(path, path.name)
    photos = tmp_path / "photos"
    images = [path for split in ("test", "valid", "train") for path in sorted(tiny_dataset.glob(f"{split}/*/*"))][:20]
    assert len(images) == 20 and len({path.suffix for path in images}) > 1  # JPEG and PNG
    (photos / "more").mkdir(parents=True)
    for index, image in enumerate(images):  # half in a subfolder: a job takes every file under its input
        shutil.copy(image, photos / ("more" if index % 2 else "") / f"{index:02d}-{image.name}")
    (photos / "corrupt.jpg").write_bytes(images[0].read_bytes()[:300])  # a photo cut off mid-upload
    (photos / "notes.txt").write_text("not a photo\n")
    output, summary = tmp_path / "predictions", tmp_path / "predictions.csv"
    result = subprocess.run(
        [str(SDK3_PYTHON), "scripts/transform.py", "--local", "--local-port", str(free_port()), "--image-uri",
         SERVE_IMAGE, "--role", ROLE, "--model-data", str(model_data), "--input", str(photos), "--output", str(output),
         "--job-name", "dog-transform-local", "--summarize", str(summary)],
        cwd=REPO, capture_output=True, text=True, env=script_env(SDK3_PYTHON), timeout=600)
    log = result.stdout + result.stderr
    # the container told the job its limits (asked, as SageMaker asks, since the job set none)
    assert "batch transform: GET /execution-parameters answers" in log, log[-5000:]
    assert result.returncode == 1, log[-5000:]  # two files could not be classified: the script says so
    assert "transform job: dog-transform-local (Completed)" in log
    assert "sent 22 files, " in log
    assert "(22 files, 20 classified, 2 not)" in result.stdout, log[-5000:]
    with open(summary) as handle:
        rows = {row["file"]: row for row in csv.DictReader(handle)}
    assert len(rows) == 22
    assert "could not be decoded" in rows["corrupt.jpg"]["error"]
    assert "is not a decodable image" in rows["notes.txt"]["error"]
    # each answer is the model's own, as the venv's ONNX Runtime computes it for that file
    classifier = OnnxClassifier(trained_model_dir, threads=1)
    for name, row in rows.items():
        if name in ("corrupt.jpg", "notes.txt"):
            continue
        image = decode_image((photos / name).read_bytes(), ImageLimits.of(read_config({})),  # as the handler does
                             classifier.preprocess.resize if classifier.preprocess.jpeg_draft else None)
        expected = classifier.predict(classifier.preprocess(image)[None])[0]
        assert row["error"] == "" and row["label"] == classifier.classes[int(expected.argmax())], name
        assert abs(float(row["probability"]) - float(expected.max())) < 1e-3, name
        assert (output / f"{name}.out").is_file()
    assert_no_container("dog-local-dog-transform-local")


def runtime_stand_in(container: str) -> http.server.ThreadingHTTPServer:
    """SageMaker's runtime front end, which cannot run here: InvokeEndpoint (POST /endpoints/NAME/invocations,
    as boto3 sends it) handed to the container's POST /invocations with its Content-Type and Accept, as
    SageMaker hands it, the container's answer handed back. Serves on a thread until shutdown()."""

    class Forward(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            assert re.fullmatch(r"/endpoints/[A-Za-z0-9-]+/invocations", self.path), self.path
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {name: self.headers[name] for name in ("Content-Type", "Accept") if self.headers[name]}
            forwarded = urllib.request.Request(f"{container}/invocations", data=body, headers=headers)
            with urllib.request.urlopen(forwarded, timeout=60) as answer:
                payload, content_type = answer.read(), answer.headers["Content-Type"]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Forward)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.docker
def test_the_notebooks_query_on_sdk3_names_the_class_the_serving_container_answers(moto, trained_model_dir):
    # SDK 3's twin of the notebook's Predictor.predict + np.argmax: sagemaker-core's Endpoint (described by moto)
    # with IdentitySerializer and NumpyDeserializer, its InvokeEndpoint reaching the serving container.
    import boto3

    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model(ModelName="dog-sdk3", ExecutionRoleArn=ROLE,
                           PrimaryContainer={"Image": SERVE_IMAGE, "ModelDataUrl": "s3://bucket/model.tar.gz"})
    sagemaker.create_endpoint_config(EndpointConfigName="dog-sdk3", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "dog-sdk3", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName="dog-sdk3", EndpointConfigName="dog-sdk3")
    port, name = free_port(), f"serve-sdk3-{os.getpid()}"
    subprocess.run(["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "-v",
                    f"{trained_model_dir}:/opt/ml/model:ro", SERVE_IMAGE, "serve"], check=True, capture_output=True)
    runtime = None
    try:
        container = f"http://127.0.0.1:{port}"
        poll_until(lambda: answers(f"{container}/ping"), timeout=120, seen=lambda: subprocess.run(
            ["docker", "logs", name], capture_output=True, text=True).stdout)
        runtime = runtime_stand_in(container)
        image = io.BytesIO()
        Image.new("RGB", (320, 240), (40, 170, 60)).save(image, "JPEG")
        result = subprocess.run(
            [str(SDK3_PYTHON), str(REPO / "tests" / "sdk3_invoke.py"), "dog-sdk3"], input=image.getvalue(),
            capture_output=True, timeout=300,
            env={**os.environ, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": f"http://127.0.0.1:{runtime.server_port}"})
        assert result.returncode == 0, result.stderr.decode()[-5000:]
        answer = json.loads(result.stdout.decode().strip().splitlines()[-1])
        with urllib.request.urlopen(urllib.request.Request(
                f"{container}/invocations", data=image.getvalue(), headers={"Content-Type": "image/jpeg"})) as reply:
            expected = json.loads(reply.read())  # the container's JSON answer to the same image
    finally:
        if runtime is not None:
            runtime.shutdown()
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    classes = json.loads((trained_model_dir / "model.json").read_text())["classes"]
    assert answer["shape"] == [1, len(classes)] and answer["index"] == expected["index"]
    assert answer["probability"] == pytest.approx(expected["probability"], abs=1e-4)


NOTEBOOK = REPO / "examples" / "train_and_deploy.ipynb"


@pytest.mark.docker
@pytest.mark.timeout(1200)
def test_the_example_notebook_runs_end_to_end_on_sdk3_in_local_mode(moto, tiny_dataset, tmp_path, monkeypatch):
    # examples/train_and_deploy.ipynb as a user runs it, cell by cell in an IPython kernel (nbclient): the tuning
    # request to the local AWS, training with the Debugger hook in SDK 3's local mode, the loss from the debug trial,
    # the serving container, a query, and the container stopped.
    import nbclient
    import nbformat

    for name, value in {"DOG_NOTEBOOK_LOCAL": "true", "TRAIN_IMAGE": TRAIN_IMAGE, "SERVE_IMAGE": SERVE_IMAGE,
                        "DOG_LOCAL_DATA": str(tiny_dataset), "DOG_LOCAL_PORT": str(free_port()),
                        "DOG_RUNS": str(tmp_path / "runs")}.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    text = "".join(output.get("text", "") for output in outputs)
    assert "SageMaker Python SDK 3." in text
    assert re.search(r"\ndog-tune-\S+ \w+ \{'Type': 'Maximize'", text), text[:1500]  # the job, described
    assert re.search(r"training job: dog-debug-\S+ \(Completed\)", text), text[-3000:]
    assert re.search(r"Loss\S* TRAIN \d+\.\d+ -> \d+\.\d+", text) and \
        any("image/png" in output.get("data", {}) for output in outputs)  # the plot, shown
    assert "serving until Ctrl-C" in text and re.search(r"test/\S+: [^\n]+ \(\d\.\d{3}\)", text), text[-3000:]
    assert "removed (its container exited 0)" in text
    assert_no_container("dog-local-dog-classifier-notebook")
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)  # root-owned files from the container
