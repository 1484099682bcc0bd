"""The real model server (`python -m serve`: multi-model-server on Java) on loopback, for tests and
`python -m reliability`: start it, talk plain HTTP to it, stop it leaving no process behind."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

from serve import loopback
from serve.server import READY_MARK
from support.polling import poll_until

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free loopback port below 32767: multi-model-server rejects higher ones (the kernel's ephemeral range)."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


def request(url: str, body: bytes | None = None, headers: dict | None = None, method: str | None = None,
            timeout: float = 60) -> tuple[int, dict, bytes]:
    """Plain HTTP/1.1 with exactly the headers given (urllib would add a form Content-Type)."""
    parsed = urllib.parse.urlsplit(url)
    target = f"{parsed.path}?{parsed.query}" if parsed.query else parsed.path
    return loopback.request(parsed.hostname, parsed.port, method or ("POST" if body is not None else "GET"), target,
                            body, headers, timeout=timeout)


def invoke(base: str, body: bytes, content_type: str | None = "image/jpeg", **headers) -> tuple[int, dict, bytes]:
    all_headers = {k.replace("_", "-"): v for k, v in headers.items()}
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    return request(f"{base}/invocations", body, all_headers, method="POST")


def invoke_json(base: str, body: bytes, content_type: str = "image/jpeg", **headers):
    status, response_headers, payload = invoke(base, body, content_type, **headers)
    return status, response_headers, json.loads(payload)


def group_processes(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pgid=,pid=,cmd="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split(None, 1)[0] == str(pgid)]


@contextlib.contextmanager
def running_server(model_dir: Path, extra_env: dict | None = None, wait_ready: bool = True):
    """`python -m serve` on a free loopback port; SIGTERM'd (and checked for leftovers) even if the test fails."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
    env.update({"SAGEMAKER_BIND_TO_PORT": str(port), "PYTHONUNBUFFERED": "1", "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
                "SAGEMAKER_STARTUP_TIMEOUT": "120"})
    env.update(extra_env or {})
    log_file = open(model_dir.parent / f"serve-{port}.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1"],
                               cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", process, log_file)
    try:
        if wait_ready:
            server.wait_for(READY_MARK, timeout=120)
        yield server
    finally:
        server.stop()
        log_file.close()


class Server:
    def __init__(self, base: str, process: subprocess.Popen, log_file):
        self.base, self.process, self.log_file = base, process, log_file
        self.leftovers: list[str] = []

    def log(self) -> str:
        self.log_file.flush()
        self.log_file.seek(0)
        return self.log_file.read()

    def wait_for(self, text: str, timeout: float) -> None:
        poll_until(lambda: text in self.log(), timeout, seen=self.log, alive=lambda: self.process.poll() is None,
                   interval=0.2)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # what the launcher started ends with it; anything of its group still there after a generous bound is left
        with contextlib.suppress(AssertionError):
            poll_until(lambda: not group_processes(self.process.pid), timeout=10)
        self.leftovers = group_processes(self.process.pid)
        for line in self.leftovers:  # never leave anything behind, even when the test is about to fail
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[1]), signal.SIGKILL)
        return self.process.returncode
