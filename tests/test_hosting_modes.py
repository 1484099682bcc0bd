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
    assert moto.request("CreateModel")["PrimaryContainer"]["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    assert client("sagemaker").describe_endpoint(EndpointName="dogs")["EndpointStatus"] == "InService"
    assert "serverless: 3072 MB, up to 8 requests at once; payloads up to 4 MB" in out
    assert "nothing while idle" in out and "/hour" not in out


def test_a_serverless_endpoint_keeps_a_worker_count_given_and_defaults_to_five_requests(moto):
    assert deploy_serverless(MODEL_DATA, "--serverless-memory", "2048", "--env",
                             "SAGEMAKER_MODEL_SERVER_WORKERS=2") == 0
    [variant] = moto.request("CreateEndpointConfig")["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}  # the SDK's default too
    assert moto.request("CreateModel")["PrimaryContainer"]["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}


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
