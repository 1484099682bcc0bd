"""`python -m train` jobs started as forks of one process that has already imported torch, torchvision and
matplotlib (multiprocessing's forkserver idea): each job is still a process of its own, with its own
PID, environment, working folder, stdout, stderr, signals and exit status, but a tiny job's ~4 s of imports
are paid once per test session instead of once per job.

What a fork cannot give a job, and why the tests do not need it: import-time reads of the environment (torch,
OpenMP and matplotlib read theirs when this server imports them; no test varies those variables) and
warnings printed while importing (they reach this server's stderr, not the job's). A job whose environment
changes how Python starts (its own PYTHONPATH, say) gets a new interpreter (PreloadedJobs.forkable).
JOBS_AS_FRESH_INTERPRETERS=1 makes tests/conftest.py's run_train start every job as `python -m train`.

Protocol, one job at a time, one JSON line each way: the client writes {"argv", "env", "cwd", "stdout",
"stderr", "script"} (two file paths; script: null for `python -m train`, else a .py file to run as
`python SCRIPT ARGV`, such as tests/sigterm_at_step.py, which runs train itself); the server forks and
answers {"pid"}, then {"returncode"} when the job ends (negative: the signal that ended it, as subprocess
reports it). The server ends when its stdin closes.
"""

from __future__ import annotations

import json
import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def preload() -> None:
    """What every job imports, imported here without running anything: no thread pool or OpenMP team may
    exist at fork time (a forked copy of one would hang). Not ONNX: it imports protobuf, which must not be
    loaded before the Debugger hook picks protobuf's implementation (train.debugger), as in a real job."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    import train.cli
    import train.trainer  # noqa: F401


def run_job(job: dict) -> None:
    """In the forked child: become `python -m train ARGV` (or `python SCRIPT ARGV`) in the job's folder with the
    job's environment."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # not the server's requests
    os.close(null)
    sys.stdin = open(0, closefd=False)
    for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)  # sys.stdout and sys.stderr write to fds 1 and 2: now the job's files
        os.close(out)
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    if job["script"] is not None:
        sys.path[0] = str(Path(job["script"]).parent)  # as `python SCRIPT` puts the script's folder first
        sys.argv = [job["script"], *job["argv"]]
        runpy.run_path(job["script"], run_name="__main__")
        return
    sys.path[0] = job["cwd"]  # as `python -m` puts its working folder first (here: this file's folder)
    sys.argv = ["-m", *job["argv"]]
    runpy.run_module("train", run_name="__main__", alter_sys=True)  # what `python -m train` does


def serve(answers) -> dict | None:
    """Answer jobs until stdin closes (None); in a forked child, return its job."""
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            answers.close()  # the client sees the server's end, not a job's
            return job
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()
        _, status = os.waitpid(pid, 0)
        answers.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        answers.flush()
    return None


def startup_variables(env: dict) -> dict:
    """The variables a new interpreter reads as it starts (PYTHONPATH, PYTHONDONTWRITEBYTECODE, -I-like ones)."""
    return {k: v for k, v in env.items() if k.startswith("PYTHON") and k != "PYTHONUNBUFFERED"}


class PreloadedJobs:
    """The client: one server for the test session, started at the first job, closed by conftest's
    pytest_sessionfinish."""

    def __init__(self) -> None:
        self.server: subprocess.Popen | None = None
        self.server_env: dict | None = None
        self.pending = b""  # what the server has written past the last answer read
        self.lock = threading.Lock()

    def forkable(self, env: dict) -> bool:
        """Whether a fork can be the job: not when its environment changes how Python starts differently from
        the server's (a PYTHONPATH of its own, say), which only a new interpreter reads."""
        return startup_variables(env) == startup_variables(self.server_env or self._server_environment())

    def run(self, argv: list[str], env: dict, cwd: Path, timeout: float,
            script: Path | None = None) -> subprocess.CompletedProcess:
        with self.lock, tempfile.TemporaryDirectory(prefix="job-") as outputs:
            out, err = Path(outputs) / "stdout", Path(outputs) / "stderr"
            server = self._started()
            server.stdin.write(json.dumps({"argv": argv, "env": env, "cwd": str(cwd), "stdout": str(out),
                                           "stderr": str(err), "script": script and str(script)}).encode()
                              + b"\n")
            server.stdin.flush()
            pid = self._answer(60)["pid"]
            try:
                returncode = self._answer(timeout)["returncode"]
            except BaseException:  # a timeout, or pytest-timeout's signal: the job goes, the server reaps it
                os.kill(pid, signal.SIGKILL)
                self._answer(60)
                raise
            command = ["python", str(script)] if script else ["python", "-m", "train"]
            return subprocess.CompletedProcess([*command, *argv], returncode, _text(out), _text(err))

    def _started(self) -> subprocess.Popen:
        if self.server is None or self.server.poll() is not None:
            self.server_env = self._server_environment()
            self.server = subprocess.Popen([sys.executable, "-u", __file__], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, bufsize=0, cwd=REPO, env=self.server_env)
            self.pending = b""
        return self.server

    @staticmethod
    def _server_environment() -> dict:
        return {**os.environ, "PYTHONPATH": str(REPO)}

    def _answer(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            ready, _, _ = select.select([self.server.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise subprocess.TimeoutExpired("python -m train (preloaded)", timeout)
            chunk = os.read(self.server.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"the preloaded job server ended (exit status {self.server.wait()})")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.stdin.close()  # the server ends when its stdin closes
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


PRELOADED_JOBS = PreloadedJobs()


if __name__ == "__main__":
    # answers on a private copy of stdout; whatever an import prints goes to stderr, not into the protocol
    answer_pipe = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    preload()
    child_job = serve(answer_pipe)
    if child_job is not None:
        # The job returns up to here and exits as any Python program does (its threads joined, atexit run,
        # output flushed), with the exit status sys.exit(main()) gave it.
        run_job(child_job)
