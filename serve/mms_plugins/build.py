"""What multi-model-server needs beside its own files: the endpoint plugins' jar, and the worker launcher.

The plugins (GET /execution-parameters, an honest GET /ping, and a multi-model /models API that loads
only artifacts under the model root and never their code), and one class of multi-model-server's own
with a fix (HttpRequestHandlerChain.java: plugins may read request bodies), are compiled into the jar
that serve/server.py puts first on the frontend's classpath. The serving image builds it once (its
build stage has a JDK, the image only a JRE); a plain venv gets it from `make setup`, or on the first
`python -m serve` when a `javac` is on PATH.

The worker launcher is the `--python` MMS starts each worker with. MMS puts the model's folder on
the worker's PYTHONPATH, ahead of the standard library, so a `json.py` in an artifact would be
imported by every worker; the launcher runs Python isolated (-I: no PYTHONPATH, no user site-packages,
no script folder), so only this environment's installed packages (the handler among them) import.
It lives beside the jar rather than in a temp dir: containers mount /tmp noexec.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SOURCES = sorted(Path(__file__).parent.glob("*.java"))
# ServiceLoader finds endpoint plugins through this file (MMS's plugin SDK)
SERVICE_FILE = "META-INF/services/software.amazon.ai.mms.servingsdk.ModelServerEndpoint"
SERVICES = ["dogclassifier.mms.ExecutionParameters", "dogclassifier.mms.HonestPing", "dogclassifier.mms.MultiModelApi"]
JAR_NAME = "sagemaker-endpoints.jar"
WORKER_PYTHON_NAME = "worker-python"


class PluginBuildError(RuntimeError):
    pass


def default_jar() -> Path:
    """Beside the environment that runs the server: /opt/venv in the image, .venv here."""
    return Path(sys.prefix) / "share" / "serve-mms-plugins" / JAR_NAME


def worker_python_text(python: str = sys.executable) -> str:
    return ("#!/bin/sh\n# multi-model-server's workers: this environment's Python, isolated from PYTHONPATH "
            "(serve/mms_plugins/build.py)\n"
            f"exec {shlex.quote(python)} -I -u \"$@\"\n")


def write_worker_python(path: Path) -> Path:
    partial = path.with_suffix(".partial")
    partial.write_text(worker_python_text())
    partial.chmod(0o755)
    partial.replace(path)
    return path


def worker_python() -> Path:
    """The worker launcher, written first where it is missing or names another Python (a moved venv)."""
    path = default_jar().with_name(WORKER_PYTHON_NAME)
    try:
        if not (path.is_file() and path.read_text() == worker_python_text()):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_worker_python(path)
    except OSError as error:
        if os.access(path, os.X_OK):  # a read-only image: the one its build wrote (the launcher checks it)
            return path
        raise PluginBuildError(f"cannot write {path}: {error}") from None
    return path


def model_server_jar() -> Path:
    import mms

    return Path(mms.__file__).parent / "frontend" / "model-server.jar"


def is_current(jar: Path) -> bool:
    return jar.is_file() and all(jar.stat().st_mtime >= source.stat().st_mtime for source in SOURCES)


def build(jar: Path | None = None) -> Path:
    """javac against MMS's own jar (it carries the plugin SDK), then the classes and the service file zipped."""
    jar = jar or default_jar()
    javac = shutil.which("javac")
    if javac is None:
        raise PluginBuildError("javac not found: the /execution-parameters plugin needs a JDK 17 to build "
                               "(Debian/Ubuntu: apt-get install openjdk-17-jdk-headless)")
    with tempfile.TemporaryDirectory(prefix="mms-plugins-") as classes:
        result = subprocess.run([javac, "--release", "17", "-nowarn", "-cp", str(model_server_jar()), "-d", classes,
                                 *map(str, SOURCES)], capture_output=True, text=True)
        if result.returncode != 0:
            raise PluginBuildError(f"javac failed: {result.stderr.strip()[-2000:]}")
        jar.parent.mkdir(parents=True, exist_ok=True)
        partial = jar.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(classes).rglob("*.class")):
                archive.write(path, path.relative_to(classes).as_posix())
            archive.writestr(SERVICE_FILE, "".join(f"{name}\n" for name in SERVICES))
        partial.replace(jar)
    return jar


def plugin_jar() -> Path:
    """The jar, built or rebuilt first where a JDK can (a prebuilt one without a JDK, as in the image, is used)."""
    jar = default_jar()
    if is_current(jar) or (jar.is_file() and shutil.which("javac") is None):
        return jar
    try:
        return build(jar)
    except OSError as error:  # e.g. a read-only environment with a stale jar
        raise PluginBuildError(f"cannot write {jar}: {error}") from None


def main() -> int:
    try:
        print(f"wrote {build()}")
        print(f"wrote {worker_python()}")
    except PluginBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
