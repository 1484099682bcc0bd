"""Serving latency, throughput and cold start: this server against the original Udacity project's
inference.py, same run.

Both run on the same multi-model-server, launched the same way (serve.server.ModelServer),
with the same worker count, on the same model (ResNet-50 + head, 133 classes, 224 px crops;
random weights: speed does not depend on them):
- ours: serve.handler_service, ONNX Runtime, Pillow + numpy preprocessing with JPEG draft decode;
- baseline: sagemaker-inference's DefaultHandlerService with bench/udacity_inference.py as the
  user module (PyTorch eager, PIL full decode, torchvision transforms).

Measured over HTTP on loopback with one 500x375 photo-like JPEG: p50/p99 latency at
concurrency 1, requests/s at concurrency = cores, and cold start (process start to the first
successful invocation). Prints numbers; asserts nothing.

    python -m bench.serve_latency [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import http.client
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.photos import photo_jpeg
from bench.report import print_table
from serve.config import cpu_count, read_config
from serve.server import HANDLER_SERVICE, ModelServer

BASELINE_HANDLER = "sagemaker_inference.default_handler_service"


@dataclasses.dataclass
class Result:
    name: str
    p50_ms: float
    p99_ms: float
    requests_per_s: float
    cold_start_s: float


def post(port: int, body: bytes, timeout: float = 120) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": "image/jpeg"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def resnet50_artifact(directory: Path) -> Path:
    """A dogImages-shaped model artifact (ResNet-50 + head, 133 classes, 224 px), random weights, seeded."""
    import torch

    from train.export import model_metadata, write_artifact
    from train.network import Preprocess, build_classifier

    torch.manual_seed(0)
    classifier = build_classifier("resnet50", 133, 256, None, freeze_backbone=True).eval()
    write_artifact(directory, classifier, model_metadata(
        classes=[f"Breed {i}" for i in range(133)], class_folders=[f"{i + 1:03d}.Breed_{i}" for i in range(133)],
        preprocess=Preprocess.for_image_size(224), arch="resnet50", hyperparameters={"hidden_units": 256},
        metrics={}))
    return directory


def make_models(root: Path) -> tuple[Path, Path]:
    """(our artifact, the same artifact plus code/inference.py for the baseline)."""
    ours = resnet50_artifact(root / "ours")
    baseline = root / "baseline"
    shutil.copytree(ours, baseline)
    (baseline / "code").mkdir()
    shutil.copy(Path(__file__).with_name("udacity_inference.py"), baseline / "code" / "inference.py")
    return ours, baseline


def measure(name: str, model_dir: Path, handler: str, port: int, body: bytes, requests: int,
            concurrency: int) -> Result:
    config = read_config(os.environ)
    log = open(model_dir / "server.log", "w")
    server = ModelServer(model_dir, config, "127.0.0.1", port, handler_service=handler, output=log)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests (CI)")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--port", type=int, default=28123)
    args = parser.parse_args(argv)
    requests = 20 if args.quick else args.requests
    concurrency = cpu_count()
    body = photo_jpeg(500, 375)
    with tempfile.TemporaryDirectory() as tmp:
        ours_dir, baseline_dir = make_models(Path(tmp))
        ours = measure("ours (ONNX Runtime)", ours_dir, HANDLER_SERVICE, args.port, body, requests, concurrency)
        baseline = measure("baseline (Udacity inference.py)", baseline_dir, BASELINE_HANDLER, args.port, body, requests,
                           concurrency)
    config = read_config(os.environ)
    rows = [("p50 latency, concurrency 1 (ms)", ours.p50_ms, baseline.p50_ms),
            ("p99 latency, concurrency 1 (ms)", ours.p99_ms, baseline.p99_ms),
            (f"throughput, concurrency {concurrency} (req/s)", ours.requests_per_s, baseline.requests_per_s),
            ("cold start to first answer (s)", ours.cold_start_s, baseline.cold_start_s)]
    print_table(f"serving: ResNet-50 + head, 133 classes, one 500x375 JPEG ({len(body):,} bytes), {requests} "
                f"requests per measure, {config.workers} worker(s) x {config.threads_per_worker} thread(s), "
                f"{platform.machine()} x {os.cpu_count()} CPUs", rows,
                "the original Udacity project's inference.py (PyTorch eager, PIL full decode, torchvision "
                "transforms) under sagemaker-inference's DefaultHandlerService on the same multi-model-server")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
