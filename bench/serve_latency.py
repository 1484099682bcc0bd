"""Serving latency, throughput and cold start: this server (int8 and float32) against the original
Udacity project's inference.py, same run.

Both run on the same multi-model-server, launched the same way (serve.server.ModelServer),
with the same worker count, on the same model (ResNet-50 + head, 133 classes, 224 px crops;
random weights: speed does not depend on them):
- ours: serve.handler_service, ONNX Runtime, Pillow + numpy preprocessing with JPEG draft decode;
- baseline: sagemaker-inference's DefaultHandlerService with bench/udacity_inference.py as the
  user module (PyTorch eager, PIL full decode, torchvision transforms).

Measured over HTTP on loopback with one 500x375 photo-like JPEG: p50/p99 latency at
concurrency 1, requests/s at concurrency 8, and cold start (process start to the first
successful invocation). Then int8 against float32: the model alone (ONNX Runtime, batch 1),
served end to end, and the accuracy and top-1 agreement the training job measured on a model
trained on the sample data. Prints numbers; asserts nothing (the int8 target, p50 <= 0.55x
float32 on a CPU with VNNI, is reported met or not).

    python -m bench.serve_latency [--quick]
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.cli import benchmark_parser
from bench.report import print_table
from contract import artifact
from serve import loopback
from serve.config import read_config
from serve.server import HANDLER_SERVICE, ModelServer
from support.artifacts import resnet50_artifact
from support.live_server import free_port
from support.photos import photo_jpeg

BASELINE_HANDLER = "sagemaker_inference.default_handler_service"


@dataclasses.dataclass
class Result:
    name: str
    p50_ms: float
    p99_ms: float
    requests_per_s: float
    cold_start_s: float


def post(port: int, body: bytes, timeout: float = 120) -> int:
    return loopback.request("127.0.0.1", port, "POST", "/invocations", body, {"Content-Type": "image/jpeg"},
                            timeout=timeout)[0]


def make_models(root: Path) -> tuple[Path, Path]:
    """(our artifact with its int8 model, the same artifact plus code/inference.py for the baseline)."""
    ours = resnet50_artifact(root / "ours", int8=True)
    baseline = root / "baseline"
    shutil.copytree(ours, baseline)
    (baseline / "code").mkdir()
    shutil.copy(Path(__file__).with_name("udacity_inference.py"), baseline / "code" / "inference.py")
    return ours, baseline


def measure(name: str, model_dir: Path, handler: str, port: int, body: bytes, requests: int,
            concurrency: int, precision: str = "auto") -> Result:
    config = dataclasses.replace(read_config(os.environ), precision=precision)
    log = open(model_dir / "server.log", "w")
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
        for _ in range(3):
            post(port, body)
        latencies = []
        for _ in range(requests):
            sent = time.perf_counter()
            assert post(port, body) == 200
            latencies.append((time.perf_counter() - sent) * 1000)
        total = requests
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            sent = time.perf_counter()
            statuses = list(pool.map(lambda _: post(port, body), range(total)))
            elapsed = time.perf_counter() - sent
        assert statuses.count(200) == total, statuses
    finally:
        server.stop()
        log.close()
    return Result(name, float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)), total / elapsed,
                  cold_start)


def model_only_p50_ms(model_file: Path, threads: int, runs: int) -> float:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    for _ in range(3):
        session.run(None, {"input": batch})
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, {"input": batch})
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50))


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
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("bench.serve_latency", __doc__, "fewer requests (CI)")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--port", type=int, help="loopback port for the servers (default: a free one)")
    args = parser.parse_args(argv)
    args.port = args.port or free_port()
    requests = 2 if args.smoke else 20 if args.quick else args.requests
    concurrency = 8
    body = photo_jpeg(500, 375)
    config = read_config(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        ours_dir, baseline_dir = make_models(Path(tmp))
        int8 = measure("ours, int8", ours_dir, HANDLER_SERVICE, args.port, body, requests, concurrency)
        fp32 = measure("ours, float32", ours_dir, HANDLER_SERVICE, args.port, body, requests, concurrency, "fp32")
        baseline = measure("baseline (Udacity inference.py)", baseline_dir, BASELINE_HANDLER, args.port, body,
                           requests, concurrency)
        model_runs = 2 if args.smoke else 30 if args.quick else 200
        model_fp32 = model_only_p50_ms(ours_dir / artifact.ONNX_FILE, config.threads_per_worker, model_runs)
        model_int8 = model_only_p50_ms(ours_dir / artifact.INT8_FILE, config.threads_per_worker, model_runs)
        sizes = [(ours_dir / name).stat().st_size / 2**20 for name in (artifact.INT8_FILE, artifact.ONNX_FILE)]
        checked = trained_int8_check(Path(tmp), epochs=1 if args.smoke else 4)
    machine = (f"{config.workers} worker(s) x {config.threads_per_worker} thread(s), {platform.machine()} x "
               f"{os.cpu_count()} CPUs, VNNI {'yes' if has_vnni() else 'no'}")
    rows = [("p50 latency, concurrency 1 (ms)", int8.p50_ms, baseline.p50_ms),
            ("p99 latency, concurrency 1 (ms)", int8.p99_ms, baseline.p99_ms),
            (f"throughput, concurrency {concurrency} (req/s)", int8.requests_per_s, baseline.requests_per_s),
            ("cold start to first answer (s)", int8.cold_start_s, baseline.cold_start_s)]
    print_table(f"serving: ResNet-50 + head, 133 classes, one 500x375 JPEG ({len(body):,} bytes), {requests} "
                f"requests per measure, int8 model, {machine}", rows,
                "the original Udacity project's inference.py (PyTorch eager, PIL full decode, torchvision "
                "transforms) under sagemaker-inference's DefaultHandlerService on the same multi-model-server")
    compared = checked["compared_on"]
    rows = [("model only, batch 1, p50 (ms)", model_int8, model_fp32),
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


if __name__ == "__main__":
    raise SystemExit(main())
