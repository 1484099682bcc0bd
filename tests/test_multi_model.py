"""A multi-model endpoint (SAGEMAKER_MULTI_MODEL=true), driven as SageMaker drives the container:
AWS's "Custom Containers Contract for Multi-Model Endpoints" (POST /models {"model_name", "url"},
GET /models, GET /models/{name}, DELETE /models/{name}, POST /models/{name}/invoke; 409 for a model
already loaded, 404 for one that is not, 507 when memory is short, after which SageMaker unloads
other models and loads again). Three artifacts with different class sets, on the real
multi-model-server. The 507 under a real container memory limit is tested in CI's Docker stage
(tests/test_docker.py); here SERVE_MEMORY_HEADROOM_MB makes memory "short".
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from serving import group_processes, request, running_server

from support.artifacts import random_artifact
from support.polling import poll_until

KENNELS = {"kennel-a": ["Beagle", "Boxer", "Collie"], "kennel-b": ["Akita", "Basenji", "Chow", "Dingo"],
           "kennel-c": ["Husky", "Poodle"]}


def artifact(directory, classes: list[str], seed: int):
    """A small model artifact of the training program's format with these classes (random weights)."""
    return random_artifact(directory, classes, seed=seed)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """The endpoint's SAGEMAKER_BASE_DIR: SageMaker extracts each model under its models/ folder."""
    return tmp_path_factory.mktemp("opt_ml")


@pytest.fixture(scope="module")
def kennels(base_dir):
    return {name: artifact(base_dir / "models" / name / "model", classes, seed)
            for seed, (name, classes) in enumerate(KENNELS.items())}


def multi_model(base_dir, **env):
    return {"SAGEMAKER_MULTI_MODEL": "true", "SAGEMAKER_BASE_DIR": str(base_dir), **env}


def load(base: str, name: str, url) -> tuple[int, dict]:
    status, _, body = request(f"{base}/models", json.dumps({"model_name": name, "url": str(url)}).encode(),
                              {"Content-Type": "application/json", "Accept": "application/json"}, method="POST")
    return status, json.loads(body)


def classify(base: str, name: str, image: bytes) -> tuple[int, dict]:
    status, _, body = request(f"{base}/models/{name}/invoke", image,
                              {"Content-Type": "image/png", "X-Amzn-SageMaker-Target-Model": f"{name}.tar.gz"},
                              method="POST")
    return status, json.loads(body)


def worker_rss_mb(server, model_name: str) -> float:
    """Resident memory of this server's worker processes for this model (their command line names the model
    and the server's private temp dir)."""
    tmp_dir = re.search(r"--tmp-dir (\S+)", server.log()).group(1)
    out = subprocess.run(["ps", "-ww", "-eo", "rss=,args="], capture_output=True, text=True).stdout
    return sum(int(line.split(None, 1)[0]) for line in out.splitlines()
               if "model_service_worker" in line and f"--model-name {model_name} " in line and tmp_dir in line) / 1024


@pytest.fixture(scope="module")
def png(tiny_dataset):
    return sorted(tiny_dataset.glob("test/*/*.png"))[0].read_bytes()


def test_three_models_load_answer_list_and_unload_as_sagemaker_asks(kennels, base_dir, png, tmp_path):
    with running_server(tmp_path, multi_model(base_dir)) as mme:
        assert "multi-model endpoint (SAGEMAKER_MULTI_MODEL): no model at start" in mme.log()
        assert request(f"{mme.base}/ping")[0] == 200
        assert json.loads(request(f"{mme.base}/models")[2]) == {"models": []}
        for name, url in kennels.items():
            assert load(mme.base, name, url)[0] == 200, mme.log()[-3000:]
        # each answer comes from the model named: its own classes, all of them in top_k
        for name, classes in KENNELS.items():
            status, answer = classify(mme.base, name, png)
            assert status == 200 and answer["label"] in classes
            assert sorted(entry["label"] for entry in answer["top_k"]) == sorted(classes)
        listed = json.loads(request(f"{mme.base}/models")[2])["models"]
        assert {(m["modelName"], m["modelUrl"]) for m in listed} == {(n, str(u)) for n, u in kennels.items()}
        # the contract's pagination: nextPageToken until the last page
        first = json.loads(request(f"{mme.base}/models?limit=2")[2])
        rest = json.loads(request(f"{mme.base}/models?limit=2&next_page_token={first['nextPageToken']}")[2])
        assert [m["modelName"] for m in first["models"] + rest["models"]] == sorted(kennels)
        assert "nextPageToken" not in rest
        described = json.loads(request(f"{mme.base}/models/kennel-b")[2])
        described = described[0] if isinstance(described, list) else described
        assert described["modelName"] == "kennel-b" and described["modelUrl"] == str(kennels["kennel-b"])
        # the documented errors: a model loaded twice, one that is not loaded
        status, conflict = load(mme.base, "kennel-a", kennels["kennel-a"])
        assert status == 409 and "already registered" in conflict["message"]
        assert classify(mme.base, "kennel-z", png)[0] == 404
        assert request(f"{mme.base}/models/kennel-z")[0] == 404
        assert request(f"{mme.base}/models/kennel-z", method="DELETE")[0] == 404
        # unloading frees that model's worker: its process and memory are gone, the others keep serving
        before = worker_rss_mb(mme, "kennel-b")
        assert before > 50, "no worker process found for kennel-b"
        assert request(f"{mme.base}/models/kennel-b", method="DELETE")[0] == 200
        deleted = time.monotonic()
        poll_until(lambda: worker_rss_mb(mme, "kennel-b") == 0, timeout=120,  # MMS answers, then stops the worker
                   seen=lambda: f"kennel-b's worker still runs: {worker_rss_mb(mme, 'kennel-b'):.0f} MB")
        print(f"kennel-b's worker: {before:.0f} MB resident before DELETE /models/kennel-b, gone "
              f"{time.monotonic() - deleted:.2f} s after it")
        assert classify(mme.base, "kennel-b", png)[0] == 404
        assert classify(mme.base, "kennel-a", png)[0] == 200
        assert load(mme.base, "kennel-b", kennels["kennel-b"])[0] == 200  # and it can come back
        assert classify(mme.base, "kennel-b", png)[0] == 200


def test_a_load_without_room_answers_507_and_can_be_tried_again(kennels, base_dir, png, tmp_path):
    # memory is short for every model (a headroom no machine has): SageMaker would unload others and retry
    with running_server(tmp_path, multi_model(base_dir, SERVE_MEMORY_HEADROOM_MB="100000000")) as mme:
        for attempt in range(1, 3):  # 507 both times, never 409: the failed load leaves nothing registered
            status, error = load(mme.base, "kennel-a", kennels["kennel-a"])
            assert status == 507, error
            poll_until(lambda n=attempt: mme.log().count("model kennel-a unregistered: its load answered 507") >= n,
                       timeout=60, seen=lambda: mme.log()[-3000:])
            assert json.loads(request(f"{mme.base}/models")[2]) == {"models": []}
        assert "not enough memory to load" in mme.log() and "100000000 MB headroom" in mme.log()
        assert request(f"{mme.base}/ping")[0] == 200
        assert group_processes(mme.process.pid)  # the server is still up


def test_the_single_model_mode_is_unchanged(trained_model_dir, png):
    with running_server(trained_model_dir) as single:
        assert request(f"{single.base}/invocations", png, {"Content-Type": "image/png"}, method="POST")[0] == 200
        assert request(f"{single.base}/models")[0] == 404  # no management API on a single model's port
        assert "multi-model endpoint" not in single.log()


def test_free_memory_is_read_from_the_containers_cgroup_then_the_machine(tmp_path):
    from serve import memory

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   2048000 kB\n")
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text(f"{1 << 30}\n")
    (v2 / "memory.current").write_text(f"{800 << 20}\n")
    (v2 / "memory.stat").write_text(f"anon 1\ninactive_file {100 << 20}\n")
    assert memory.available_mb(v2, meminfo) == 1024 - 800 + 100  # inactive page cache counts as free
    (v2 / "memory.max").write_text("max\n")  # no limit: the machine's
    assert memory.available_mb(v2, meminfo) == 2000
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text(f"{2 << 30}\n")
    (v1 / "memory" / "memory.usage_in_bytes").write_text(f"{1536 << 20}\n")
    (v1 / "memory" / "memory.stat").write_text(f"total_inactive_file {12 << 20}\n")
    assert memory.available_mb(v1, meminfo) == 2048 - 1536 + 12
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert memory.available_mb(v1, meminfo) == 2000


def test_a_model_that_does_not_fit_is_refused_with_what_it_needs(tmp_path, monkeypatch):
    from serve import memory

    model = tmp_path / "model.onnx"
    model.write_bytes(b"\0" * (10 << 20))
    monkeypatch.setattr(memory, "available_mb", lambda: 275.0)
    with pytest.raises(MemoryError, match=r"about 276 MB needed \(10 MB model x 2 \+ 256 MB headroom\), 275 MB free"):
        memory.require_room(model)
    memory.require_room(model, headroom_mb=255)  # 275 MB needed: fits


class ScriptedManagementApi:
    """multi-model-server's management API as it behaves right after a load answered 507 (a stand-in: the
    race lasts milliseconds on the real server, too short to hit on purpose). From MMS 1.1.11's source
    (ManagementRequestHandler.updateModelWorkers, ModelManager.unregisterModel): it sends the 507, then
    unregisters the model itself — removes it, has its cleanup interrupted, and puts it back with no worker.
    `phases` is what GET /models/NAME finds, one entry per request: "loading" (a worker listed), "absent",
    "no-worker"; a DELETE of a model with no worker removes it for good."""

    def __init__(self, phases: list[str]):
        import http.server
        import threading

        self.phases, self.deletes = list(phases), 0
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: object):
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                phase = api.phases.pop(0) if len(api.phases) > 1 else api.phases[0]
                if phase == "absent":
                    self._answer(404, {"code": 404, "message": "Model not found: kennel-d"})
                else:
                    workers = [{"id": "9003", "status": "READY"}] if phase == "loading" else []
                    self._answer(200, {"modelName": "kennel-d", "workers": workers})

            def do_DELETE(self):
                api.deletes += 1
                api.phases = ["absent"]
                self._answer(200, {"status": 'Model "kennel-d" unregistered'})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def at(seconds: float):
    """A clock stopped at `seconds`."""
    return lambda: seconds


def _launcher_watching(tmp_path, port: int):
    from serve.config import UNLOAD_PREFIX, read_config
    from serve.server import ModelServer

    server = ModelServer(tmp_path, read_config({"SAGEMAKER_MULTI_MODEL": "true"}), "127.0.0.1", port)
    (server.workdir / f"{UNLOAD_PREFIX}kennel-d").touch()  # the failed worker's mark
    return server


def test_a_404_while_mms_puts_the_failed_model_back_does_not_end_the_unregistering(tmp_path):
    # CI caught this: the launcher's DELETE landed while MMS held the model out, got 404, stopped watching,
    # and MMS put the model back with no worker, so SageMaker's next load of it answered 409
    api = ScriptedManagementApi(["loading", "absent", "absent", "no-worker"])
    server = _launcher_watching(tmp_path, api.port)
    try:
        rounds = [server.unregister_failed_loads(clock=at(100.0 + 0.4 * i)) for i in range(3)]
        assert rounds == [[], [], []] and api.deletes == 0  # the 404s have held for 0.4 s, not a second
        assert server.unregister_failed_loads(clock=at(101.2)) == ["kennel-d"]  # back with no worker: DELETE
        assert api.deletes == 1 and not list(server.workdir.glob("unload-*"))
    finally:
        api.close()
        server.stop()


def test_a_failed_load_found_gone_for_a_second_is_done_and_a_new_load_of_it_is_left_alone(tmp_path):
    import serve.server

    api = ScriptedManagementApi(["absent"])
    server = _launcher_watching(tmp_path, api.port)
    settle, stale = serve.server.UNLOAD_SETTLE_SECONDS, serve.server.UNLOAD_STALE_SECONDS
    try:
        assert server.unregister_failed_loads(clock=at(50.0)) == []
        assert server.unregister_failed_loads(clock=at(50.0 + settle)) == ["kennel-d"] and api.deletes == 0
        # SageMaker loads it again at once and this load takes: its worker is listed, nothing is deleted
        api.phases = ["absent", "loading"]
        (server.workdir / "unload-kennel-d").touch()
        rounds = [server.unregister_failed_loads(clock=at(60.0 + i * settle)) for i in range(3)]
        assert rounds == [[], [], []] and api.deletes == 0
        assert list(server.workdir.glob("unload-*"))  # seen loading for 1 s of the 30 (since 61): the mark stays
        assert server.unregister_failed_loads(clock=at(60.0 + settle + stale)) == []
        assert not list(server.workdir.glob("unload-*")) and api.deletes == 0
    finally:
        api.close()
        server.stop()


def test_only_plain_artifacts_under_the_model_root_load_and_none_of_their_code_runs(kennels, base_dir, png, tmp_path):
    # each of these loaded, and the artifact's handler ran, when /models was multi-model-server's own
    marker = tmp_path / "owned"
    handler = (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
               "def handle(data, context):\n    return [b'owned']\n")

    def trapped(name: str, *files: str) -> Path:
        folder = base_dir / "models" / name / "model"
        shutil.copytree(kennels["kennel-a"], folder)
        for relative in files:
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            manifest = {"specificationVersion": "1.0", "runtime": "python",
                        "model": {"modelName": name, "handler": "evil"}, "Model-Archive-Description": name,
                        "Engine": {"engineName": "MXNet"}, "Model": {"Service": "evil.py"}}  # 1.0 and legacy keys
            (folder / relative).write_text(handler if relative.endswith(".py") else json.dumps(manifest))
        return folder

    outside = artifact(tmp_path / "elsewhere" / "model", KENNELS["kennel-a"], 0)
    (base_dir / "models" / "linked").symlink_to(outside.parent)
    refused = {
        "an http URL": ("web", "http://127.0.0.1:9/kennel.mar"),
        "an s3 URL": ("s3", "s3://bucket/kennel.tar.gz"),
        "a folder outside the root": ("outside", str(outside)),
        "a symbolic link out of the root": ("linked", str(base_dir / "models" / "linked" / "model")),
        "a folder that is not there": ("missing", str(base_dir / "models" / "missing")),
        "an artifact with its own manifest": ("manifest", str(trapped("manifest", "MAR-INF/MANIFEST.json", "evil.py"))),
        "a legacy manifest deep inside": ("legacy", str(trapped("legacy", "extra/MANIFEST.json", "extra/evil.py"))),
        "an artifact with code/": ("code", str(trapped("code", "code/inference.py"))),
    }
    with running_server(tmp_path, multi_model(base_dir)) as mme:
        for why, (name, url) in refused.items():
            status, answer = load(mme.base, name, url)
            assert 400 <= status < 500 and answer["message"], (why, status, answer)
            assert classify(mme.base, name, png)[0] == 404, why
        # a handler named in the request is refused too, however plain the folder
        status, _, body = request(f"{mme.base}/models?handler=evil", json.dumps(
            {"model_name": "kennel-a", "url": str(kennels["kennel-a"])}).encode(), method="POST")
        assert status == 400 and "handler" in json.loads(body)["message"]
        assert request(f"{mme.base}/models/kennel-a?min_worker=4", b"", method="PUT")[0] == 405
        assert not marker.exists(), "an artifact's code ran"
        assert json.loads(request(f"{mme.base}/models")[2]) == {"models": []}
        assert load(mme.base, "kennel-a", kennels["kennel-a"])[0] == 200  # SageMaker's own form still loads
        status, answer = classify(mme.base, "kennel-a", png)
        assert status == 200 and answer["label"] in KENNELS["kennel-a"]
