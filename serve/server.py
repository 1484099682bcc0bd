"""`python -m serve` (the serving image's `serve`): multi-model-server with this project's handler service.

sagemaker-inference's own `start_model_server` writes /etc/sagemaker-mms.properties (root
only), finds "the" model server by scanning every process on the machine, and leaves MMS's
Python workers behind when stopped. This launcher keeps what it does right (the SAGEMAKER_*
settings read by sagemaker-inference's Environment, its default MMS properties, MMS started with
--models model=<dir>) and instead:
- writes its config and every temp file in a private temp dir (no root needed), and logs to stdout only
  (serve/log4j2.xml);
- keeps multi-model-server's management API off the serving port, and runs the workers isolated from
  any code in the artifact (serve/mms_plugins/build.py: the worker launcher);
- starts MMS in its own process group and, on SIGTERM/SIGINT, stops the whole group, so
  no worker outlives it;
- loads and runs the model artifact before starting (a bad one fails in seconds, one line), checks
  that the port is free, waits until a worker has loaded and warmed the model within
  SAGEMAKER_STARTUP_TIMEOUT, exiting non-zero if none does (a model that cannot load would
  otherwise leave /ping green while every /invocations hangs), and says "ready" only after an
  invocation through the real port answered.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

from contract.cpus import cpu_model, instruction_set_level
from serve import loopback
from serve.config import (
    MAX_PORT,
    READY_DIR_ENV,
    UNLOAD_PREFIX,
    ConfigError,
    ServingConfig,
    execution_parameters,
    read_config,
)
from serve.mms_plugins.build import PluginBuildError, plugin_jar, worker_python
from serve.model import ModelLoadError, check_artifact

log = logging.getLogger("serve")

# The start of the line that says the server answers requests (what a launcher or a test waits for).
READY_MARK = "ready: POST"
# After a failed load MMS takes the model out and puts it back within milliseconds; a 404 this long is final.
UNLOAD_SETTLE_SECONDS = 1.0
# A failed load's mark whose model has been seen with workers this long: SageMaker loaded it again meanwhile.
UNLOAD_STALE_SECONDS = 30.0

USAGE = """Serve a model artifact of `python -m train` over HTTP, as a SageMaker endpoint container does:
POST /invocations (images in; JSON or .npy class probabilities out), GET /ping. Exits 1 with one line
when the model cannot load, the port is taken or no worker gets ready; SIGTERM stops it cleanly."""
ENVIRONMENT_HELP = """environment (SageMaker sets the SAGEMAKER_* ones on an endpoint):
  SAGEMAKER_BIND_TO_PORT                port (default 8080; multi-model-server needs < 32767)
  SAGEMAKER_BASE_DIR                    the model is read from its model/ folder (default /opt/ml)
  SAGEMAKER_MODEL_SERVER_WORKERS        worker processes (default: half the CPUs)
  ORT_INTRA_OP_THREADS                  ONNX Runtime threads per worker (default: CPUs / workers)
  SAGEMAKER_STARTUP_TIMEOUT             seconds for a worker to load the model (default 600)
  SAGEMAKER_MODEL_SERVER_TIMEOUT        seconds per request (default 60)
  SAGEMAKER_MAX_PAYLOAD_IN_MB           request size limit (default 6, a real-time endpoint's; at most 100)
  SAGEMAKER_BATCH                       true in a batch transform job: GET /execution-parameters is required
  SAGEMAKER_BATCH_STRATEGY              SINGLE_RECORD or MULTI_RECORD, echoed by /execution-parameters
  SAGEMAKER_MAX_CONCURRENT_TRANSFORMS   requests a transform job sends at once: caps the default workers
  SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT  answer type when a request names none (default application/json)
  MAX_IMAGE_PIXELS, MAX_BATCH_INSTANCES pixels per image (40M), images per request (64)
  MAX_REQUEST_PIXELS                    decoded pixels of all a request's images together (100M)
  MAX_IMAGE_ASPECT_RATIO                longest side / shortest side of an image (20)
  SAGEMAKER_MULTI_MODEL                 true: a multi-model endpoint (POST/GET/DELETE /models of folders under
                                        $SAGEMAKER_BASE_DIR/models, POST /models/NAME/invoke; one worker per
                                        model; 507 when memory is short)
  SERVE_MEMORY_HEADROOM_MB              kept free beside each model a multi-model endpoint loads (256)
  SERVE_PRECISION                       auto (default: model.int8.onnx when training wrote one, else
                                        model.onnx), fp32 (model.onnx), int8 (fail without the int8 model)

example:
  python -m serve --model-dir runs/demo/opt_ml/model --port 8080
  curl -H "Content-Type: image/jpeg" --data-binary @dog.jpg http://127.0.0.1:8080/invocations
"""

HANDLER_SERVICE = "serve.handler_service"
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # SageMaker's model names are hashes
MODEL_NAME = "model"
STOP_GRACE_SECONDS = 10
# The Java frontend only moves requests to the workers. Left to the JVM's defaults (a heap of 1/64 of
# the RAM to start, 1/4 at most, G1) its RSS kept growing under load: +125 MB in 60 s at concurrency 8.
# A 128 MB start and 1 GB ceiling (room for MMS's 100 queued requests of 6 MB) bound it. The serial
# collector and C1 alone (no C2): on 2 cores the C2 compiler was still taking 1.2-1.8 ms of CPU per
# request after 1,500 requests, and G1's threads more; measured 2026-12-04 at concurrency 8 for 60 s:
# G1 + C2 118 -> 209 MB and 4,160 requests, serial + C1 114 -> 131 MB and 5,040 requests.
DEFAULT_VMARGS = "-XX:-UseContainerSupport -Xms128m -Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1"


def mms_properties(config: ServingConfig, host: str, port: int, handler_service: str = HANDLER_SERVICE,
                   plugins: Path | None = None) -> str:
    """MMS config: sagemaker-inference's defaults plus the SAGEMAKER_* settings, addresses on `host`, and
    the endpoint plugins' folder with what GET /execution-parameters answers (serve/mms_plugins).

    MMS answers its management API (register a model from any folder or URL, with its own handler;
    scale; delete) on the inference port when both share an address. Only a multi-model endpoint's
    contract has /models on the serving port; elsewhere the management API listens on a loopback port
    the kernel picks (port 0; the launcher never calls it), which no caller of the serving port reaches.
    Not a Unix socket: multi-model-server needs Netty's native transport for those, and Netty cannot load
    it where /tmp is mounted noexec (serverless runs the image read-only with a tmpfs /tmp)."""
    defaults = resources.files("sagemaker_inference").joinpath("etc/default-mms.properties").read_text()
    settings = {
        "inference_address": f"http://{host}:{port}",
        "management_address": f"http://{host}:{port}" if config.multi_model else "http://127.0.0.1:0",
        "default_service_handler": handler_service,
        "default_workers_per_model": config.workers,
        "default_response_timeout": config.response_timeout_s,
        # Four times our cap, so oversized bodies still reach the handler and get a JSON 413;
        # beyond this MMS itself answers a bare 413 (SageMaker caps real-time requests at 6 MB first).
        "max_request_size": 4 * config.max_payload_bytes,
        "max_response_size": 4 * config.max_payload_bytes,
    }
    if config.multi_model:
        settings["load_models"] = ""  # the defaults' ALL would load every model under model_store=/
        settings["serve_model_root"] = config.model_root  # serve/mms_plugins/MultiModelApi.java loads only there
    if plugins is not None:
        settings["sagemaker_execution_parameters"] = json.dumps(execution_parameters(config))
    return defaults + "".join(f"{key}={value}\n" for key, value in settings.items())


class ModelServer:
    """One multi-model-server process group, started and stopped as a unit."""

    def __init__(self, model_dir: Path, config: ServingConfig, host: str, port: int,
                 handler_service: str = HANDLER_SERVICE, output=None, plugins: Path | None = None,
                 model_code: bool = False, worker: Path | None = None):
        self.model_dir, self.config, self.host, self.port = model_dir.resolve(), config, host, port
        self.handler_service = handler_service
        self.plugins = plugins  # the endpoint plugins' jar (/execution-parameters, /ping, /models), if any
        self.output = output  # where MMS's log goes (default: this process's stdout/stderr)
        # Workers import only what this environment installs, never code from the artifact; True (the
        # benchmark's Udacity baseline only) runs them as sagemaker-inference does, model/code importable.
        self.model_code = model_code
        self.worker = worker  # the isolated worker launcher (isolated_worker_python), found at start if None
        self.workdir = Path(tempfile.mkdtemp(prefix="serve-mms-"))
        self.process: subprocess.Popen | None = None
        self._absent_since: dict[str, float] = {}  # model name -> when its failed load was first found gone
        self._loading_since: dict[str, float] = {}  # model name -> when its marked model was first seen loading

    def start(self) -> None:
        properties = self.workdir / "config.properties"
        properties.write_text(mms_properties(self.config, self.host, self.port, self.handler_service, self.plugins))
        env = dict(os.environ)
        env.update({
            # everything the frontend and the workers write goes to the private dir, removed at stop
            "TMPDIR": str(self.workdir), "TEMP": str(self.workdir),
            "ORT_INTRA_OP_THREADS": str(self.config.threads_per_worker),
            READY_DIR_ENV: str(self.workdir),
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(self.config.workers),
            "SERVE_PRECISION": self.config.precision,
        })
        if self.model_code:
            package_root = str(Path(__file__).resolve().parents[1])
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, str(self.model_dir / "code"),
                                                              env.get("PYTHONPATH")]))
            worker = Path(sys.executable)
        else:
            worker = self.worker or isolated_worker_python()
        log.info("starting multi-model-server on %s:%d: %d worker(s) x %d thread(s)%s", self.host, self.port,
                 self.config.workers, self.config.threads_per_worker,
                 " per model, models loaded by POST /models (multi-model endpoint)" if self.config.multi_model
                 else f", model {self.model_dir}")
        command = frontend_command(properties, self.workdir, worker, self.plugins,
                                   None if self.config.multi_model else f"{MODEL_NAME}={self.model_dir}")
        self.process = subprocess.Popen(command, cwd=self.workdir, env=env, start_new_session=True,
                                        stdout=self.output, stderr=subprocess.STDOUT if self.output else None)

    def wait_ready(self, deadline: float, stop: threading.Event, clock=time.monotonic) -> bool:
        """True once a worker has loaded and warmed the model (on a multi-model endpoint: once MMS answers
        /ping); False if MMS died, the deadline (on `clock`, injectable for tests) passed, or a stop."""
        while clock() < deadline and not stop.is_set():
            if self.process.poll() is not None:
                return False
            loaded = _pings(self.host, self.port) if self.config.multi_model else \
                any(self.workdir.glob("worker-*.ready"))
            if loaded:
                return True
            stop.wait(0.1)
        return False

    def unregister_failed_loads(self, clock=time.monotonic) -> list[str]:
        """Unregister the models whose load ran out of memory (their workers' marks), so that SageMaker can
        load them again once it has unloaded others; the names done. `clock`: injectable for tests.

        multi-model-server answers the 507, then tries to unregister the model itself: it removes it, its
        cleanup is interrupted, and it puts the model back with no worker (later POSTs of it get 409). A
        DELETE that lands between the removal and the putting back answers 404, so a 404 counts only once
        it has held for UNLOAD_SETTLE_SECONDS; a model that has workers again is a new load of it: left be."""
        done = []
        for mark in self.workdir.glob(f"{UNLOAD_PREFIX}*"):
            name = mark.name[len(UNLOAD_PREFIX):]
            if not MODEL_NAME_PATTERN.fullmatch(name):  # nothing a URL path would need to escape
                log.warning("model %r could not load and cannot be unregistered by name", name)
                mark.unlink(missing_ok=True)
                continue
            try:
                status, body = self._management("GET", f"/models/{name}")
                loading = status == 200 and bool(_workers(body))
                if status == 200 and not loading:  # registered with no worker: what MMS leaves behind
                    status, _ = self._management("DELETE", f"/models/{name}")
            except (OSError, ValueError) as error:  # ValueError: an answer that is not MMS's JSON
                log.warning("could not unregister model %s after its failed load: %s", name, error)
                continue
            now = clock()
            if loading:  # its failed worker is not cleared yet, or a new POST of it is loading: not ours
                self._absent_since.pop(name, None)
                if now - self._loading_since.setdefault(name, now) >= UNLOAD_STALE_SECONDS:
                    self._loading_since.pop(name)
                    mark.unlink(missing_ok=True)
                continue
            self._loading_since.pop(name, None)
            if status == 404:  # maybe only while MMS's own attempt holds it out: wait until that is over
                if now - self._absent_since.setdefault(name, now) < UNLOAD_SETTLE_SECONDS:
                    continue
            elif status != 200:  # MMS still busy with the failed load: next round
                continue
            self._absent_since.pop(name, None)
            mark.unlink(missing_ok=True)
            done.append(name)
        return done

    def _management(self, method: str, path: str) -> tuple[int, bytes]:
        status, _, body = loopback.request(self.host, self.port, method, path)
        return status, body

    def stop(self) -> None:
        """SIGTERM the whole group (Java frontend and Python workers), SIGKILL whatever is left after a grace."""
        if self.process is not None and self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGKILL)  # workers can outlive the frontend
            self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def frontend_command(properties: Path, workdir: Path, worker_python: Path, plugins: Path | None,
                     model: str | None) -> list[str]:
    """The Java command `python -m mms.model_server --foreground` runs, but with our worker launcher as
    --python (that script always passes its own interpreter) and no pid file. JVM options come from
    SAGEMAKER_MODEL_SERVER_VMARGS here (that script read them from the config's `vmargs`)."""
    import mms

    home = Path(mms.__file__).resolve().parents[1]
    java = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java") if os.environ.get("JAVA_HOME") else "java"
    log_config = resources.files("serve").joinpath("log4j2.xml")  # stdout only, one frontend line a request
    # the plugins' jar first: it carries a fixed copy of one of multi-model-server's own classes
    classpath = ":".join([*([str(plugins)] if plugins else []), ".", str(home / "mms" / "frontend" / "*")])
    vmargs = os.environ.get("SAGEMAKER_MODEL_SERVER_VMARGS", DEFAULT_VMARGS).split()
    command = [java, f"-Dmodel_server_home={home}", f"-Dlog4j.configurationFile=file://{log_config}",
               f"-Djava.io.tmpdir={workdir}", *vmargs, "-cp", classpath, "com.amazonaws.ml.mms.ModelServer",
               "--python", str(worker_python), "-f", str(properties), "-s", "/"]
    return [*command, "-m", model] if model else command


def isolated_worker_python() -> Path:
    """serve/mms_plugins' worker launcher (Python -I), once it is known to import this very handler."""
    try:
        launcher = worker_python()
    except PluginBuildError as error:
        raise ConfigError(f"cannot start isolated workers: {error}") from None
    expected = Path(__file__).with_name("handler_service.py").resolve()
    found = subprocess.run(
        [str(launcher), "-c", "import importlib.util; spec = importlib.util.find_spec('serve.handler_service'); "
                              "print(spec.origin if spec else '')"],
        capture_output=True, text=True, cwd="/").stdout.strip()
    if not found or Path(found).resolve() != expected:
        raise ConfigError(f"workers run Python isolated from PYTHONPATH and would import "
                          f"{found or 'no serve package'}, not {expected}: install this project into the "
                          f"environment (pip install -e . or pip install .)")
    return launcher


def check_port_free(host: str, port: int) -> None:
    """multi-model-server would start its workers, then fail to bind and exit: say so before starting it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free to MMS too
        try:
            sock.bind((host, port))
        except OSError as error:
            raise ConfigError(f"port {port} on {host} is not available ({error.strerror}): is another server "
                              "listening? Stop it, or pick a port with --port or SAGEMAKER_BIND_TO_PORT") from None


def _workers(description: bytes) -> list:
    """The workers in MMS's answer to GET /models/NAME (an object in 1.1.x, a one-item list elsewhere)."""
    described = json.loads(description)
    return (described[0] if isinstance(described, list) else described).get("workers") or []


def _pings(host: str, port: int) -> bool:
    try:
        return loopback.request(host, port, "GET", "/ping", timeout=2)[0] == 200
    except OSError:
        return False


def check_invocation(host: str, port: int, timeout: float, multi_model: bool = False) -> None:
    """One real request through the port clients use: /ping, then an image to /invocations (a multi-model
    endpoint has no model to ask yet: /ping only)."""
    from PIL import Image

    address = loopback.loopback_address(host)
    image = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 90, 60)).save(image, "JPEG")
    requests = [("GET", "/ping", None, {}), ("POST", "/invocations", image.getvalue(),
                                             {"Content-Type": "image/jpeg", "Accept": "application/json"})]
    for method, path, body, headers in requests[:1] if multi_model else requests:
        try:
            status, _, payload = loopback.request(host, port, method, path, body, headers, timeout=timeout)
        except OSError as error:
            raise ModelLoadError(f"{method} {path} on {address}:{port} failed: {error}") from None
        if status != 200:
            raise ModelLoadError(f"{method} {path} on {address}:{port} answered {status}: {payload[:300]!r}")
        if path == "/invocations":
            json.loads(payload)  # a JSON answer, as clients expect by default
        log.info("checked: %s %s on port %d answered 200", method, path, port)


def find_plugins(config: ServingConfig) -> Path | None:
    """The endpoint plugins' jar. A transform job (SAGEMAKER_BATCH) cannot do without /execution-parameters,
    nor a multi-model endpoint without its guarded /models; a real-time endpoint can: a warning there."""
    try:
        jar = plugin_jar()
    except PluginBuildError as error:
        if config.batch:
            raise ConfigError(f"SAGEMAKER_BATCH is set but GET /execution-parameters cannot be served: {error}") \
                from None
        if config.multi_model:
            raise ConfigError(f"SAGEMAKER_MULTI_MODEL is set but /models cannot be restricted to {config.model_root}: "
                              f"{error}") from None
        log.warning("GET /execution-parameters is not served, nor a /ping that fails without a loaded worker "
                    "(multi-model-server's own /ping answers 200 regardless): %s", error)
        return None
    if config.batch:
        log.info("batch transform: GET /execution-parameters answers %s", json.dumps(execution_parameters(config)))
    return jar


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m serve", description=USAGE, epilog=ENVIRONMENT_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path,
                        help="model artifact of `python -m train` (default $SAGEMAKER_BASE_DIR/model: /opt/ml/model)")
    parser.add_argument("--port", type=int, help=f"port to listen on, 1-{MAX_PORT} (default $SAGEMAKER_BIND_TO_PORT, "
                                                  "else 8080)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; the image's `serve` binds "
                             "0.0.0.0, as SageMaker needs)")
    args = parser.parse_args(argv)
    try:
        config = read_config()
        if args.port is not None and not 1 <= args.port <= MAX_PORT:
            raise ConfigError(f"--port must be between 1 and {MAX_PORT} (multi-model-server's limit), got {args.port}")
        model_dir = args.model_dir or config.model_dir
        if config.multi_model:
            log.info("multi-model endpoint (SAGEMAKER_MULTI_MODEL): no model at start; POST /models loads one")
        else:
            served = check_artifact(model_dir, config.precision)
            log.info("serving %s (%s) from %s on %s (%s)", served.model_file, served.precision, model_dir,
                     cpu_model(), instruction_set_level())
            if served.int8_fallback:
                log.warning("%s", served.int8_fallback)
        check_port_free(args.host, args.port or config.port)
        plugins = find_plugins(config)
        worker = isolated_worker_python()
    except (ConfigError, ModelLoadError) as error:
        log.error("cannot serve: %s", error)
        return 1
    stop = threading.Event()
    received: list[str] = []

    def request_stop(signum, _frame):
        received.append(signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    server = ModelServer(model_dir, config, args.host, args.port or config.port, plugins=plugins, worker=worker)
    try:
        server.start()
        if not server.wait_ready(time.monotonic() + config.startup_timeout_s, stop):
            if stop.is_set():
                return 0
            log.error("no model-server worker became ready within %d s (SAGEMAKER_STARTUP_TIMEOUT); "
                      "see the worker log above", config.startup_timeout_s)
            return 1
        try:
            check_invocation(args.host, args.port or config.port, timeout=config.response_timeout_s,
                             multi_model=config.multi_model)
        except ModelLoadError as error:
            log.error("cannot serve: the started server does not answer: %s", error)
            return 1
        log.info(READY_MARK + " http://%s:%d/%s", args.host, args.port or config.port,
                 "models (multi-model endpoint)" if config.multi_model else "invocations")
        while not stop.is_set() and server.process.poll() is None:
            stop.wait(0.05 if config.multi_model else 0.5)
            for name in server.unregister_failed_loads():
                log.info("model %s unregistered: its load answered 507 (not enough memory); POST /models may load "
                         "it again once memory is freed", name)
        if not stop.is_set():
            log.error("multi-model-server exited with code %s", server.process.returncode)
            return 1
        log.info("got %s: stopping the model server", received[0])
        return 0
    finally:
        server.stop()
