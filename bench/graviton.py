"""The serving image for Graviton (ml.c7g, ml.m7g: arm64), built and smoke-tested under QEMU emulation.

    python -m bench.graviton --base-image python:3.11-slim-bookworm     # make graviton-check

Builds the serving image for linux/arm64 (docker buildx when the engine has it, else the classic
builder; both run the arm64 build steps through QEMU), then runs it and the amd64 image on one
small model artifact: /ping, one invocation of the same JPEG each, and the two answers' probabilities
compared (they must agree within 1e-4). Needs a Docker engine and QEMU registered with binfmt_misc
for aarch64 (Debian/Ubuntu: apt-get install qemu-user-static binfmt-support). Exits 1 if a check
fails, saying which. Timings under emulation say nothing about Graviton's own speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from serve import loopback
from support.artifacts import random_artifact
from support.live_server import READY_MARK, free_port
from support.photos import photo_jpeg

REPO = Path(__file__).resolve().parents[1]
BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
TOLERANCE = 1e-4


class CheckFailed(Exception):
    pass


def require_emulation() -> None:
    if (subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip() == "aarch64"):
        return
    if not BINFMT.exists() or "enabled" not in BINFMT.read_text():
        raise CheckFailed(f"no QEMU for aarch64 registered ({BINFMT} missing or disabled): apt-get install "
                          "qemu-user-static binfmt-support (mount binfmt_misc first if /proc/sys/fs/binfmt_misc is "
                          "empty)")
    if "F" not in next((line.split()[1] for line in BINFMT.read_text().splitlines() if line.startswith("flags:")), ""):
        raise CheckFailed(f"{BINFMT} lacks the F flag: containers cannot reach the interpreter (reinstall "
                          "qemu-user-static, whose binfmt entries carry F)")


def build_arm64(base_image: str, tag: str) -> float:
    """Seconds the build took."""
    started = time.perf_counter()
    has_buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode == 0
    command = (["docker", "buildx", "build", "--load"] if has_buildx else ["docker", "build"]) + [
        "--platform", "linux/arm64", "-f", str(REPO / "docker" / "serve.Dockerfile"),
        "--build-arg", f"BASE_IMAGE={base_image}", "-t", tag, str(REPO)]
    print(f"building {tag} for linux/arm64 ({'buildx' if has_buildx else 'classic builder'}, through QEMU)",
          flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckFailed(f"the arm64 build failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return time.perf_counter() - started


def answer(image: str, platform: str, model_dir: Path, body: bytes) -> dict:
    """Run the image for `platform`, wait for /ping, classify `body`; the answer, the machine and timings."""
    port, name = free_port(), f"graviton-check-{platform.split('/')[1]}-{os.getpid()}"
    started = time.perf_counter()
    subprocess.run(["docker", "run", "-d", "--name", name, "--platform", platform, "-p", f"127.0.0.1:{port}:8080",
                    "-v", f"{model_dir}:/opt/ml/model:ro", image, "serve"], check=True, capture_output=True)
    try:
        while True:
            logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
            if READY_MARK in logs.stdout:
                break
            if "uncaught target signal" in logs.stdout + logs.stderr:  # QEMU: the process died (and may hang)
                raise CheckFailed(f"{platform}: the server crashed under emulation:\n"
                                  f"{(logs.stdout + logs.stderr)[-3000:]}")
            running = subprocess.run(["docker", "inspect", "--format", "{{.State.Running}}", name],
                                     capture_output=True, text=True).stdout.strip()
            if running != "true" or time.perf_counter() - started > 900:
                raise CheckFailed(f"{platform}: the server did not come up:\n{(logs.stdout + logs.stderr)[-3000:]}")
            time.sleep(1)
        ready = time.perf_counter() - started
        ping = loopback.request("127.0.0.1", port, "GET", "/ping", timeout=300)[0]
        invoked = time.perf_counter()
        status, _, payload = loopback.request("127.0.0.1", port, "POST", "/invocations", body, {
            "Content-Type": "image/jpeg", "Accept": "application/json",
            "X-Amzn-SageMaker-Custom-Attributes": "top_k=4"}, timeout=300)
        seconds = time.perf_counter() - invoked
        if ping != 200 or status != 200:
            raise CheckFailed(f"{platform}: /ping {ping}, /invocations {status}: {payload[:300]!r}")
        machine = subprocess.run(["docker", "exec", name, "uname", "-m"], capture_output=True, text=True).stdout.strip()
        return {"answer": json.loads(payload), "machine": machine, "ready_s": ready, "invocation_s": seconds}
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def probabilities(answer: dict) -> dict[str, float]:
    return {entry["label"]: entry["probability"] for entry in answer["top_k"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.graviton", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-image", default=os.environ.get("BASE_IMAGE_ARM64", "python:3.11-slim-bookworm"),
                        help="an arm64 (or multi-arch) Debian + Python 3.11 base (default python:3.11-slim-bookworm)")
    parser.add_argument("--amd64-image", default=os.environ.get("SERVE_IMAGE", "dog-classifier-serve:local"),
                        help="the amd64 serving image to compare with (built: docker compose build, or make "
                             "test-docker)")
    parser.add_argument("--tag", default="dog-classifier-serve:arm64", help="the arm64 image's tag")
    parser.add_argument("--skip-build", action="store_true", help="use the --tag image as it is")
    args = parser.parse_args(argv)
    try:
        if shutil.which("docker") is None:
            raise CheckFailed("docker not found")
        require_emulation()
        build_s = None if args.skip_build else build_arm64(args.base_image, args.tag)
        architecture = subprocess.run(["docker", "image", "inspect", "--format", "{{.Architecture}}", args.tag],
                                      capture_output=True, text=True).stdout.strip()
        if architecture != "arm64":
            raise CheckFailed(f"{args.tag} is built for {architecture or 'nothing'}, not arm64")
        body = photo_jpeg(320, 240)
        with tempfile.TemporaryDirectory(prefix="graviton-") as root:
            model_dir = random_artifact(Path(root) / "model", ["Beagle", "Boxer", "Collie", "Dingo"], hidden_units=32,
                                        image_size=64)
            for path in [Path(root), *Path(root).rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            results = {platform: answer(image, platform, model_dir, body)
                       for platform, image in (("linux/amd64", args.amd64_image), ("linux/arm64", args.tag))}
    except (CheckFailed, subprocess.CalledProcessError) as error:
        print(f"graviton check failed: {error}", file=sys.stderr)
        return 1
    amd64, arm64 = (probabilities(results[p]["answer"]) for p in ("linux/amd64", "linux/arm64"))
    difference = max(abs(amd64[label] - arm64.get(label, np.inf)) for label in amd64)
    print(f"\narm64 serving image {args.tag}" + (f", built in {build_s:.0f} s" if build_s else ""))
    print(f"{'platform':12} {'uname -m':9} {'ready (s)':>9} {'invoke (s)':>10}  label")
    for platform, result in results.items():
        print(f"{platform:12} {result['machine']:9} {result['ready_s']:9.1f} {result['invocation_s']:10.2f}  "
              f"{result['answer']['label']}")
    print(f"max |probability difference| amd64 vs arm64: {difference:.2e} (must be <= {TOLERANCE:g})")
    if results["linux/arm64"]["machine"] != "aarch64" or difference > TOLERANCE:
        print("graviton check failed: " + ("the arm64 container did not run as aarch64"
                                           if results["linux/arm64"]["machine"] != "aarch64"
                                           else "the answers differ"), file=sys.stderr)
        return 1
    print("graviton check passed (timings are QEMU's, not Graviton's)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
