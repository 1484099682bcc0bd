"""scripts/invoke.py: against the real serving stack (--url) and, stubbed, against sagemaker-runtime."""

from __future__ import annotations

import io
import json
import subprocess

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from conftest import REPO, SDK2_PYTHON, environment_without_pythonpath
from PIL import Image
from serving import running_server

from scripts.invoke import main as invoke_main


@pytest.fixture
def jpeg(tmp_path):
    path = tmp_path / "green.jpg"
    Image.new("RGB", (200, 150), (40, 170, 60)).save(path, "JPEG")
    return path


def test_url_against_the_serving_stack_here_and_under_sdk2(trained_model_dir, jpeg, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    with running_server(trained_model_dir) as server:
        assert invoke_main([str(jpeg), "--url", server.base, "--top-k", "2"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{jpeg}: ") and out.count("\n    ") == 2
        # SDK 2's environment (make setup-sdk2) answers the same: invoke.py needs no SageMaker SDK
        sdk2 = subprocess.run([str(SDK2_PYTHON), "scripts/invoke.py", str(jpeg), "--url", server.base, "--top-k", "2"],
                              cwd=REPO, capture_output=True, text=True, timeout=120,
                              env=environment_without_pythonpath())
        assert (sdk2.returncode, sdk2.stdout) == (0, out), sdk2.stderr
        assert invoke_main([str(jpeg), str(broken), "--url", f"{server.base}/invocations"]) == 1
        captured = capsys.readouterr()
        assert f"{jpeg}: " in captured.out
        assert f"{broken}: error: HTTP 400: image is not a decodable image" in captured.err
        # A folder (dogImages/test's layout): every image in it and its subfolders, one line each.
        photos = tmp_path / "photos"
        for index, name in enumerate(["001.Red/a.jpg", "001.Red/b.png", "002.Green/c.JPG"]):
            (photos / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (60, 40), (40 * index, 170, 60)).save(photos / name, "PNG" if name.endswith("png")
                                                                    else "JPEG")
        (photos / "README.txt").write_text("not an image")
        assert invoke_main([str(photos), "--url", server.base]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split(": ")[0] for line in lines] == [str(photos / n) for n in
                                                           ("001.Red/a.jpg", "001.Red/b.png", "002.Green/c.JPG")]


def test_a_local_endpoint_is_its_container_on_the_local_port(trained_model_dir, jpeg, tmp_path, capsys):
    # deploy.py --local publishes the serving container on 127.0.0.1:<--local-port>; the real serving stack
    # on that port stands in for it here (Docker is not needed; CI's Docker stage runs the container).
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    with running_server(trained_model_dir) as server:
        port = server.base.rsplit(":", 1)[1]
        assert invoke_main([str(jpeg), "--endpoint-name", "dogs", "--local", "--local-port", port]) == 0
        assert f"{jpeg}: " in capsys.readouterr().out
        assert invoke_main([str(broken), "--endpoint-name", "dogs", "--local", "--local-port", port]) == 1
        assert f"{broken}: error: HTTP 400: image is not a decodable image" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["missing.jpg", "--url", "http://127.0.0.1:1"], "missing.jpg: no such file or folder"),
    (["{empty}", "--url", "http://127.0.0.1:1"], "holds no image files"),
    (["{jpeg}"], "one of the arguments --endpoint-name --url is required"),
    (["{jpeg}", "--url", "http://x", "--endpoint-name", "e"], "not allowed with argument"),
    (["{jpeg}", "--url", "127.0.0.1:8080"], "--url must start with http://"),
    (["{jpeg}", "--url", "http://x", "--top-k", "0"], "--top-k must be at least 1"),
    (["{jpeg}", "--url", "http://x", "--local"], "argument --local: needs --endpoint-name"),
])
def test_bad_arguments_name_the_flag_or_file(args, message, jpeg, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no image")
    with pytest.raises(SystemExit) as exit_:
        invoke_main([a.replace("{jpeg}", str(jpeg)).replace("{empty}", str(tmp_path / "empty")) for a in args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def runtime_client():
    return boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def test_endpoint_request_and_answer(jpeg, capsys):
    # moto's invoke_endpoint cannot carry a binary body (it answers 500), so this one call is stubbed
    # with botocore's Stubber, which still validates the request against the real API model.
    client = runtime_client()
    answer = {"label": "Green Square", "index": 1, "probability": 0.9,
              "top_k": [{"label": "Green Square", "index": 1, "probability": 0.9}]}
    payload = json.dumps(answer).encode()
    with Stubber(client) as stub:
        stub.add_response("invoke_endpoint",
                          {"Body": StreamingBody(io.BytesIO(payload), len(payload)), "ContentType": "application/json"},
                          {"EndpointName": "dog-classifier", "ContentType": "image/jpeg", "Accept": "application/json",
                           "CustomAttributes": "top_k=1", "Body": jpeg.read_bytes()})
        assert invoke_main([str(jpeg), "--endpoint-name", "dog-classifier", "--top-k", "1"], client=client) == 0
        stub.assert_no_pending_responses()
    assert "Green Square (0.900)" in capsys.readouterr().out


def test_endpoint_model_error_is_reported_with_the_containers_message(jpeg, capsys):
    client = runtime_client()
    with Stubber(client) as stub:
        stub.add_client_error("invoke_endpoint", service_error_code="ModelError", http_status_code=424,
                              service_message='{"error": "unsupported content type"}')
        assert invoke_main([str(jpeg), "--endpoint-name", "dog-classifier"], client=client) == 1
    assert "ModelError: unsupported content type" in capsys.readouterr().err
