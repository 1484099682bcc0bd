"""The serving stack over HTTP: the real multi-model-server (Java) with our handler, on loopback."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, SDK2_PYTHON, environment_without_pythonpath
from serving import READY_MARK, free_port, invoke, invoke_json, request, running_server

from reliability.corpus import cases, problem_with
from reliability.corpus import image as image_bytes
from serve.config import DEFAULT_MAX_INSTANCES
from support.artifacts import add_int8, resnet50_artifact
from support.polling import poll_until


@pytest.fixture(scope="module")
def server(trained_model_dir):
    # 1 MB payload cap so the 413 test needs no big upload.
    with running_server(trained_model_dir, {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"}) as running:
        yield running
    assert running.process.returncode == 0, running.log()
    assert running.leftovers == [], "processes outlived the server"


def sample_files(dataset, split="test"):
    return sorted(p for p in (dataset / split).rglob("*") if p.is_file())


def assert_answer(answer: dict, classes: list[str], top_k: int):
    assert set(answer) == {"label", "index", "probability", "top_k"}
    assert answer["label"] == classes[answer["index"]]
    assert len(answer["top_k"]) == top_k
    probabilities = [entry["probability"] for entry in answer["top_k"]]
    assert probabilities == sorted(probabilities, reverse=True) and answer["probability"] == probabilities[0]
    assert all(entry["label"] == classes[entry["index"]] for entry in answer["top_k"])


def classes_of(model_dir) -> list[str]:
    return json.loads((model_dir / "model.json").read_text())["classes"]


def serve_expecting_exit(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m serve ARGS`, which the test expects to exit by itself. If it does not (the test's reason to
    fail), SIGTERM makes it stop its multi-model-server, which runs in a session of its own, before the test
    fails: nothing outlives the test."""
    process = subprocess.Popen([sys.executable, "-m", "serve", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        raise AssertionError(f"serve did not exit within {timeout} s by itself:\n{out}{err}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_ping(server):
    status, _, body = request(f"{server.base}/ping")
    assert status == 200, body


@pytest.mark.parametrize("content_type, data", [
    ("image/jpeg", image_bytes("JPEG")),
    ("image/png", image_bytes("PNG", "RGBA")),
    ("application/x-image", image_bytes("WEBP")),
    ("application/x-image", image_bytes("GIF", "P")),
    ("application/x-image", image_bytes("BMP")),
    ("application/x-image", image_bytes("TIFF", "CMYK")),
    ("image/jpeg", image_bytes("JPEG", "L")),
    ("image/png; charset=binary", image_bytes("PNG", "I;16")),
])
def test_every_image_content_type_gets_json(server, trained_model_dir, content_type, data):
    status, headers, answer = invoke_json(server.base, data, content_type)
    assert status == 200, answer
    assert headers["content-type"].startswith("application/json")
    classes = classes_of(trained_model_dir)
    assert_answer(answer, classes, top_k=len(classes))  # default 5, capped at the 3 classes
    assert sum(entry["probability"] for entry in answer["top_k"]) == pytest.approx(1.0, abs=1e-5)


def test_npy_is_what_the_sdks_numpy_deserializer_reads(server, trained_model_dir, tiny_dataset):
    data = sample_files(tiny_dataset)[0].read_bytes()
    status, headers, body = invoke(server.base, data, "image/jpeg", Accept="application/x-npy")
    assert status == 200 and headers["content-type"] == "application/x-npy"
    array = np.load(io.BytesIO(body), allow_pickle=False)
    assert array.dtype == np.float32 and array.shape == (1, len(classes_of(trained_model_dir)))
    _, _, answer = invoke_json(server.base, data, "image/jpeg")
    assert int(np.argmax(array, 1)[0]) == answer["index"]  # the original Udacity project's client code keeps working


def test_accept_lists_and_wildcards(server):
    data = image_bytes("JPEG")
    for accept in ("*/*", "text/html, application/x-npy;q=0.9", "application/json; charset=utf-8"):
        assert invoke(server.base, data, Accept=accept)[0] == 200, accept
    assert invoke(server.base, data, Accept="text/html, application/x-npy")[1]["content-type"] == "application/x-npy"


def test_a_batch_answers_in_input_order(server, tiny_dataset):
    files = sample_files(tiny_dataset)[::3]
    singles = [invoke_json(server.base, f.read_bytes(), "application/x-image")[2] for f in files]
    body = json.dumps({"instances": [{"b64": base64.b64encode(f.read_bytes()).decode()} for f in files]})
    status, _, answers = invoke_json(server.base, body.encode(), "application/json")
    assert status == 200 and isinstance(answers, list) and len(answers) == len(files)
    for single, batched in zip(singles, answers, strict=True):
        assert batched["index"] == single["index"]
        assert batched["probability"] == pytest.approx(single["probability"], abs=1e-6)
    status, _, body = invoke(server.base, body.encode(), "application/json", Accept="application/x-npy")
    assert np.load(io.BytesIO(body)).shape == (len(files), 3)


def test_top_k_from_custom_attributes(server):
    data = image_bytes("JPEG")
    for attributes, expected in (("top_k=2", 2), ("model=a, top_k=1", 1), ("top_k=99999999999999999999", 3)):
        status, _, answer = invoke_json(server.base, data, X_Amzn_SageMaker_Custom_Attributes=attributes)
        assert status == 200 and len(answer["top_k"]) == expected, attributes


def sdk2_predictor(server, image: bytes, deserializer: str, content_type: str | None = None) -> dict:
    """SDK 2's Predictor on the live server, in .venv-sdk2 (tests/sdk2_predictor.py): its content type, answer."""
    assert SDK2_PYTHON.is_file(), f"{SDK2_PYTHON} is missing: run make setup-sdk2"
    port = server.base.rsplit(":", 1)[1]
    result = subprocess.run([str(SDK2_PYTHON), str(REPO / "tests" / "sdk2_predictor.py"), port, deserializer,
                             *([content_type] if content_type else [])], input=image, capture_output=True,
                            timeout=120, env=environment_without_pythonpath())
    assert result.returncode == 0, (result.stdout + result.stderr).decode(errors="replace")
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


def test_the_sdks_default_predictor_serializer_is_served(server, trained_model_dir):
    for image in (image_bytes("JPEG"), image_bytes("PNG", "RGBA")):
        found = sdk2_predictor(server, image, "json")
        assert found["content_type"] == "application/octet-stream"  # IdentitySerializer's, the SDK's default
        assert_answer(found["answer"], classes_of(trained_model_dir), top_k=3)


def test_the_udacity_notebooks_client_reads_the_predicted_class_with_argmax(server, trained_model_dir):
    # The original notebook's query, word for word (SDK 2): PyTorchPredictor's NumpyDeserializer (Accept:
    # application/x-npy), predictor.predict(img_bytes, initial_args={"ContentType": "image/jpeg"}), then
    # np.argmax(response, 1). The index is the class the JSON answer names.
    img_bytes = image_bytes("JPEG")
    response = sdk2_predictor(server, img_bytes, "numpy", "image/jpeg")["answer"]
    classes = classes_of(trained_model_dir)
    assert response["dtype"] == "float32" and response["shape"] == [1, len(classes)]
    predicted = response["argmax"]
    _, _, answer = invoke_json(server.base, img_bytes, "image/jpeg")
    assert predicted == answer["index"] and classes[predicted] == answer["label"]
    assert response["values"][0][predicted] == pytest.approx(answer["probability"], abs=1e-4)


# invoke_endpoint's arguments as SageMaker hands them to the container: as headers
SAGEMAKER_HEADERS = {"ContentType": "Content-Type", "Accept": "Accept",
                     "CustomAttributes": "X-Amzn-SageMaker-Custom-Attributes"}


@pytest.mark.parametrize("arguments, status", [
    ({"ContentType": "image/jpeg"}, 200),
    ({"ContentType": "application/octet-stream"}, 200),
    ({"ContentType": "application/x-image", "Accept": "application/json"}, 200),
    ({"ContentType": "application/octet-stream", "CustomAttributes": "top_k=1"}, 200),
    ({"ContentType": "text/csv"}, 415),
], ids=lambda value: str(value))
def test_invoke_endpoint_argument_shapes(server, arguments, status):
    got, headers, body = request(f"{server.base}/invocations", image_bytes("JPEG"),
                                 {SAGEMAKER_HEADERS[name]: value for name, value in arguments.items()})
    answer = json.loads(body)
    assert got == status, answer
    assert headers["content-type"].startswith("application/json")
    if status == 200:
        assert len(answer["top_k"]) == (1 if "CustomAttributes" in arguments else 3)
    else:
        assert "application/octet-stream (an image's bytes)" in answer["error"]


def test_an_octet_stream_that_is_no_image_is_refused_naming_what_is_accepted(server):
    status, _, answer = invoke_json(server.base, b"%PDF-1.7 not a picture", "application/octet-stream")
    assert status == 415
    assert "does not start like a JPEG, PNG, WebP, GIF, BMP or TIFF image" in answer["error"]
    assert "image/jpeg" in answer["error"] and "application/json" in answer["error"]


CORPUS = cases(max_payload_bytes=1 << 20, max_instances=DEFAULT_MAX_INSTANCES)  # the server fixture's 1 MB cap


def test_the_corpus_has_every_kind_the_reliability_issue_lists():
    assert len(CORPUS) >= 25 and len({case.name for case in CORPUS}) == len(CORPUS)
    assert {400, 406, 413, 415, 200} == {case.status for case in CORPUS}


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_bad_input_gets_its_documented_answer_and_the_server_keeps_serving(server, case):
    status, response_headers, payload = invoke(server.base, case.body, case.content_type, **case.headers)
    assert problem_with(case, status, response_headers.get("content-type", ""), payload) is None
    assert request(f"{server.base}/ping")[0] == 200
    assert invoke(server.base, image_bytes("JPEG"))[0] == 200


def _eval_path_inputs(model_dir, dataset):
    """Each test file as training's eval transform makes it (the reference for what serving must compute)."""
    from imaging import load_rgb
    from train.network import Normalize, Preprocess, eval_transform

    hp = json.loads((model_dir / "model.json").read_text())["hyperparameters"]
    preprocess = Preprocess.for_image_size(hp["image_size"])
    for path in sample_files(dataset):  # JPEG, PNG, BMP; RGB, palette, RGBA, CMYK, 16-bit, EXIF-rotated
        yield path, Normalize()(eval_transform(preprocess)(load_rgb(path, preprocess.resize)).unsqueeze(0))


def _served_npy(base, path) -> np.ndarray:
    status, _, body = invoke(base, path.read_bytes(), "application/x-image", Accept="application/x-npy")
    assert status == 200
    return np.load(io.BytesIO(body))


def test_the_int8_model_is_served_by_default_and_answers_as_it_does_run_directly(server, trained_model_dir,
                                                                                 tiny_dataset):
    import onnxruntime

    int8 = json.loads((trained_model_dir / "model.json").read_text())["int8"]
    assert int8["file"] == "model.int8.onnx" and "model.int8.onnx (int8)" in server.log()
    session = onnxruntime.InferenceSession(str(trained_model_dir / "model.int8.onnx"),
                                           providers=["CPUExecutionProvider"])
    worst = 0.0
    for path, inputs in _eval_path_inputs(trained_model_dir, tiny_dataset):
        expected = session.run(None, {"input": inputs.numpy()})[0]
        worst = max(worst, float(np.abs(_served_npy(server.base, path) - expected).max()))
    assert worst <= 1e-3  # one uint8 activation step at most; float32 paths agree to 1e-4 (below)


def test_served_fp32_probabilities_equal_the_pytorch_eval_path(trained_model_dir, tiny_dataset):
    import torch

    from train.network import build_classifier

    metadata = json.loads((trained_model_dir / "model.json").read_text())
    hp = metadata["hyperparameters"]
    classifier = build_classifier(hp["arch"], metadata["num_classes"], hp["hidden_units"], None, False)
    classifier.load_state_dict(torch.load(trained_model_dir / "model.pt", weights_only=True))
    classifier.eval()
    worst = 0.0
    with running_server(trained_model_dir, {"SERVE_PRECISION": "fp32"}) as fp32:
        assert "model.onnx (fp32)" in fp32.log()
        for path, inputs in _eval_path_inputs(trained_model_dir, tiny_dataset):
            with torch.no_grad():
                expected = torch.softmax(classifier(inputs), 1).numpy()
            worst = max(worst, float(np.abs(_served_npy(fp32.base, path) - expected).max()))
    assert worst <= 1e-4
    assert expected.max() > 0.5  # a trained model: the comparison is not between two uniform vectors


def test_serve_precision_int8_without_an_int8_model_fails_at_once_saying_why(tmp_path, trained_model_dir):
    float_only = tmp_path / "model"
    shutil.copytree(trained_model_dir, float_only)
    metadata = json.loads((float_only / "model.json").read_text())
    del metadata["int8"]
    (float_only / "model.json").write_text(json.dumps(metadata))
    (float_only / "model.int8.onnx").unlink()
    result = serve_expecting_exit("--model-dir", str(float_only), env={**os.environ, "SERVE_PRECISION": "int8"})
    assert result.returncode == 1 and "SERVE_PRECISION=int8 but" in result.stdout and "no int8 model" in result.stdout
    result = serve_expecting_exit("--model-dir", str(float_only), env={**os.environ, "SERVE_PRECISION": "bf16"})
    assert result.returncode == 1 and "SERVE_PRECISION='bf16'" in result.stdout


def test_an_int8_model_not_checked_on_this_cpu_level_is_not_served_and_the_server_says_why(tmp_path,
                                                                                           trained_model_dir):
    from contract.cpus import instruction_set_level

    model = tmp_path / "model"
    shutil.copytree(trained_model_dir, model)
    metadata = json.loads((model / "model.json").read_text())
    here = instruction_set_level()
    metadata["int8"]["levels"][here] = {"checked": False, "reason": "a stand-in for a level the job could not reach"}
    (model / "model.json").write_text(json.dumps(metadata))
    with running_server(model) as fallback:
        assert "model.onnx (fp32)" in fallback.log()
        assert (f"serving model.onnx, not model.int8.onnx: the training job did not check int8 on this CPU's level "
                f"({here}: a stand-in for a level the job could not reach)") in fallback.log()
        assert invoke(fallback.base, image_bytes("JPEG"))[0] == 200
    with running_server(model, {"SERVE_PRECISION": "int8"}) as insisted:
        assert "model.int8.onnx (int8)" in insisted.log()


def test_requests_are_logged_one_line_each_with_where_the_time_went(server):
    invoke(server.base, image_bytes("JPEG", size=(67, 45)))  # a size no other test of this server sends
    server.wait_for("images=67x45", timeout=30)  # the worker's log line reaches the file after the answer
    log = server.log()
    [line] = [line for line in log.splitlines() if "images=67x45" in line]
    assert "status=200 latency_ms=" in line
    timings = {key: float(value) for key, value in re.findall(r"(\w+)_ms=([\d.]+)", line)}
    assert set(timings) == {"latency", "parse", "decode", "preprocess", "model", "encode"}
    assert timings["model"] > 0 and timings["decode"] > 0
    assert abs(sum(timings.values()) - 2 * timings["latency"]) <= 0.05  # the stages add up to the latency
    # serve/log4j2.xml: the frontend's access line stays; its per-request "Backend response time" line and
    # the worker's "[METRICS]" lines (each parsed by the frontend, then dropped) are gone
    assert "ACCESS_LOG" in log and "Backend response time" not in log and "[METRICS]" not in log


def test_first_invocation_after_ping_succeeds(trained_model_dir):
    # /ping turns 200 before a worker has loaded the model; the first request must wait, not fail.
    with running_server(trained_model_dir, wait_ready=False) as fresh:
        poll_until(lambda: _pings(fresh.base), timeout=60, seen=fresh.log)
        status, _, body = invoke(fresh.base, image_bytes("JPEG"))
        assert status == 200, body


def _pings(base: str) -> bool:
    try:
        return request(f"{base}/ping", timeout=1)[0] == 200
    except OSError:
        return False


def test_default_accept_comes_from_the_environment(trained_model_dir):
    with running_server(trained_model_dir, {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/x-npy"}) as npy:
        status, headers, body = invoke(npy.base, image_bytes("JPEG"))
        assert status == 200 and headers["content-type"] == "application/x-npy"
        assert np.load(io.BytesIO(body)).shape == (1, 3)


def test_a_broken_artifact_fails_at_once_with_a_reason(tmp_path, trained_model_dir):
    broken = tmp_path / "model"
    shutil.copytree(trained_model_dir, broken)
    (broken / "model.onnx").unlink()
    result = serve_expecting_exit("--model-dir", str(broken))
    assert result.returncode == 1 and "model.onnx not found" in result.stdout


def test_a_resnet50_artifact_with_133_classes(tmp_path):
    # The flagship shape (ResNet-50 + head, 133 dog breeds), exported by training's own code, random weights,
    # and its int8 model, by training's quantizer (limits off: random weights), which the server then serves
    resnet50_artifact(tmp_path / "model", image_size=64)
    add_int8(tmp_path / "model", np.random.default_rng(0).standard_normal((4, 3, 64, 64)).astype(np.float32))
    classes = [f"Breed {i}" for i in range(133)]
    with running_server(tmp_path / "model") as resnet50:
        assert "model.int8.onnx (int8)" in resnet50.log()
        status, _, answer = invoke_json(resnet50.base, image_bytes("JPEG", size=(500, 375)))
        assert status == 200, answer
        assert_answer(answer, classes, top_k=5)
        status, _, body = invoke(resnet50.base, image_bytes("PNG"), "image/png", Accept="application/x-npy")
        assert np.load(io.BytesIO(body)).shape == (1, 133)


@pytest.mark.parametrize(("served", "precision"), [("model.int8.onnx", "auto"), ("model.onnx", "fp32")])
def test_a_corrupt_model_ends_the_server_in_seconds_naming_the_error(tmp_path, trained_model_dir, served, precision):
    # Loaded in ONNX Runtime before multi-model-server starts: no 600 s of worker retries, no reason buried in
    # Java's log.
    broken = tmp_path / "model"
    shutil.copytree(trained_model_dir, broken)
    (broken / served).write_bytes(b"not an onnx graph")
    started = time.monotonic()
    result = serve_expecting_exit("--model-dir", str(broken), "--port", str(free_port()),
                                  env={**os.environ, "SERVE_PRECISION": precision})
    print(f"exited after {time.monotonic() - started:.1f} s")
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cannot load" in errors[0] and "INVALID_PROTOBUF" in errors[0], result.stdout
    assert "starting multi-model-server" not in result.stdout


def test_the_launcher_exits_1_when_no_worker_is_ready_by_the_deadline_and_0_when_stopped_first(
        trained_model_dir, monkeypatch, caplog):
    # The launcher's own code, run in this process, with the Java frontend replaced by a live process that never
    # readies a worker and the deadline judged on a clock that has reached it (as in the test below).
    from serve import server as launcher

    stopped_while_waiting = []  # SageMaker may stop the container before any worker is ready: exit 0, no error

    class NeverReady(launcher.ModelServer):
        def start(self) -> None:
            self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                            start_new_session=True)

        def wait_ready(self, deadline, stop, clock=None) -> bool:
            if stopped_while_waiting:
                stop.set()  # what main()'s SIGTERM handler does
            return super().wait_ready(deadline, stop, clock=lambda: deadline)

    started = []

    def never_ready(*args, **kwargs) -> NeverReady:
        started.append(NeverReady(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(launcher, "ModelServer", never_ready)
    monkeypatch.setenv("SAGEMAKER_STARTUP_TIMEOUT", "7")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert launcher.main(["--model-dir", str(trained_model_dir), "--port", str(free_port())]) == 1
        assert "no model-server worker became ready within 7 s (SAGEMAKER_STARTUP_TIMEOUT)" in caplog.text
        caplog.clear()
        stopped_while_waiting.append(True)
        assert launcher.main(["--model-dir", str(trained_model_dir), "--port", str(free_port())]) == 0
        assert "no model-server worker became ready" not in caplog.text
    finally:
        for sig, handler in handlers.items():  # main() installs its own: pytest's come back
            signal.signal(sig, handler)
    assert all(server.process.poll() is not None for server in started)  # stopped on the way out
    launcher._signal_group(started[0].process.pid, signal.SIGTERM)  # a group already gone is no error


def test_a_check_through_the_port_that_is_not_answered_200_stops_the_start(tmp_path):
    import http.server
    import threading

    from serve.model import ModelLoadError
    from serve.server import check_invocation

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b'{"status": "Unhealthy"}')

        def log_message(self, *args):
            pass

    frontend = http.server.HTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=frontend.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ModelLoadError, match=r"GET /ping on 127.0.0.1:\d+ answered 503: b'\{\"status\""):
            check_invocation("127.0.0.1", frontend.server_address[1], timeout=10, multi_model=False)
    finally:
        frontend.shutdown()
        frontend.server_close()


def test_no_worker_ready_by_the_startup_deadline_is_not_ready_and_a_ready_mark_is(tmp_path):
    # Without this, MMS keeps /ping green while retrying a worker and every /invocations hangs. The deadline is
    # judged on an injected clock: a real worker here can start within a second (measured: 0.9 s), so no
    # wall-clock timeout can stand for "never ready". The frontend is a live process that writes no mark.
    import threading

    from serve.config import read_config
    from serve.server import ModelServer

    server = ModelServer(tmp_path, read_config({}), "127.0.0.1", free_port())
    server.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        readings = iter([0.0, 5.0, 10.0, 10.5])  # seconds on the fake clock, one per check
        assert server.wait_ready(10.0, threading.Event(), clock=lambda: next(readings)) is False
        assert next(readings) == 10.5  # it gave up at the first reading past the deadline, not later
        (server.workdir / "worker-9000.ready").touch()  # what a worker writes once its model answers
        assert server.wait_ready(10.0, threading.Event(), clock=iter([0.0]).__next__) is True
    finally:
        server.process.kill()
        server.process.wait()
        shutil.rmtree(server.workdir, ignore_errors=True)


def test_a_port_in_use_ends_the_server_saying_so(trained_model_dir):
    with socket.socket() as taken:
        port = free_port()
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = serve_expecting_exit("--model-dir", str(trained_model_dir), "--host", "127.0.0.1", "--port",
                                      str(port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is not available" in result.stdout and READY_MARK not in result.stdout


def test_ready_is_said_after_an_invocation_through_the_real_port_answered(server):
    # the launcher's own lines, in its one stream (the handler's "status=200" line reaches the log through the
    # worker's output, asynchronously, and CI once saw it after "ready")
    log = server.log()
    checked = log.index(f"checked: POST /invocations on port {server.base.rsplit(':', 1)[1]} answered 200")
    assert log.index("checked: GET /ping on port") < checked < log.index(READY_MARK), log


def test_serve_help_is_usage():
    result = subprocess.run([sys.executable, "-m", "serve", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0
    for needed in ("--model-dir", "--port", "SAGEMAKER_BIND_TO_PORT", "SAGEMAKER_MODEL_SERVER_WORKERS", "example:",
                   "curl -H \"Content-Type: image/jpeg\"", "default 127.0.0.1"):
        assert needed in " ".join(result.stdout.split()), needed
    assert "multi-model-server with this project's handler service" not in result.stdout  # internals stay in the code


def test_only_the_image_listens_on_every_interface():
    # outside the image nothing reaches the server from another machine unless --host says so; inside it,
    # SageMaker reaches the container's port from outside the container (the Docker stage serves through -p)
    entry = (REPO / "docker" / "serve" / "serve").read_text().replace("\\\n", " ")  # continued lines joined
    assert 'serve="/opt/venv/bin/python -m serve --host 0.0.0.0"' in entry
    starts = [line for line in entry.splitlines() if line.strip().startswith("exec ")]
    assert len(starts) == 3 and all('$serve "$@"' in line for line in starts)  # as itself, model-server, root
