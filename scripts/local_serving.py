"""The serving image on this machine as SageMaker runs it on an instance: `docker run IMAGE serve`, the model
unpacked at /opt/ml/model (read-only), port 8080 published on 127.0.0.1 alone. deploy.py --local and
transform.py --local run on it, under either SDK.

SDK 2's local mode did the same through docker compose; SDK 3 has no local mode for a custom serving image
(ModelBuilder's LOCAL_CONTAINER starts no container of ours), so the scripts do it themselves, one way for both.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from train.archive import unpack
from train.errors import TrainingError

CONTAINER_PORT = 8080  # where SageMaker sends /ping and /invocations
READY_TIMEOUT_S = 300  # multi-model-server on Java plus the model load: ~10-40 s here
STOP_TIMEOUT_S = 30  # docker stop's grace before SIGKILL; the server drains in a few seconds
LOG_LINES_ON_FAILURE = 30


class LocalServingError(RuntimeError):
    """The container could not start or serve; the message says why in one line, its log follows."""


def container_name(endpoint_name: str) -> str:
    """A docker name for the endpoint's container (docker allows [a-zA-Z0-9][a-zA-Z0-9_.-]*)."""
    return "dog-local-" + re.sub(r"[^a-zA-Z0-9_.-]", "-", endpoint_name)[:100]


def unpacked_model(model_tarball: Path) -> Path:
    """model.tar.gz unpacked into a folder the image's unprivileged server user can read (0755), as SageMaker
    unpacks ModelDataUrl into /opt/ml/model; plain files only, bounded (train/archive.py)."""
    folder = Path(tempfile.mkdtemp(prefix="dog-local-model-"))
    folder.chmod(0o755)
    try:
        unpack(model_tarball, folder)
    except TrainingError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise LocalServingError(str(error)) from None
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


def run_command(image: str, name: str, model_dir: Path, port: int, environment: dict[str, str]) -> list[str]:
    """`docker run` for the serving container: detached, published on loopback only, the model read-only."""
    settings = [part for key, value in sorted(environment.items()) for part in ("-e", f"{key}={value}")]
    return ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:{CONTAINER_PORT}",
            "-v", f"{model_dir}:/opt/ml/model:ro", *settings, "--", image, "serve"]


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise LocalServingError("docker not found: --local runs the serving image with Docker on this machine") \
            from None


def _pinged(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _running(name: str) -> bool:
    state = _docker("inspect", "--format", "{{.State.Running}}", name)
    return state.returncode == 0 and state.stdout.strip() == "true"


def tail_of_log(name: str) -> str:
    log = _docker("logs", "--tail", str(LOG_LINES_ON_FAILURE), name)
    return (log.stdout + log.stderr).rstrip()


def stop(name: str) -> int | None:
    """Stop and remove the container; its exit code (0: the server shut down cleanly), None if it was gone."""
    _docker("stop", "--time", str(STOP_TIMEOUT_S), name, timeout=STOP_TIMEOUT_S + 60)
    state = _docker("inspect", "--format", "{{.State.ExitCode}}", name)
    _docker("rm", "--force", name)
    return int(state.stdout.strip()) if state.returncode == 0 and state.stdout.strip().isdigit() else None


@contextlib.contextmanager
def serving_container(image: str, model_tarball: Path, port: int, endpoint_name: str,
                      environment: dict[str, str] | None = None, ready_timeout: float = READY_TIMEOUT_S,
                      clock: Callable[[], float] = time.monotonic, poll_s: float = 1.0,
                      on_stopped: Callable[[int | None], None] = lambda code: None) -> Iterator[str]:
    """The container, answering /ping on 127.0.0.1:port, until the block ends, its log streamed to this stdout;
    yields its base URL. Stopped and removed however the block ends, and its unpacked model with it; `on_stopped`
    gets its exit code."""
    name = container_name(endpoint_name)
    if _docker("inspect", name).returncode == 0:
        raise LocalServingError(f"a container {name} exists already (another deploy.py --local of "
                                f"{endpoint_name}?): stop it with `docker rm -f {name}` or choose another name")
    model_dir = unpacked_model(model_tarball)
    try:
        started = _docker(*run_command(image, name, model_dir, port, environment or {})[1:])
        if started.returncode != 0:
            reason = (started.stderr.strip().splitlines() or ["no message"])[-1]
            raise LocalServingError(f"docker run {image} failed: {reason}")
        log = subprocess.Popen(["docker", "logs", "--follow", name], stdin=subprocess.DEVNULL)
        try:
            deadline = clock() + ready_timeout
            while not _pinged(port):
                if not _running(name):
                    raise LocalServingError(f"the serving container exited before it answered /ping:\n"
                                            f"{tail_of_log(name)}")
                if clock() >= deadline:
                    raise LocalServingError(f"the serving container did not answer /ping within {ready_timeout:.0f}"
                                            f" s:\n{tail_of_log(name)}")
                time.sleep(poll_s)
            yield f"http://127.0.0.1:{port}"
        finally:
            on_stopped(stop(name))
            log.terminate()
            log.wait(timeout=30)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
