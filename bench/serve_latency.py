"""Serving latency, throughput and cold start: this server (int8 and float32) against the original
Udacity project's inference.py, same run.

Both run on the same multi-model-server, launched the same way (serve.server.ModelServer),
with the same worker count, on the same model (ResNet-50 + head, 133 classes, 224 px crops;
random weights: speed does not depend on them):
- ours: serve.handler_service, ONNX Runtime, Pillow + numpy preprocessing with JPEG draft decode;
- baseline: sagemaker-inference's DefaultHandlerService with bench/udacity_inference.py as the
  user module (PyTorch eager, PIL full decode, torchvision transforms).

Measured over HTTP on loopback with one 500x375 photo-like JPEG, once the frontend's JIT has
settled (a few hundred requests first): p50/p99 latency at concurrency 1 on one kept-alive
connection (as a proxy in front of a container holds them) and on a new connection per request,
requests/s at concurrency 8, and cold start (process start to the first successful invocation).
Then where a request's time goes, from the timestamps the worker logs with every request (parse,
decode, resize/normalise, model, encode; the rest of the client's figure is the frontend and the
IPC), against the model alone in the same ONNX Runtime session settings, and int8 against float32:
the model alone, served end to end, and the accuracy and top-1 agreement the training job measured
on a model trained on the sample data. Prints numbers and which targets they meet; asserts nothing.

    python -m bench.serve_latency [--quick] [--endpoint-shape]
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench import shape
from bench.cli import benchmark_parser
from bench.report import print_table
from contract import artifact
from contract.cpus import instruction_set_level
from serve import codec, loopback
from serve.config import read_config
from serve.handler_service import StageClock
from serve.model import OnnxClassifier
from serve.server import HANDLER_SERVICE, ModelServer
from support.artifacts import resnet50_artifact
from support.live_server import free_port
from support.photos import photo_jpeg

BASELINE_HANDLER = "sagemaker_inference.default_handler_service"


@dataclasses.dataclass
class Result:
    name: str
    p50_ms: float  # concurrency 1, one kept-alive connection
    p99_ms: float
    p50_new_connection_ms: float  # concurrency 1, a new connection per request
    requests_per_s: float  # concurrency 8, a kept-alive connection per client thread
    cold_start_s: float
    stages_ms: dict[str, float]  # median per stage from the worker's log lines, the c1 keep-alive requests
    frontend_ms: float  # median of (client latency - the worker's own time), same requests
    alone_ms: list[float]  # the model alone, timed between blocks of the concurrency-1 requests (if asked)
    alone_requests_per_s: float  # the model alone's throughput just before and just after concurrency 8's


def post(port: int, body: bytes, timeout: float = 120) -> int:
    return loopback.request("127.0.0.1", port, "POST", "/invocations", body, {"Content-Type": "image/jpeg"},
                            timeout=timeout)[0]


class KeptAlive:
    """One HTTP/1.1 connection per thread, reused request after request."""

    def __init__(self, port: int):
        self.port = port
        self.local = threading.local()

    def post(self, body: bytes) -> int:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        connection.request("POST", "/invocations", body, {"Content-Type": "image/jpeg"})
        response = connection.getresponse()
        response.read()
        return response.status


def make_models(root: Path) -> tuple[Path, Path]:
    """(our artifact with its int8 model, the same artifact plus code/inference.py for the baseline)."""
    ours = resnet50_artifact(root / "ours", int8=True)
    baseline = root / "baseline"
    shutil.copytree(ours, baseline)
    (baseline / "code").mkdir()
    shutil.copy(Path(__file__).with_name("udacity_inference.py"), baseline / "code" / "inference.py")
    return ours, baseline


def clock_ms(call, runs: int) -> list[float]:
    """How long each of `runs` calls took, in ms."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def timed(send, body: bytes, requests: int) -> list[float]:
    """Latencies of `requests` requests sent one after another, each checked to answer 200."""
    def one() -> None:
        status = send(body)
        assert status == 200, status

    return clock_ms(one, requests)


class ModelAlone:
    """The served model without the server: the worker's own session (serve.model.OnnxClassifier, the same
    options) on the bench photo as the worker preprocesses it, one session per worker."""

    def __init__(self, model_dir: Path, precision: str, body: bytes, workers: int, threads: int):
        self.sessions = [OnnxClassifier(model_dir, threads=threads, precision=precision) for _ in range(workers)]
        image = codec.decode_image(body, codec.ImageLimits.of(read_config(os.environ)),
                                   self.sessions[0].preprocess.resize)
        self.batch = self.sessions[0].preprocess(image)[None]
        for session in self.sessions:
            for _ in range(3):
                session.predict(self.batch)

    def latencies(self, runs: int) -> list[float]:
        """ms per run, batch 1, one session with the worker's threads."""
        return clock_ms(lambda: self.sessions[0].predict(self.batch), runs)

    def requests_per_s(self, runs: int) -> float:
        """Every worker's session running at once, `runs` each."""
        def run(session: OnnxClassifier) -> None:
            for _ in range(runs):
                session.predict(self.batch)

        with concurrent.futures.ThreadPoolExecutor(len(self.sessions)) as pool:  # ONNX Runtime runs without the GIL
            sent = time.perf_counter()
            list(pool.map(run, self.sessions))
            elapsed = time.perf_counter() - sent
        return len(self.sessions) * runs / elapsed


def measure(name: str, model_dir: Path, handler: str, port: int, body: bytes, requests: int, warm_up: int,
            concurrency: int, precision: str = "auto", alone: ModelAlone | None = None) -> Result:
    """The server's figures; with `alone`, the model alone is timed between five blocks of the concurrency-1
    requests and its throughput just before and after the concurrency-8 phase, so that both see the machine
    in the same minutes (these shared machines' speed drifts by 10-20 % from one minute to the next)."""
    config = dataclasses.replace(read_config(os.environ), precision=precision)
    log_path = model_dir / f"server-{precision}.log"
    log = open(log_path, "w")
    # the baseline is the original project's code/inference.py: its workers must import artifact code
    server = ModelServer(model_dir, config, "127.0.0.1", port, handler_service=handler, output=log,
                         model_code=handler == BASELINE_HANDLER)
    started = time.perf_counter()
    server.start()
    try:
        while True:  # cold start: until the first invocation succeeds
            try:
                if post(port, body) == 200:
                    break
            except OSError:
                pass
            if server.process.poll() is not None or time.perf_counter() - started > 300:
                raise RuntimeError(f"{name}: server never answered")
            time.sleep(0.05)
        cold_start = time.perf_counter() - started
        kept = KeptAlive(port)
        timed(kept.post, body, warm_up)  # the frontend's JIT compiles its hot paths over the first requests
        latencies, alone_ms, alone_rates = [], [], []
        for block in np.array_split(np.arange(requests), min(5, requests)):
            latencies += timed(kept.post, body, len(block))
            if alone is not None:
                alone_ms += alone.latencies(2 * len(block))
        new_connection = timed(lambda data: post(port, data), body, requests)
        if alone is not None:
            alone_rates.append(alone.requests_per_s(requests))
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            sent = time.perf_counter()
            statuses = list(pool.map(lambda _: kept.post(body), range(requests)))
            elapsed = time.perf_counter() - sent
        if alone is not None:
            alone_rates.append(alone.requests_per_s(requests))
        assert statuses.count(200) == requests, statuses
    finally:
        server.stop()
        log.close()
    # the worker logs one line a request; the last 3 x `requests` are the three measures, in order
    lines = worker_lines(log_path.read_text())[-3 * requests:][:requests]
    stages, frontend = split_latency(latencies, lines)
    return Result(name, float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)),
                  float(np.percentile(new_connection, 50)), requests / elapsed, cold_start, stages, frontend, alone_ms,
                  float(np.mean(alone_rates)) if alone_rates else float("nan"))


def worker_lines(log: str) -> list[dict[str, float]]:
    """The timings of serve/handler_service.py's line per request (none for the Udacity baseline)."""
    found = []
    for line in log.splitlines():
        if " status=" in line and "latency_ms=" in line:
            found.append({key: float(value) for key, value in re.findall(r"(\w+)_ms=([\d.]+)", line)})
    return found


def split_latency(latencies: list[float], lines: list[dict[str, float]]) -> tuple[dict[str, float], float]:
    """(median ms of each worker stage, median ms outside the worker) for requests sent one at a time, so
    that the n-th request is the n-th line; empty when the worker does not log its stages."""
    if len(lines) != len(latencies) or not lines:
        return {}, float("nan")
    stages = {stage: float(np.median([line[stage] for line in lines])) for stage in StageClock.STAGES}
    outside = [total - line["latency"] for total, line in zip(latencies, lines, strict=True)]
    return stages, float(np.median(outside))


def trained_int8_check(root: Path, epochs: int) -> dict:
    """The training job's own int8 check on a model trained on the sample data (the demo's flags)."""
    from train.sample_data import make_sample_dataset

    data = make_sample_dataset(root / "sample")
    flags = ["--data-dir", str(data), "--base-dir", str(root / "ml"), "--arch", "resnet18", "--weights", "none",
             "--freeze-backbone", "false", "--image-size", "64", "--batch-size", "8", "--epochs", str(epochs),
             "--diagnostics", "false"]
    subprocess.run([sys.executable, "-m", "train", *flags], check=True, capture_output=True, text=True)
    return artifact.read_metadata(root / "ml" / "model")["int8"]


def has_vnni() -> bool:
    return "VNNI" in instruction_set_level()


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("bench.serve_latency", __doc__, "fewer requests (CI)", endpoint_shape=True)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--port", type=int, help="loopback port for the servers (default: a free one)")
    args = parser.parse_args(argv)
    cpus = shape.apply(args.endpoint_shape)  # first: the servers size their workers by this process's CPUs
    args.port = args.port or free_port()
    requests = 2 if args.smoke else 20 if args.quick else args.requests
    warm_up = 2 if args.smoke else 100 if args.quick else 300
    concurrency = 8
    body = photo_jpeg(500, 375)
    config = read_config(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        ours_dir, baseline_dir = make_models(Path(tmp))
        alone = {precision: ModelAlone(ours_dir, precision, body, config.workers, config.threads_per_worker)
                 for precision in ("int8", "fp32")}
        int8 = measure("ours, int8", ours_dir, HANDLER_SERVICE, args.port, body, requests, warm_up, concurrency,
                       alone=alone["int8"])
        fp32 = measure("ours, float32", ours_dir, HANDLER_SERVICE, args.port, body, requests, warm_up, concurrency,
                       "fp32", alone=alone["fp32"])
        baseline = measure("baseline (Udacity inference.py)", baseline_dir, BASELINE_HANDLER, args.port, body,
                           requests, min(warm_up, 50), concurrency)
        del alone  # the sessions' memory
        sizes = [(ours_dir / name).stat().st_size / 2**20 for name in (artifact.INT8_FILE, artifact.ONNX_FILE)]
        checked = trained_int8_check(Path(tmp), epochs=1 if args.smoke else 4)
    machine = f"{config.workers} worker(s) x {config.threads_per_worker} thread(s), {cpus}"
    rows = [("p50 latency, concurrency 1 (ms)", int8.p50_ms, baseline.p50_ms),
            ("p50 latency, concurrency 1, new connections (ms)", int8.p50_new_connection_ms,
             baseline.p50_new_connection_ms),
            ("p99 latency, concurrency 1 (ms)", int8.p99_ms, baseline.p99_ms),
            (f"throughput, concurrency {concurrency} (req/s)", int8.requests_per_s, baseline.requests_per_s),
            ("cold start to first answer (s)", int8.cold_start_s, baseline.cold_start_s)]
    print_table(f"serving: ResNet-50 + head, 133 classes, one 500x375 JPEG ({len(body):,} bytes), {requests} "
                f"requests per measure after {warm_up}, int8 model, {machine}", rows,
                "the original Udacity project's inference.py (PyTorch eager, PIL full decode, torchvision "
                "transforms) under sagemaker-inference's DefaultHandlerService on the same multi-model-server")
    model_p50 = {"int8": float(np.percentile(int8.alone_ms, 50)), "fp32": float(np.percentile(fp32.alone_ms, 50))}
    rows = [("p50 latency, concurrency 1 (ms)", int8.p50_ms, model_p50["int8"]),
            (f"throughput, concurrency {concurrency} (req/s)", int8.requests_per_s, int8.alone_requests_per_s)]
    print_table(f"served against the model alone: int8 ResNet-50 + head, {machine}", rows,
                "the model alone: the worker's ONNX Runtime session on the preprocessed photo, batch 1, timed "
                "between blocks of the served requests; for throughput one session per worker running at once, "
                "just before and after the served concurrency-8 phase (mean)")
    print_breakdown(int8)
    print_serving_targets(int8, model_p50["int8"], int8.alone_requests_per_s)
    compared = checked["compared_on"]
    rows = [("model only, batch 1, p50 (ms)", model_p50["int8"], model_p50["fp32"]),
            ("served, p50 latency, concurrency 1 (ms)", int8.p50_ms, fp32.p50_ms),
            ("served, p99 latency, concurrency 1 (ms)", int8.p99_ms, fp32.p99_ms),
            (f"served, throughput, concurrency {concurrency} (req/s)", int8.requests_per_s, fp32.requests_per_s),
            ("model file (MB)", sizes[0], sizes[1]),
            (f"{compared['split']} accuracy, sample-data model (%)", 100 * compared["accuracy_int8"],
             100 * compared["accuracy_fp32"]),
            (f"top-1 agreement with float32 on {compared['images']} images (%)", 100 * compared["agreement"], 100.0)]
    print_table(f"int8 (ONNX Runtime static QDQ, per-channel) against float32: ResNet-50 + head, {machine}", rows,
                "the same artifact's model.onnx (float32), served the same way (SERVE_PRECISION=fp32)")
    ratio = int8.p50_ms / fp32.p50_ms
    target = "met" if ratio <= 0.55 and compared["agreement"] >= 0.99 else "not met"
    print(f"int8 target (p50 <= 0.55x float32, agreement >= 99 %, on a VNNI CPU): {ratio:.2f}x, "
          f"{100 * compared['agreement']:.1f} %: {target}" + ("" if has_vnni() else " (no VNNI here: reported only)"))
    return 0


def print_breakdown(served: Result) -> None:
    """Where the median request's time goes: the worker's own stages and what is left of the client's
    figure (the frontend, the IPC to the worker and back, the HTTP client)."""
    if not served.stages_ms:
        print("\nwhere a served request's time goes: the worker logged no stages")
        return
    parts = {"frontend, IPC and client": served.frontend_ms, "headers and checks": served.stages_ms["parse"],
             "decode": served.stages_ms["decode"], "resize and normalise": served.stages_ms["preprocess"],
             "model": served.stages_ms["model"], "encode": served.stages_ms["encode"]}
    print(f"\nwhere a served request's time goes ({served.name}, concurrency 1, kept-alive connection, median ms; "
          "the worker's timestamps, the rest from the client's):")
    for part, ms in parts.items():
        print(f"  {part:26} {ms:6.2f}")
    print(f"  {'client p50, all of it':26} {served.p50_ms:6.2f}")


def print_serving_targets(served: Result, model_p50_ms: float, model_requests_per_s: float) -> None:
    targets = [
        (f"p50 <= model alone + 3 ms: {served.p50_ms:.1f} ms against {model_p50_ms:.1f} + 3 ms",
         served.p50_ms <= model_p50_ms + 3),
        (f"p99 <= 1.5x p50: {served.p99_ms / served.p50_ms:.2f}x", served.p99_ms <= 1.5 * served.p50_ms),
        (f"throughput at concurrency 8 >= 0.9x the model alone's: {served.requests_per_s / model_requests_per_s:.2f}x",
         served.requests_per_s >= 0.9 * model_requests_per_s)]
    for what, met in targets:
        print(f"serving target ({what}): {'met' if met else 'not met'}")


if __name__ == "__main__":
    raise SystemExit(main())
