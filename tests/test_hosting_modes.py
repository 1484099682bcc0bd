"""deploy.py's hosting modes besides instances, against a local AWS (moto with AWS's rules added):
serverless endpoints and asynchronous inference. The container side (read-only root filesystem,
non-root user, cold start) is tested in CI's Docker stage (tests/test_docker.py)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from moto_aws import ROLE, SERVE_IMAGE
from test_cloud_scripts import MODEL_DATA, NEW_MODEL_DATA, client, deploy_dogs

from scripts import deploy

SERVERLESS = ["--serverless-memory", "3072", "--max-concurrency", "8"]


def deploy_serverless(model_data: str, *extra: str) -> int:
    return deploy.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data", model_data, "--endpoint-name",
                        "dogs", *extra])


def test_a_serverless_endpoint_has_a_serverless_variant_and_one_worker(moto, capsys):
    assert deploy_serverless(MODEL_DATA, *SERVERLESS) == 0
    out = capsys.readouterr().out
    [variant] = moto.request("CreateEndpointConfig")["ProductionVariants"]
    assert variant == {"VariantName": "AllTraffic", "ModelName": variant["ModelName"],
                       "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 8}}
    model = moto.request("CreateModel")
    assert model["PrimaryContainer"]["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    # the one hosting mode AWS runs without network isolation, and the script says so
    assert model["EnableNetworkIsolation"] is False
    assert "network isolation: off (AWS's serverless endpoints do not support network isolation)" in out
    assert client("sagemaker").describe_endpoint(EndpointName="dogs")["EndpointStatus"] == "InService"
    assert "serverless: 3072 MB, up to 8 requests at once; payloads up to 4 MB" in out
    assert "nothing while idle" in out and "/hour" not in out


def test_a_serverless_endpoint_keeps_a_worker_count_given_and_defaults_to_five_requests(moto):
    assert deploy_serverless(MODEL_DATA, "--serverless-memory", "2048", "--env",
                             "SAGEMAKER_MODEL_SERVER_WORKERS=2") == 0
    [variant] = moto.request("CreateEndpointConfig")["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}  # the SDK's default too
    assert moto.request("CreateModel")["PrimaryContainer"]["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}


def test_the_local_aws_refuses_an_isolated_model_on_a_serverless_endpoint_as_aws_documents(moto):
    sagemaker = client("sagemaker")
    for name, isolated in (("dogs-isolated", True), ("dogs-open", False)):
        sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE, EnableNetworkIsolation=isolated,
                               PrimaryContainer={"Image": SERVE_IMAGE, "ModelDataUrl": MODEL_DATA})
    serverless = {"VariantName": "AllTraffic", "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}
    with pytest.raises(ClientError, match="network isolation") as error:
        sagemaker.create_endpoint_config(EndpointConfigName="dogs-isolated",
                                         ProductionVariants=[{**serverless, "ModelName": "dogs-isolated"}])
    assert error.value.response["Error"]["Code"] == "ValidationException"
    sagemaker.create_endpoint_config(EndpointConfigName="dogs-open",
                                     ProductionVariants=[{**serverless, "ModelName": "dogs-open"}])


def test_an_instance_endpoint_is_not_turned_serverless_and_the_local_aws_refuses_it_as_aws_does(moto, capsys):
    assert deploy_dogs(MODEL_DATA) == 0
    moto.reset_recording()
    assert deploy_serverless(NEW_MODEL_DATA, *SERVERLESS) == 1
    assert "runs on instances, and AWS cannot turn it into a serverless endpoint" in capsys.readouterr().err
    assert moto.requests("CreateModel") == [] and moto.requests("UpdateEndpoint") == []
    sagemaker = client("sagemaker")
    sagemaker.create_model(ModelName="dogs-serverless", ExecutionRoleArn=ROLE,
                           PrimaryContainer={"Image": SERVE_IMAGE, "ModelDataUrl": MODEL_DATA})
    sagemaker.create_endpoint_config(EndpointConfigName="dogs-serverless", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "dogs-serverless",
        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}])
    with pytest.raises(ClientError, match="cannot convert your instance-based") as error:
        sagemaker.update_endpoint(EndpointName="dogs", EndpointConfigName="dogs-serverless")
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_a_serverless_endpoint_may_move_to_instances(moto):
    assert deploy_serverless(MODEL_DATA, *SERVERLESS) == 0
    moto.reset_recording()
    assert deploy_dogs(NEW_MODEL_DATA) == 0  # AWS allows this direction (not back again)
    [variant] = moto.request("CreateEndpointConfig")["ProductionVariants"]
    assert variant["InstanceType"] == "ml.m5.large" and moto.request("UpdateEndpoint")["EndpointName"] == "dogs"


@pytest.mark.parametrize("args, message", [
    (["--serverless-memory", "1500"], "one of 1024, 2048, 3072, 4096, 5120, 6144"),
    (["--serverless-memory", "2048", "--max-concurrency", "201"], "at most 200"),
    (["--max-concurrency", "4"], "argument --max-concurrency: needs --serverless-memory"),
    (["--serverless-memory", "2048", "--instance-type", "ml.c5.large"], "not with --instance-type"),
    (["--serverless-memory", "2048", "--data-capture", "s3://dog-models/c"], "not with --data-capture"),
    (["--serverless-memory", "2048", "--min-instances", "1", "--max-instances", "2",
      "--target-invocations-per-instance", "5"], "not with --min-instances"),
])
def test_deploy_refuses_serverless_settings_aws_refuses(args, message, moto, capsys):
    with pytest.raises(SystemExit) as exit_:
        deploy_serverless(MODEL_DATA, *args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert moto.requests() == []


# ---------------------------------------------------------------- asynchronous inference

ASYNC = ["--async", "--output", "s3://dog-models/async-answers"]


def test_an_async_endpoint_has_its_output_topics_and_a_container_that_waits_an_hour(moto, capsys):
    topic = "arn:aws:sns:us-east-1:123456789012:dog-answers"
    assert deploy_serverless(MODEL_DATA, *ASYNC, "--failure-output", "s3://dog-models/async-errors",
                             "--success-topic", topic, "--error-topic", f"{topic}-failed",
                             "--max-concurrent-invocations", "4", "--env", "SAGEMAKER_MAX_PAYLOAD_IN_MB=50") == 0
    out = capsys.readouterr().out
    config = moto.request("CreateEndpointConfig")
    assert config["AsyncInferenceConfig"] == {
        "OutputConfig": {"S3OutputPath": "s3://dog-models/async-answers", "S3FailurePath": "s3://dog-models/async-errors",
                         "NotificationConfig": {"SuccessTopic": topic, "ErrorTopic": f"{topic}-failed"}},
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4}}
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"  # async runs on instances
    # InvokeEndpointAsync's InvocationTimeoutSeconds goes up to 3600: the model server must wait as long;
    # a payload size given with --env wins over async's default of 100 MB
    assert moto.request("CreateModel")["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "3600", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "50"}
    assert "asynchronous: requests queued, answers written to s3://dog-models/async-answers" in out
    assert "invoke.py dog.jpg --async --endpoint-name dogs" in out


@pytest.mark.parametrize("args, message", [
    (["--async"], "argument --async: needs --output"),
    (["--output", "s3://dog-models/a"], "argument --output: needs --async"),
    (["--success-topic", "arn:aws:sns:us-east-1:123456789012:t"], "argument --success-topic: needs --async"),
    ([*ASYNC, "--success-topic", "dog-answers"], "expected an SNS topic ARN"),
    ([*ASYNC, "--serverless-memory", "2048"], "no asynchronous serverless endpoints"),
])
def test_deploy_refuses_async_settings_that_cannot_work(args, message, moto, capsys):
    with pytest.raises(SystemExit) as exit_:
        deploy_serverless(MODEL_DATA, *args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert moto.requests() == []


def test_the_async_container_settings_take_an_image_a_real_time_endpoint_refuses(trained_model_dir, tmp_path):
    import io

    from PIL import Image
    from serving import invoke_json, running_server

    from serve.server import mms_properties

    buffer = io.BytesIO()  # a 7.7 MB image: over the real-time limit of 6 MB
    Image.frombytes("RGB", (1600, 1600), bytes(range(256)) * 30000).save(buffer, "BMP")
    big = buffer.getvalue()
    assert len(big) > 6 << 20
    with running_server(trained_model_dir) as real_time:
        status, _, error = invoke_json(real_time.base, big, "image/bmp")
        assert status == 413 and "more than the 6,291,456 allowed" in error["error"]
    with running_server(trained_model_dir, deploy.ASYNC_ENVIRONMENT) as queued:
        status, _, answer = invoke_json(queued.base, big, "image/bmp")
        assert status == 200 and answer["label"]
    from serve.config import read_config

    properties = mms_properties(read_config(deploy.ASYNC_ENVIRONMENT), "127.0.0.1", 8080)
    assert "default_response_timeout=3600\n" in properties


def moto_results(moto, kind: str, *results: dict) -> None:
    """What moto's sagemaker-runtime answers next, in order: `endpoint-results` for InvokeEndpoint,
    `async-endpoint-results` for InvokeEndpointAsync (written to S3 where its answer says, its own bucket)."""
    import json
    import urllib.request

    from moto_aws import ACCOUNT, REGION

    request = urllib.request.Request(f"{moto.url}/moto-api/static/sagemaker/{kind}", method="POST",
                                     data=json.dumps({"account_id": ACCOUNT, "region": REGION,
                                                      "results": list(results)}).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()


def async_invocations(moto) -> list[dict]:
    """InvokeEndpointAsync requests (REST, so not in moto.requests): their headers."""
    return [{k.lower(): v for k, v in entry["headers"].items()} for entry in moto.entries()
            if entry["url"].endswith("/async-invocations")]


def test_invoke_async_uploads_queues_and_prints_the_answer_the_live_server_gave(moto, trained_model_dir, tiny_dataset,
                                                                               tmp_path, capsys):
    import json

    from serving import invoke, running_server

    from scripts import invoke as invoke_script

    image = sorted(tiny_dataset.glob("test/*/*.png"))[0]
    with running_server(trained_model_dir) as live:
        status, _, answer = invoke(live.base, image.read_bytes(), "image/png",
                                   X_Amzn_SageMaker_Custom_Attributes="top_k=2")
        assert status == 200
        _, _, refused = invoke(live.base, b"not an image", "image/png")
    # what SageMaker would write: the container's answer, then (for the second request) its error
    moto_results(moto, "async-endpoint-results", {"data": answer.decode()},
                 {"is_failure": True, "data": refused.decode()})
    s3 = client("s3")
    s3.create_bucket(Bucket="dog-inputs")
    assert invoke_script.main([str(image), "--endpoint-name", "dogs-async", "--async", "--async-input",
                               "s3://dog-inputs/queued", "--invocation-timeout", "1800", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    expected = json.loads(answer)
    assert f"{image}: {expected['label']} ({expected['probability']:.3f})" in out
    [headers] = async_invocations(moto)
    assert headers["x-amzn-sagemaker-content-type"] == "image/png"
    assert headers["x-amzn-sagemaker-accept"] == "application/json"
    assert headers["x-amzn-sagemaker-custom-attributes"] == "top_k=2"
    assert headers["x-amzn-sagemaker-invocationtimeoutseconds"] == "1800"
    bucket, key = headers["x-amzn-sagemaker-inputlocation"].removeprefix("s3://").split("/", 1)
    assert bucket == "dog-inputs" and key.startswith("queued/") and key.endswith(image.name)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == image.read_bytes()
    # the second request fails in the container: SageMaker writes the error to FailureLocation
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"not an image")
    assert invoke_script.main([str(notes), "--endpoint-name", "dogs-async", "--async", "--async-input",
                               "s3://dog-inputs/queued"]) == 1
    err = capsys.readouterr().err
    assert "error: failed (s3://sagemaker-output-" in err and "is not a decodable image" in err


def test_invoke_async_refuses_what_cannot_work(moto, tmp_path, capsys):
    from scripts import invoke as invoke_script

    image = tmp_path / "dog.jpg"
    image.write_bytes(b"x")
    for args, message in ((["--async", "--url", "http://127.0.0.1:8080"], "argument --async: needs --endpoint-name"),
                          (["--endpoint-name", "d", "--invocation-timeout", "60"], "need --async"),
                          (["--endpoint-name", "d", "--async", "--invocation-timeout", "3601"], "at most 3600")):
        with pytest.raises(SystemExit):
            invoke_script.main([str(image), *args])
        assert message in capsys.readouterr().err


# ---------------------------------------------------------------- multi-model endpoints

KENNELS_PREFIX = "s3://dog-models/kennels"


def test_a_multi_model_endpoint_serves_the_prefix_in_the_images_multi_model_mode(moto, capsys):
    assert deploy.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--multi-model", "--model-prefix", KENNELS_PREFIX,
                        "--endpoint-name", "kennels", "--instance-type", "ml.c5.xlarge"]) == 0
    out = capsys.readouterr().out
    container = moto.request("CreateModel")["PrimaryContainer"]
    assert container == {"Image": SERVE_IMAGE, "ModelDataUrl": f"{KENNELS_PREFIX}/", "Mode": "MultiModel",
                         "Environment": {"SAGEMAKER_MULTI_MODEL": "true"}}
    [variant] = moto.request("CreateEndpointConfig")["ProductionVariants"]
    assert variant["InstanceType"] == "ml.c5.xlarge"
    assert f"add one while it runs: aws s3 cp model.tar.gz {KENNELS_PREFIX}/NAME.tar.gz" in out
    assert "invoke.py dog.jpg --target-model NAME.tar.gz --endpoint-name kennels" in out


@pytest.mark.parametrize("args, message", [
    (["--multi-model", "--model-data", MODEL_DATA], "give both"),
    (["--model-prefix", KENNELS_PREFIX], "give both"),
    (["--multi-model", "--model-prefix", KENNELS_PREFIX, "--serverless-memory", "2048"],
     "not with --local, --serverless"),
    (["--multi-model", "--model-prefix", KENNELS_PREFIX, *ASYNC], "no serverless or asynchronous multi-model"),
])
def test_deploy_refuses_multi_model_settings_aws_refuses(args, message, moto, capsys):
    with pytest.raises(SystemExit) as exit_:
        deploy.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert moto.requests() == []


def test_invoke_names_the_target_model_to_sagemaker_and_to_a_multi_model_container(moto, tmp_path, capsys):
    import json

    from test_multi_model import KENNELS, artifact

    from scripts import invoke as invoke_script

    image = tmp_path / "dog.png"
    from PIL import Image

    Image.new("RGB", (90, 70), (40, 160, 60)).save(image)
    # SageMaker: TargetModel names the .tar.gz under the endpoint's prefix. moto 5.2.5 records the request, then
    # fails decoding a binary body as UTF-8 (its 500): what is checked here is what reached it
    assert invoke_script.main([str(image), "--endpoint-name", "kennels", "--target-model", "kennel-a.tar.gz"]) == 1
    assert "error: 500" in capsys.readouterr().err
    sent = [{k.lower(): v for k, v in e["headers"].items()} for e in moto.entries()
            if e["url"].endswith("/endpoints/kennels/invocations")]  # botocore retries a 500: several, all alike
    assert sent and {headers["x-amzn-sagemaker-target-model"] for headers in sent} == {"kennel-a.tar.gz"}
    # a multi-model container on this machine: the same flag reaches /models/NAME/invoke
    from serving import request, running_server

    model = artifact(tmp_path / "models" / "kennel-b" / "model", KENNELS["kennel-b"], 1)
    with running_server(tmp_path, {"SAGEMAKER_MULTI_MODEL": "true", "SAGEMAKER_BASE_DIR": str(tmp_path)}) as mme:
        body = json.dumps({"model_name": "kennel-b", "url": str(model)}).encode()
        assert request(f"{mme.base}/models", body, {"Content-Type": "application/json"}, method="POST")[0] == 200
        capsys.readouterr()
        assert invoke_script.main([str(image), "--url", mme.base, "--target-model", "kennel-b"]) == 0
        out = capsys.readouterr().out
        assert any(f"{image}: {label} (" in out for label in KENNELS["kennel-b"]), out
        assert invoke_script.main([str(image), "--url", mme.base, "--target-model", "kennel-z"]) == 1
        assert "HTTP 404" in capsys.readouterr().err
