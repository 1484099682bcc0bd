"""The two images and docker compose, for real: a Docker engine, SageMaker's /opt/ml layout, HTTP.

All but the Dockerfile lint are marked `docker` and run in CI's Docker stage
(`make test-docker`, after .ci/docker-stage.sh has started an engine and built the images
named by TRAIN_IMAGE and SERVE_IMAGE).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import REPO
from serving import READY_MARK, free_port, invoke_json, request

from support.polling import poll_until

TRAIN_IMAGE = os.environ.get("TRAIN_IMAGE", "dog-classifier-train:local")
SERVE_IMAGE = os.environ.get("SERVE_IMAGE", "dog-classifier-serve:local")
SERVE_UID = "10001"  # model-server, docker/serve.Dockerfile
TINY_HYPERPARAMETERS = {"arch": "resnet18", "weights": "none", "image-size": "32", "epochs": "1",
                        "batch-size": "8", "num-workers": "0", "hidden-units": "16", "freeze-backbone": "false"}


def test_hadolint_passes_on_both_dockerfiles():
    hadolint = str(Path(sys.executable).with_name("hadolint"))  # installed into the venv by the dev extra
    result = subprocess.run([hadolint, "docker/train.Dockerfile", "docker/serve.Dockerfile"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def docker(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def sagemaker_tree(root: Path, dataset: Path | None, hyperparameters: dict, channel: str = "training") -> Path:
    """/opt/ml as SageMaker lays it out for a training job with one channel (`dataset` copied into it)."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))  # values are strings, as SageMaker's
    (config / "inputdataconfig.json").write_text(json.dumps(
        {channel: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}}))
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    if dataset is not None:
        shutil.copytree(dataset, root / "input" / "data" / channel)
    return root


# What SageMaker hands a job as its role's temporary credentials (shaped like them, made up here):
# no log may ever show them.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "ASIAZZZZTESTSENTINEL", "AWS_SECRET_ACCESS_KEY": "sentinel/secret+key0123456789",
               "AWS_SESSION_TOKEN": "sentinel-session-token"}
CREDENTIAL_FLAGS = [part for key, value in CREDENTIALS.items() for part in ("-e", f"{key}={value}")]


def run_training(opt_ml: Path, name: str, detach: bool = False, command: tuple[str, ...] = ("train",)
                 ) -> subprocess.CompletedProcess:
    # SageMaker mounts these four; /opt/ml/code stays the image's (it holds SAGEMAKER_PROGRAM). No network, as
    # under EnableNetworkIsolation (scripts/isolation.py): every training test shows the job needs none.
    mounts = []
    for part in ("input", "model", "output", "checkpoints"):
        (opt_ml / part).mkdir(exist_ok=True)
        mounts += ["-v", f"{opt_ml / part}:/opt/ml/{part}"]
    # (--network none leaves /etc/hosts without the host's own name, which SageMaker resolves even under isolation
    # and sagemaker-training waits for)
    return docker("run", *(["-d"] if detach else ["--rm"]), "--name", name, "--hostname", "algo-1", "--network", "none",
                  "--add-host", "algo-1:127.0.0.1", *mounts, *CREDENTIAL_FLAGS, TRAIN_IMAGE, *command, check=False)


def assert_no_credentials(text: str) -> None:
    for value in CREDENTIALS.values():
        assert value not in text, "a credential reached the log"


@pytest.mark.docker
def test_training_image_runs_as_sagemaker_runs_it(tiny_dataset, tmp_path):
    opt_ml = sagemaker_tree(tmp_path / "opt_ml", tiny_dataset, TINY_HYPERPARAMETERS)
    result = run_training(opt_ml, f"train-ok-{os.getpid()}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (opt_ml / "output" / "success").exists() and not (opt_ml / "output" / "failure").exists()
    metadata = json.loads((opt_ml / "model" / "model.json").read_text())
    assert metadata["hyperparameters"]["epochs"] == 1 and metadata["arch"] == "resnet18"
    assert (opt_ml / "model" / "model.onnx").stat().st_size > 1000
    # the int8 model, made by the quantizer's own environment (QUANTIZE_PYTHON: protobuf 6, ml_dtypes) beside
    # smdebug's protobuf 3.20.3, and checked against the float model on the test split
    int8 = metadata["int8"]
    assert int8["compared_on"]["split"] == "test" and int8["calibration"]["split"] == "valid"
    assert (int8["file"] == "model.int8.onnx") == (opt_ml / "model" / "model.int8.onnx").is_file()
    assert int8["file"] or "int8 model not written" in result.stdout + result.stderr
    assert json.loads((opt_ml / "output" / "data" / "evaluation.json").read_text())["accuracy"] >= 0
    assert "valid:accuracy=" in result.stdout  # the tuner's regexes read the container's log
    assert "CUDA compat: no NVIDIA driver on this host" in result.stdout  # the entry point's decision, logged
    # diagnostics in the image's own stack (protobuf 3.20.3 under TensorBoard, psutil, NVML bindings)
    rules = json.loads((opt_ml / "output" / "data" / "rules.json").read_text())
    assert len(rules) == 10 and (opt_ml / "output" / "data" / "report.html").stat().st_size > 10000
    assert list((opt_ml / "output" / "tensorboard").glob("events.out.tfevents.*"))
    assert "TensorBoard events are not written" not in result.stdout + result.stderr
    assert_no_credentials(result.stdout + result.stderr)
    for written in opt_ml.rglob("*"):
        if written.is_file() and written.suffix in (".json", ".txt", ".html", ""):
            assert_no_credentials(written.read_text(errors="replace"))


HYPERPARAMETERS_IN_THE_IMAGE = """
import dataclasses, json, sys
from sagemaker_training import environment, mapping
from train.hyperparameters import parse_args
parsed = {}
for name in sys.argv[1:]:
    environment.hyperparameters_file_dir = f"/config/{name}.json"  # the toolkit reads it when asked
    argv = [str(part) for part in mapping.to_cmd_args(environment.read_hyperparameters())]
    hyperparameters, _, flags = parse_args(argv)
    parsed[name] = {"argv": argv, "parsed": dataclasses.asdict(hyperparameters), "flags": vars(flags)}
print(json.dumps(parsed, default=str))
"""


def sdk3_serialize(value) -> str:
    """SDK 3's ModelTrainer encoding of a hyperparameter (sagemaker-train 1.27.0, safe_serialize): a string as it
    is, anything else as JSON (True -> "true", [1, 2] -> "[1, 2]"). SDK 3 cannot share this venv with SDK 2."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except TypeError:
        return str(value)


@pytest.mark.docker
def test_sdk2_and_sdk3_hyperparameter_encodings_reach_the_job_as_the_same_flags(tmp_path):
    # What a user passes either SDK as Python values; SDK 2's Estimator sends str(value) ("True": its
    # sagemaker.utils.to_string), SDK 3's ModelTrainer JSON ("true"); the image's toolkit JSON-decodes each value
    # and turns it back into flags.
    to_string = str

    values = {"arch": "resnet18", "weights": "none", "epochs": 3, "lr": 0.003, "batch-size": 8,
              "freeze-backbone": False, "augment": True, "image-size": 32, "hidden-units": 16,
              "profile-steps": "2-3", "diagnostics": True, "quantize": "none",
              "int8-min-agreement": 0.99}
    (tmp_path / "sdk2.json").write_text(json.dumps({k: to_string(v) for k, v in values.items()}))
    (tmp_path / "sdk3.json").write_text(json.dumps({k: sdk3_serialize(v) for k, v in values.items()}))
    assert json.loads((tmp_path / "sdk2.json").read_text())["augment"] == "True"
    assert json.loads((tmp_path / "sdk3.json").read_text())["augment"] == "true"
    result = docker("run", "--rm", "--network", "none", "-v", f"{tmp_path}:/config:ro", TRAIN_IMAGE,
                    "python", "-c", HYPERPARAMETERS_IN_THE_IMAGE, "sdk2", "sdk3")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["sdk2"]["argv"] == found["sdk3"]["argv"], found
    assert found["sdk2"]["parsed"] == found["sdk3"]["parsed"] and found["sdk2"]["flags"] == found["sdk3"]["flags"]
    parsed = found["sdk3"]["parsed"]
    assert (parsed["epochs"], parsed["lr"], parsed["freeze_backbone"], parsed["augment"]) == (3, 0.003, False, True)


CUDA_IN_THE_IMAGE = """
import json, torch, torchvision
from pathlib import Path
from train import cuda_compat
version = Path("/tmp/version")
decisions = {}
for driver in ("470.256.02", "580.65.06"):
    version.write_text(f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {driver}  Thu May  2 14:37:44 UTC 2024")
    decisions[driver] = cuda_compat.environment({}, version_file=version)[0].get("LD_LIBRARY_PATH")
print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__, "cuda": torch.version.cuda,
                  "compat": cuda_compat.compat_driver_version(), "decisions": decisions}))
"""


@pytest.mark.docker
def test_training_image_has_the_venvs_torch_and_compat_libraries_it_uses_only_under_older_drivers():
    # One set of pins: the image's torch is the one the tests ran on (a CUDA 12.8 build), and the entry point's
    # decision (train.cuda_compat) finds the image's own compat libraries (CI: a stand-in of the same layout).
    import torch
    import torchvision

    result = docker("run", "--rm", TRAIN_IMAGE, "python", "-c", CUDA_IN_THE_IMAGE)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert (found["torch"], found["torchvision"], found["cuda"]) == (torch.__version__, torchvision.__version__,
                                                                     torch.version.cuda)
    assert found["compat"] and int(found["compat"].split(".")[0]) >= 570  # CUDA 12.8's driver branch
    assert found["decisions"] == {"470.256.02": "/usr/local/cuda/compat", "580.65.06": None}


@pytest.mark.docker
def test_the_gpu_check_runs_in_the_training_image():
    # `gpu-check` in the image's own stack: without a GPU it says so and succeeds; its CPU dry run goes through
    # every check (ResNet-50 with the training loop, DDP, the step timer) with the image's torch.
    plain = docker("run", "--rm", TRAIN_IMAGE, "gpu-check", check=False)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert plain.stdout.startswith("CUDA compat: no NVIDIA driver on this host\nno GPU: CUDA sees none here")
    dry = docker("run", "--rm", "--shm-size", "1g", TRAIN_IMAGE, "gpu-check", "--cpu-dry-run", "--steps", "2",
                 "--batch-size", "2", check=False)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "CPU DRY RUN: no GPU was checked" in dry.stdout and "FAILED" not in dry.stdout, dry.stdout


@pytest.mark.docker
def test_training_image_featurizes_once_then_trains_a_trial_on_the_features(tiny_dataset, tmp_path):
    fixed = {**TINY_HYPERPARAMETERS, "freeze-backbone": "true", "augment": "false"}
    featurize = sagemaker_tree(tmp_path / "featurize", tiny_dataset, {**fixed, "featurize": "true"})
    # with no argument, as SDK 3's ModelTrainer starts a local container (SageMaker itself passes `train`)
    result = run_training(featurize, f"featurize-{os.getpid()}", command=())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "featurized: train 24, valid 9, test 9 images, 512 features each" in result.stdout
    # SageMaker uploads the model dir as model.tar.gz; the tuner hands that object to each trial's
    # `features` channel (unpacked by the image's own Python: Debian's 3.11.2 in CI, no tarfile filter).
    channel = tmp_path / "features"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as archive:
        for path in sorted((featurize / "model").iterdir()):
            archive.add(path, arcname=path.name)
    trial = sagemaker_tree(tmp_path / "trial", channel, fixed, channel="features")
    result = run_training(trial, f"trial-{os.getpid()}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "features of train, valid, test taken from the features channel" in result.stdout
    assert "valid:accuracy=" in result.stdout and (trial / "model" / "model.onnx").is_file()


@pytest.mark.docker
def test_a_broken_job_ends_with_a_one_line_reason(tiny_dataset, tmp_path):
    opt_ml = sagemaker_tree(tmp_path / "opt_ml", tiny_dataset, {**TINY_HYPERPARAMETERS, "lr": "fast"})
    result = run_training(opt_ml, f"train-bad-{os.getpid()}")
    assert result.returncode != 0
    reason = (opt_ml / "output" / "failure").read_text()
    assert reason.count("\n") == 1 and "--lr" in reason and "Traceback" not in reason, reason
    assert not (opt_ml / "output" / "success").exists()
    assert_no_credentials(result.stdout + result.stderr)


@pytest.mark.docker
def test_training_image_saves_debugger_tensors_when_sagemaker_asks(tiny_dataset, tmp_path):
    from test_debugger import read_trial

    opt_ml = sagemaker_tree(tmp_path / "opt_ml", tiny_dataset,
                            {**TINY_HYPERPARAMETERS, "epochs": "2", "freeze-backbone": "true"})
    # what SageMaker writes for a job with a DebuggerHookConfig (its default LocalPath)
    (opt_ml / "input" / "config" / "debughookconfig.json").write_text(json.dumps({
        "LocalPath": "/opt/ml/output/tensors", "HookParameters": {"save_interval": "1"},
        "CollectionConfigurations": [{"CollectionName": "losses"}, {"CollectionName": "gradients"}]}))
    result = run_training(opt_ml, f"train-debug-{os.getpid()}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SageMaker Debugger: hook created" in result.stdout
    trial = read_trial(opt_ml / "output" / "tensors")
    assert trial["train_steps"] >= 2 and trial["eval_steps"] >= 2


@pytest.mark.docker
def test_docker_stop_checkpoints_the_job(tiny_dataset, tmp_path):
    # StopTrainingJob and spot interruptions arrive as SIGTERM to the container's PID 1.
    opt_ml = sagemaker_tree(tmp_path / "opt_ml", tiny_dataset,
                            {**TINY_HYPERPARAMETERS, "epochs": "50", "batch-size": "4"})
    name = f"train-stop-{os.getpid()}"
    run_training(opt_ml, name, detach=True)
    try:
        poll_until(lambda: "METRIC epoch=1 " in docker("logs", name, check=False).stdout, timeout=180,
                   seen=lambda: docker("logs", name, check=False).stdout, interval=0.5)
        docker("stop", "--time", "60", name)
        code = int(docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout)
        assert code != 0
        reason = (opt_ml / "output" / "failure").read_text()
        assert reason.startswith("stopped by SIGTERM") and reason.count("\n") == 1, reason
        assert (opt_ml / "checkpoints" / "checkpoint.pt").is_file()
    finally:
        docker("rm", "-f", name, check=False)


@pytest.mark.docker
def test_serving_image_serves_and_stops_on_sigterm(trained_model_dir):
    port = free_port()
    name = f"serve-{os.getpid()}"
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "-v", f"{trained_model_dir}:/opt/ml/model:ro",
           SERVE_IMAGE, "serve")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(name)
        assert request(f"{base}/ping")[0] == 200
        status, _, answer = invoke_json(base, _jpeg(), "image/jpeg")
        assert status == 200 and answer["label"]
        status, _, error = invoke_json(base, b"nope", "text/plain")
        assert status == 415 and "error" in error
        # started as root, as SageMaker starts it; every process serves as model-server, with no capabilities
        uids = process_uids(name)
        assert len(uids) >= 3 and set(uids) == {SERVE_UID}, uids  # the launcher, Java, the workers
        assert re.search(r"^CapEff:\s+0+$", docker("exec", name, "cat", "/proc/1/status").stdout, re.MULTILINE)
        docker("stop", "--time", "30", name)  # SIGTERM, then SIGKILL after 30 s: exit code 137, not 0
        assert docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    finally:
        docker("rm", "-f", name, check=False)


def process_uids(name: str) -> list[str]:
    """The user ID of every process in container `name` (docker top insists on a PID column)."""
    return [line.split()[1] for line in docker("top", name, "-eo", "pid,uid").stdout.splitlines()[1:]]


def wait_until_ready(name: str, timeout: float = 120) -> None:
    """Until the serving container `name` logs "ready: POST" (its log in the failure otherwise)."""
    poll_until(lambda: READY_MARK in docker("logs", name, check=False).stdout, timeout,
               seen=lambda: docker("logs", name, check=False).stdout, interval=0.5)


def _jpeg() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 170, 60)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.docker
def test_serving_image_labels_and_size():
    labels = json.loads(docker("inspect", "--format", "{{json .Config.Labels}}", SERVE_IMAGE).stdout)
    assert labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    exposed = json.loads(docker("inspect", "--format", "{{json .Config.ExposedPorts}}", SERVE_IMAGE).stdout)
    assert "8080/tcp" in exposed
    listing = docker("run", "--rm", "--entrypoint", "python", SERVE_IMAGE, "-c",
                     "import importlib.util as u; print(u.find_spec('torch') is None)")
    assert listing.stdout.strip() == "True"  # no torch in the serving image


@pytest.mark.docker
def test_compose_trains_on_the_sample_data_then_serves(tmp_path):
    port = free_port()
    project = f"ci{os.getpid()}"
    env = dict(os.environ, RUNS_DIR=str(tmp_path / "runs"), PORT=str(port), TRAIN_IMAGE=TRAIN_IMAGE,
               SERVE_IMAGE=SERVE_IMAGE, EPOCHS="2", IMAGE_SIZE="48")
    compose = ["docker", "compose", "-p", project, "-f", str(REPO / "docker-compose.yml")]
    try:
        # `up -d` returns once training has completed (serve depends on it) and serve has started.
        up = subprocess.run([*compose, "up", "-d", "--no-build"], env=env, capture_output=True, text=True,
                            timeout=900)
        logs = subprocess.run([*compose, "logs", "--no-color"], env=env, capture_output=True, text=True).stdout
        (tmp_path / "compose.log").write_text(logs)
        assert up.returncode == 0, up.stdout + up.stderr + logs
        assert "making the sample dataset" in logs and " test:accuracy=" in logs
        poll_until(lambda: _health(compose, env) == "healthy", timeout=120, interval=1,
                   seen=lambda: subprocess.run([*compose, "logs"], env=env, capture_output=True, text=True).stdout)
        status, _, answer = invoke_json(f"http://127.0.0.1:{port}", _jpeg(), "image/jpeg")
        assert status == 200 and answer["top_k"], answer
        assert (tmp_path / "runs" / "model" / "model.onnx").is_file()
    finally:
        down = subprocess.run([*compose, "down", "-v", "--timeout", "20"], env=env, capture_output=True, text=True,
                              timeout=300)
        assert down.returncode == 0, down.stderr


def _health(compose: list[str], env: dict) -> str:
    container = subprocess.run([*compose, "ps", "-q", "serve"], env=env, capture_output=True, text=True).stdout.strip()
    if not container:
        return "missing"
    return docker("inspect", "--format", "{{.State.Health.Status}}", container, check=False).stdout.strip()


# An AWS access key ID (long-term AKIA, temporary ASIA) and a secret key assignment, as they appear in
# config files, env dumps and shell history; AWS's documented example keys (…EXAMPLE) are allowed.
KEY_ID = re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
SECRET = re.compile(rb"aws_secret_access_key\s*[=:]\s*['\"]?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])", re.I)
# In the image, every file of its filesystem through GNU grep (two passes: an access key ID as KEY_ID has it
# without the look-arounds, and the secret's name in any case), then the files it names, as a tar, checked with
# the exact expressions here. The 8.6 GB training image: ~20 s; a tar of all of it read by Python took ~170 s.
PREFILTERS = ("grep -rlaE -D skip --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev '(AKIA|ASIA)[A-Z0-9]{16}'",
              "grep -rlaiF -D skip --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 'aws_secret_access_key'")
CANDIDATES = (f"find / -xdev -type f | wc -l >&2; {{ {PREFILTERS[0]} /; {PREFILTERS[1]} /; }} | sort -u "
              "| tar -cf - --files-from=- 2>/dev/null")


def credential_findings(data: bytes) -> list[bytes]:
    found = KEY_ID.findall(data) + SECRET.findall(data)
    return [match for match in found if b"EXAMPLE" not in match]


def test_the_in_image_prefilter_finds_every_credential_the_exact_expressions_do(tmp_path):
    # The prefilter may only ever name more files than the exact expressions would, never fewer: run it
    # (GNU grep, as in the images) on files that hold each kind of finding in the spellings that matter.
    samples = {"key_id": b"x AKIAABCDEFGHIJKLMNOP y", "temporary": b"ASIAABCDEFGHIJKLMNOP",
               "secret": b"AWS_SECRET_ACCESS_KEY = abcdefghijABCDEFGHIJ0123456789abcdefghij",
               "ini": b"[default]\naws_secret_access_key=abcdefghijABCDEFGHIJ0123456789/+abcdefgh\n",
               "clean": b"nothing to see"}
    for name, data in samples.items():
        (tmp_path / name).write_bytes(data)
    named = set()
    for prefilter in PREFILTERS:  # LC_ALL=C as in the images' scan below
        found = subprocess.run(f"{prefilter} {tmp_path}", shell=True, capture_output=True, text=True,
                               env={**os.environ, "LC_ALL": "C"}).stdout
        named |= {Path(line).name for line in found.split()}
    exact = {name for name, data in samples.items() if credential_findings(data)}
    assert exact == {"key_id", "temporary", "secret", "ini"}
    assert named >= exact


def image_credential_findings(image: str) -> tuple[int, int, list[str]]:
    """(files in the image, files the prefilter named, findings in them and in the image's history and config)."""
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    config = docker("inspect", "--format", "{{json .Config}}", image).stdout
    findings = [f"history or config: {match[:8]!r}..." for match in credential_findings((history + config).encode())]
    # LC_ALL=C: grep -i is several times slower under the images' C.UTF-8, and the patterns are ASCII
    scan = subprocess.run(["docker", "run", "--rm", "--network", "none", "-e", "LC_ALL=C", "--entrypoint", "sh",
                           image, "-c", CANDIDATES], capture_output=True, timeout=600)
    candidates = 0
    with tarfile.open(fileobj=io.BytesIO(scan.stdout), mode="r:") as named:
        for member in named:
            if member.isfile():
                candidates += 1
                found = credential_findings(named.extractfile(member).read())
                findings += [f"{member.name}: {match[:8]!r}..." for match in found]
    return int(scan.stderr.split()[0]), candidates, findings


@pytest.mark.docker
@pytest.mark.parametrize("image", [TRAIN_IMAGE, SERVE_IMAGE])
def test_no_credentials_in_any_image_layer_or_file(image):
    files, candidates, findings = image_credential_findings(image)
    # boto3's and botocore's own docs and examples name the key formats: the prefilter did run and read them
    assert files > 1000 and candidates > 0 and findings == [], (files, candidates, findings)


@pytest.mark.docker
def test_the_credential_scan_finds_a_key_left_in_an_image(tmp_path):
    # The mistake the scan is for: a credentials file copied into an image, deep in a folder of its own.
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = AKIA2QWERTYUIOPASDFG\n"
                                          "aws_secret_access_key = abcdefghijABCDEFGHIJ0123456789/+abcdefgh\n")
    (tmp_path / "Dockerfile").write_text(f"FROM {SERVE_IMAGE}\nCOPY credentials /opt/venv/share/left/behind/\n")
    image = f"dog-classifier-leaky:{os.getpid()}"
    docker("build", "-q", "-t", image, str(tmp_path))
    try:
        _, _, findings = image_credential_findings(image)
    finally:
        docker("rmi", "-f", image, check=False)
    assert sorted(findings) == ["opt/venv/share/left/behind/credentials: b'AKIA2QWE'...",
                                "opt/venv/share/left/behind/credentials: b'abcdefgh'..."], findings


# A request from inside the container, for one with no network to reach it through
INVOKE_INSIDE = """
import json, sys, urllib.request
ping = urllib.request.urlopen("http://127.0.0.1:8080/ping", timeout=10).status
invocation = urllib.request.Request("http://127.0.0.1:8080/invocations", data=sys.stdin.buffer.read(),
                                    headers={"Content-Type": "image/jpeg"})
print(json.dumps({"ping": ping, "answer": json.load(urllib.request.urlopen(invocation, timeout=30))}))
"""


@pytest.mark.docker
def test_serving_image_needs_no_network_and_runs_as_any_user_it_is_given(trained_model_dir):
    # --network none: what SageMaker's network isolation leaves a model container (nothing but loopback)
    # and with no argument (SageMaker passes `serve`; a bare `docker run` and SDK 3's local modes do not)
    name = f"serve-isolated-{os.getpid()}"
    docker("run", "-d", "--name", name, "--network", "none", "--user", "65534:65534", *CREDENTIAL_FLAGS,
           "-v", f"{trained_model_dir}:/opt/ml/model:ro", SERVE_IMAGE)
    try:
        wait_until_ready(name)
        inside = subprocess.run(["docker", "exec", "-i", name, "/opt/venv/bin/python", "-c", INVOKE_INSIDE],
                                input=_jpeg(), capture_output=True, timeout=60)
        assert inside.returncode == 0, inside.stderr.decode(errors="replace")
        answer = json.loads(inside.stdout)
        assert answer["ping"] == 200 and answer["answer"]["label"]
        assert set(process_uids(name)) == {"65534"}
        logs = docker("logs", name, check=False)
        assert_no_credentials(logs.stdout + logs.stderr)
    finally:
        docker("rm", "-f", name, check=False)


@pytest.mark.docker
def test_a_model_the_serving_user_cannot_read_stops_the_container_with_the_ways_out(trained_model_dir, tmp_path):
    private = tmp_path / "private-model"
    shutil.copytree(trained_model_dir, private)
    private.chmod(0o700)  # as SageMaker SDK local mode's temporary folders are
    result = docker("run", "--rm", "-v", f"{private}:/opt/ml/model:ro", SERVE_IMAGE, "serve", timeout=120,
                    check=False)
    assert result.returncode != 0
    assert (f"cannot read /opt/ml/model/model.json as uid {SERVE_UID}: make the model readable to others"
            in result.stderr + result.stdout), result.stderr[-2000:]
    assert "SERVE_USER=root" in result.stderr + result.stdout
    bogus = docker("run", "--rm", "-e", "SERVE_USER=admin", SERVE_IMAGE, "serve", check=False)
    assert bogus.returncode == 2 and "SERVE_USER=admin: expected model-server (the default) or root" in bogus.stderr


@pytest.mark.docker
def test_serving_image_runs_as_serverless_runs_it_read_only_as_any_user(trained_model_dir):
    # Serverless Inference: any non-root user, nothing writable but /tmp, a memory size, one worker
    port = free_port()
    name = f"serve-serverless-{os.getpid()}"
    docker("run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--user", "1000:1000", "--memory", "3g",
           "--cpus", "2", "-e", "SAGEMAKER_MODEL_SERVER_WORKERS=1", "-p", f"127.0.0.1:{port}:8080",
           "-v", f"{trained_model_dir}:/opt/ml/model:ro", SERVE_IMAGE, "serve")
    try:
        wait_until_ready(name)
        base = f"http://127.0.0.1:{port}"
        assert request(f"{base}/ping")[0] == 200
        status, _, answer = invoke_json(base, _jpeg(), "image/jpeg")
        assert status == 200 and answer["label"]
        logs = docker("logs", name, check=False).stdout
        assert "1 worker(s)" in logs and "Read-only file system" not in logs, logs[-3000:]
        assert docker("exec", name, "sh", "-c", "touch /opt/ml/x", check=False).returncode != 0  # truly read-only
        docker("stop", "--time", "30", name)
        assert docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    finally:
        docker("rm", "-f", name, check=False)


@pytest.mark.docker
def test_multi_model_container_answers_507_at_its_memory_limit_then_loads_once_a_model_is_unloaded(tmp_path):
    # SageMaker's multi-model flow under a real memory limit: models load until memory is short, the next
    # load answers 507 (not an OOM kill), SageMaker unloads one and loads again
    from test_multi_model import artifact

    models = tmp_path / "models"
    names = ["kennel-a", "kennel-b", "kennel-c", "kennel-d"]
    for seed, name in enumerate(names):
        artifact(models / name / "model", [f"{name}-{i}" for i in range(3)], seed)
    for path in [tmp_path, *models.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    labels = json.loads(docker("inspect", "--format", "{{json .Config.Labels}}", SERVE_IMAGE).stdout)
    assert labels["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"
    port = free_port()
    name = f"serve-mme-{os.getpid()}"
    docker("run", "-d", "--name", name, "--memory", "1g", "-e", "SAGEMAKER_MULTI_MODEL=true",
           "-p", f"127.0.0.1:{port}:8080", "-v", f"{models}:/opt/ml/models:ro", SERVE_IMAGE, "serve")
    base = f"http://127.0.0.1:{port}"

    def load(model: str) -> int:
        body = json.dumps({"model_name": model, "url": f"/opt/ml/models/{model}/model"}).encode()
        return request(f"{base}/models", body, {"Content-Type": "application/json"}, method="POST")[0]

    try:
        wait_until_ready(name)
        # 1 GB holds the Java frontend and three workers (~230 MB each) with 256 MB to spare, not a fourth
        assert [load(model) for model in names[:3]] == [200, 200, 200], docker("logs", name, check=False).stdout
        assert load("kennel-d") == 507
        logs = docker("logs", name, check=False).stdout
        assert "not enough memory to load /opt/ml/models/kennel-d/model/model.onnx" in logs
        assert request(f"{base}/models/kennel-a", method="DELETE")[0] == 200
        poll_until(lambda: "model kennel-d unregistered" in docker("logs", name, check=False).stdout, timeout=60,
                   seen=lambda: docker("logs", name, check=False).stdout[-3000:], interval=0.1)
        # the memory kennel-a's worker held is free again once it has exited (a moment after the DELETE's answer;
        # SageMaker retries a 507 too)
        status = poll_until(lambda: (answer := load("kennel-d")) != 507 and answer, timeout=60,
                            seen=lambda: docker("logs", name, check=False).stdout[-3000:], interval=0.5)
        assert status == 200, docker("logs", name, check=False).stdout[-3000:]
        status, _, body = request(f"{base}/models/kennel-d/invoke", _jpeg(), {"Content-Type": "image/jpeg"},
                                  method="POST")
        assert status == 200 and json.loads(body)["label"].startswith("kennel-d-")
        assert docker("inspect", "--format", "{{.State.OOMKilled}}", name).stdout.strip() == "false"
    finally:
        docker("rm", "-f", name, check=False)
