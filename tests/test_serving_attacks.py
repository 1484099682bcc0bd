"""The serving port tried as an attacker would (issue 24): the real multi-model-server on loopback.

Each test replays an attack that worked before: loading a folder with its own handler through the
management API, an artifact whose files shadow standard-library modules, small images that asked the
worker for gigabytes, and a /ping that said 200 while no worker could serve.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import textwrap
import time
from pathlib import Path

import pytest
from serving import invoke_json, request, running_server

from reliability.corpus import image, instances, pixel_bomb_png
from reliability.load import server_workers

MARKER_CODE = textwrap.dedent("""\
    import pathlib
    pathlib.Path({marker!r}).write_text("artifact code ran")

    def handle(data, context):
        pathlib.Path({marker!r}).write_text("artifact handler ran")
        return [b"owned"] * len(data or [None])
""")


def plant(folder: Path, module: str, marker: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(MARKER_CODE.format(marker=str(marker)))


@pytest.fixture(scope="module")
def booby_trapped_model(trained_model_dir, tmp_path_factory):
    """The trained artifact plus code that would run if a worker imported from the artifact: code/base64.py
    and json.py beside model.json (multi-model-server puts the model's folder on the workers' PYTHONPATH)."""
    root = tmp_path_factory.mktemp("trapped")
    model = root / "model"
    shutil.copytree(trained_model_dir, model)
    markers = root / "markers"
    markers.mkdir()
    plant(model / "code", "base64", markers / "code-base64")
    plant(model, "json", markers / "model-json")
    return model, markers


@pytest.fixture(scope="module")
def server(booby_trapped_model):
    model, _ = booby_trapped_model
    with running_server(model, {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"}) as running:
        yield running
    assert running.process.returncode == 0, running.log()
    assert running.leftovers == [], "processes outlived the server"


def worker_pid(server) -> int:
    [worker] = server_workers(server.process.pid)  # the forked child that holds the model
    return worker.pid


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_no_artifact_code_is_imported_by_the_workers(server, booby_trapped_model):
    _, markers = booby_trapped_model
    status, _, answer = invoke_json(server.base, image("JPEG"))
    assert status == 200 and "label" in answer
    assert list(markers.iterdir()) == [], "a worker imported code from the model artifact"


def test_the_serving_port_registers_scales_and_deletes_nothing(server, tmp_path):
    # the reviewer's attack: a folder whose MAR-INF/MANIFEST.json names its own handler, then invoked
    marker = tmp_path / "owned"
    evil = tmp_path / "evil"
    plant(evil, "evil_handler", marker)
    (evil / "MAR-INF").mkdir()
    (evil / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(
        {"specificationVersion": "1.0", "runtime": "python",
         "model": {"modelName": "x", "handler": "evil_handler:handle"}}))
    attacks = [("POST", f"/models?url={evil}&model_name=x&initial_workers=1&synchronous=true"),
               ("POST", "/models?url=http://127.0.0.1:9/evil.mar&model_name=y&initial_workers=1"),
               ("POST", "/models/x/invoke"), ("PUT", "/models/model?min_worker=4&synchronous=true"),
               ("DELETE", "/models/model"), ("GET", "/models"), ("GET", "/models/model")]
    for method, path in attacks:
        status, headers, body = request(server.base + path, b"", method=method)
        assert status in (404, 405), (method, path, status, body[:300])
        assert headers["content-type"].startswith("application/json") and json.loads(body), (method, path)
    assert not marker.exists(), "the handler the attacker sent ran"
    status, _, answer = invoke_json(server.base, image("JPEG"))
    assert status == 200 and "label" in answer  # the served model is still there


def test_small_images_that_would_need_gigabytes_are_refused_within_a_fixed_memory_limit(server):
    # The worker may grow by at most 512 MB of address space: before the caps, the 16 x 2,500,000 PNG
    # (7 KB) asked resize for ~0.8 GB at this model's size (41 GB at 224 px) and the batch decoded 64
    # images of 40 M pixels at once (10 GB as RGB). Now each is refused from its headers.
    pid = worker_pid(server)
    limit = status_kb(pid, "VmSize") * 1024 + (512 << 20)
    soft, hard = resource.prlimit(pid, resource.RLIMIT_AS)
    resource.prlimit(pid, resource.RLIMIT_AS, (limit, hard))  # the soft limit: it can be lifted again
    try:
        rss_before = status_kb(pid, "VmRSS")
        bombs = [("image/png", pixel_bomb_png(16, 2_500_000)), ("image/png", pixel_bomb_png(2_500_000, 16)),
                 ("application/json", instances(*[pixel_bomb_png(6324)] * 64))]
        for content_type, body in bombs:
            status, _, answer = invoke_json(server.base, body, content_type)
            assert status == 413, (status, answer)
            assert "MAX_IMAGE_ASPECT_RATIO" in answer["error"] or "MAX_REQUEST_PIXELS" in answer["error"], answer
        grown_mb = (status_kb(pid, "VmRSS") - rss_before) / 1024
        assert grown_mb < 100, f"the worker grew by {grown_mb:.0f} MB"
        status, _, answer = invoke_json(server.base, image("JPEG", size=(500, 375)))
        assert status == 200 and "label" in answer
        assert worker_pid(server) == pid  # the same worker: nothing was killed
    finally:
        resource.prlimit(pid, resource.RLIMIT_AS, (soft, hard))


def test_ping_fails_while_no_worker_can_serve(trained_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(trained_model_dir, model)
    with running_server(model) as server:
        status, _, body = request(f"{server.base}/ping")
        assert status == 200 and json.loads(body)["status"] == "Healthy"
        for onnx in model.glob("*.onnx"):  # every worker that starts from now on fails to load
            onnx.write_bytes(b"not a model")
        os.kill(worker_pid(server), signal.SIGKILL)
        statuses = []
        for _ in range(300):  # polls until the condition, at most ~60 s; the verdict is the status seen
            status, _, body = request(f"{server.base}/ping", timeout=10)
            statuses.append(status)
            if status != 200:
                break
            time.sleep(0.2)
        assert statuses[-1] == 503, statuses
        assert json.loads(body)["status"] == "Unhealthy"
