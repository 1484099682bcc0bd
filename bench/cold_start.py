"""Cold start of the serving image as Serverless Inference runs it, against the same image run as a
real-time endpoint's container, same run (needs a Docker engine and the built serving image: CI's
Docker stage runs it).

Serverless: `--read-only --tmpfs /tmp --user 1000:1000 --memory 3g --cpus 2`, one worker. Real-time
(baseline): started as root as SageMaker starts it (the model server then runs as model-server), a
writable filesystem, `--cpus 2`, the default workers. The model is the real shape: ResNet-50 + head, 133
classes, 224 px, with its int8 model (random weights; start-up does not depend on them). Cold start =
`docker run` to the first 200 from POST /invocations, polled every 50 ms; memory = the container's use
once it has answered. SageMaker's own cold start adds pulling the image and downloading the model, which
this machine cannot show. Prints numbers; asserts nothing.

    python -m bench.cold_start [--image dog-classifier-serve:local] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.report import print_table
from bench.serve_latency import post
from support.artifacts import resnet50_artifact
from support.live_server import free_port
from support.photos import photo_jpeg

SERVERLESS = ["--read-only", "--tmpfs", "/tmp", "--user", "1000:1000", "--memory", "3g", "--cpus", "2",
              "-e", "SAGEMAKER_MODEL_SERVER_WORKERS=1"]
REAL_TIME = ["--cpus", "2"]


def cold_start(image: str, model_dir: Path, flags: list[str], body: bytes) -> tuple[float, float]:
    """(seconds from `docker run` to the first answer, MiB the container uses then)."""
    port = free_port()
    name = f"cold-start-{os.getpid()}-{port}"
    started = time.perf_counter()
    subprocess.run(["docker", "run", "-d", "--name", name, *flags, "-p", f"127.0.0.1:{port}:8080", "-v",
                    f"{model_dir}:/opt/ml/model:ro", image, "serve"], check=True, capture_output=True)
    try:
        while True:
            try:
                if post(port, body, timeout=10) == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() - started > 180:
                logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
                raise RuntimeError(f"no answer within 180 s:\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        usage = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name],
                               capture_output=True, text=True, check=True).stdout.split("/")[0].strip()
        return seconds, _mib(usage)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def _mib(usage: str) -> float:
    units = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / 2 ** 20}
    for unit, factor in units.items():
        if usage.endswith(unit):
            return float(usage[:-len(unit)]) * factor
    raise ValueError(f"unexpected docker stats memory {usage!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=os.environ.get("SERVE_IMAGE", "dog-classifier-serve:local"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    body = photo_jpeg(500, 375)
    with tempfile.TemporaryDirectory(prefix="cold-start-") as root:
        model_dir = resnet50_artifact(Path(root) / "model", int8=True)
        os.chmod(root, 0o755)  # the container's user 1000 reads the mounted model
        for path in model_dir.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        results = {label: [cold_start(args.image, model_dir, flags, body) for _ in range(args.runs)]
                   for label, flags in (("serverless", SERVERLESS), ("real-time", REAL_TIME))}
    for label, runs in results.items():
        print(f"{label}: cold start {', '.join(f'{s:.2f}' for s, _ in runs)} s; memory "
              f"{', '.join(f'{m:.0f}' for _, m in runs)} MiB")
    (serverless, real_time) = ([statistics.median(value[i] for value in runs) for i in (0, 1)]
                               for runs in results.values())
    print_table(f"Cold start of the serving image ({args.image}, ResNet-50 int8, median of {args.runs})", [
        ("docker run to first answer (s)", serverless[0], real_time[0]),
        ("container memory after it (MiB)", serverless[1], real_time[1]),
    ], "the same image run as a real-time endpoint container (started as root, writable filesystem, --cpus 2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
