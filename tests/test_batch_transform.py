"""Batch transform: what the container answers SageMaker (GET /execution-parameters, the SAGEMAKER_*
batch variables), scripts/transform.py against a local AWS (moto), and its summary of .out files.

The end-to-end run, transform.py --local on the serving image with a corrupt file and a non-image
among the photos, is in tests/test_cloud_docker.py (CI's Docker stage); its job loop
(scripts/local_transform.py) runs here against the live server.
"""

from __future__ import annotations

import csv
import json
import re
import zipfile

import boto3
import pytest
from moto_aws import REGION, ROLE, SERVE_IMAGE
from PIL import Image
from serving import request, running_server

from scripts import local_transform, transform, transform_results
from serve import server
from serve.config import ConfigError, execution_parameters, read_config
from serve.mms_plugins import build

# ---------------------------------------------------------------- the container


def test_execution_parameters_default_to_one_image_per_request_workers_and_the_payload_limit(monkeypatch):
    monkeypatch.setattr("serve.config.usable_cpus", lambda: 8)
    assert execution_parameters(read_config({"SAGEMAKER_BATCH": "true"})) == {
        "MaxConcurrentTransforms": 4, "BatchStrategy": "SingleRecord", "MaxPayloadInMB": 6}


def test_the_jobs_batch_variables_are_honoured(monkeypatch):
    monkeypatch.setattr("serve.config.usable_cpus", lambda: 8)
    config = read_config({"SAGEMAKER_BATCH": "True", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "2",
                          "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100", "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD"})
    assert config.batch and config.max_payload_bytes == 100 << 20
    # two requests at a time need two workers, not four; each gets the cores the others leave
    assert (config.workers, config.threads_per_worker) == (2, 4)
    assert execution_parameters(config) == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MultiRecord",
                                            "MaxPayloadInMB": 100}
    # an explicit worker count still wins
    assert read_config({"SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "2", "SAGEMAKER_MODEL_SERVER_WORKERS": "3"}).workers == 3


@pytest.mark.parametrize("env, message", [
    ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "101"}, "between 1 and 100"),
    ({"SAGEMAKER_BATCH_STRATEGY": "EVERYTHING"}, "SINGLE_RECORD, MULTI_RECORD"),
    ({"SAGEMAKER_BATCH": "maybe"}, "expected true or false"),
    ({"SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "0"}, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS must be between 1"),
])
def test_bad_batch_variables_are_refused_naming_them(env, message):
    with pytest.raises(ConfigError, match=message):
        read_config(env)


def test_the_plugin_jar_holds_the_endpoint_and_its_service_file(tmp_path):
    jar = build.build(tmp_path / "plugins.jar")
    with zipfile.ZipFile(jar) as archive:
        assert "dogclassifier/mms/ExecutionParameters.class" in archive.namelist()
        assert archive.read(build.SERVICE_FILE).decode().split() == build.SERVICES


def test_without_a_jdk_a_batch_job_refuses_to_start_and_an_endpoint_warns(monkeypatch, caplog):
    def no_jdk():
        raise build.PluginBuildError("javac not found")

    monkeypatch.setattr(server, "plugin_jar", no_jdk)
    with pytest.raises(ConfigError, match="SAGEMAKER_BATCH is set but GET /execution-parameters cannot be served"):
        server.find_plugins(read_config({"SAGEMAKER_BATCH": "true"}))
    assert server.find_plugins(read_config({})) is None
    assert "GET /execution-parameters is not served" in caplog.text
    # a multi-model endpoint without its guarded /models would load any folder or URL: it does not start
    with pytest.raises(ConfigError, match="SAGEMAKER_MULTI_MODEL is set but /models cannot be restricted"):
        server.find_plugins(read_config({"SAGEMAKER_MULTI_MODEL": "true"}))


def test_the_live_server_answers_execution_parameters_as_the_job_set_them(trained_model_dir, tmp_path):
    env = {"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "3", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}
    with running_server(trained_model_dir, env) as batch:
        local_job_sends_every_file_under_its_input(batch.base, tmp_path)
        status, headers, body = request(f"{batch.base}/execution-parameters")
        assert status == 200 and headers["content-type"] == "application/json"
        assert json.loads(body) == {"MaxConcurrentTransforms": 3, "BatchStrategy": "SingleRecord", "MaxPayloadInMB": 20}
        status, headers, body = request(f"{batch.base}/execution-parameters", b"{}", method="POST")
        assert status == 405 and headers["allow"] == "GET" and "GET only" in json.loads(body)["error"]
        assert request(f"{batch.base}/ping")[0] == 200
        assert "batch transform: GET /execution-parameters answers" in batch.log()


def local_job_sends_every_file_under_its_input(url: str, tmp_path) -> None:
    """transform.py --local's job loop: every file under the folder (subfolders too, links not followed), the
    container's limits where the job gives none, a refused file's JSON error in its .out, a file over the payload
    limit not sent."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    (photos / "kennel").mkdir(parents=True)
    Image.new("RGB", (64, 48), (200, 40, 40)).save(photos / "a.jpg", "JPEG")
    Image.new("RGB", (64, 48), (40, 200, 40)).save(photos / "kennel" / "b.png", "PNG")
    (photos / "notes.txt").write_text("not a photo\n")
    (photos / "big.jpg").write_bytes(b"\xff\xd8" + bytes(2 << 20))  # over the 1 MB this job allows
    (tmp_path / "secret.jpg").write_bytes(b"outside the input folder")
    (photos / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    ran = local_transform.run(url, photos, out, transform.CONTENT_TYPE, transform.ACCEPT, max_payload_mb=1)
    assert ran == {"MaxConcurrentTransforms": 3, "MaxPayloadInMB": 1, "files": 4}  # 3: the container's answer
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.out")) == [
        "a.jpg.out", "big.jpg.out", "kennel/b.png.out", "notes.txt.out"]
    rows = {row.file: row for row in transform_results.gather(str(photos), str(out))}
    assert rows["a.jpg"].label and rows["kennel/b.png"].label and not rows["a.jpg"].error
    assert "is not a decodable image" in rows["notes.txt"].error
    assert "more than the job's MaxPayloadInMB of 1: not sent" in rows["big.jpg"].error


# ---------------------------------------------------------------- the summary of .out files

ANSWER = {"label": "001.Affenpinscher", "index": 0, "probability": 0.91,
          "top_k": [{"label": "001.Affenpinscher", "index": 0, "probability": 0.91},
                    {"label": "002.Afghan_hound", "index": 1, "probability": 0.05}]}


def test_outputs_are_matched_with_or_without_the_input_folder_in_their_path():
    matched = transform_results.match_outputs(["a.jpg", "sub/b.jpg", "c.jpg"],
                                              ["a.jpg.out", "photos/sub/b.jpg.out", "notes.txt"])
    assert matched == {"a.jpg": "a.jpg.out", "sub/b.jpg": "photos/sub/b.jpg.out", "c.jpg": None}


def test_every_input_file_is_one_row_errors_included(tmp_path):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    for name in ("a.jpg", "b.jpg", "notes.txt", "sub/c.jpg"):
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        (inputs / name).write_bytes(b"x")
    outputs.mkdir()
    (outputs / "a.jpg.out").write_text(json.dumps(ANSWER))
    (outputs / "notes.txt.out").write_text(json.dumps({"error": "image is not a decodable image"}))
    (outputs / "sub").mkdir()
    (outputs / "sub" / "c.jpg.out").write_bytes(b"\x00garbage")
    rows = transform_results.gather(f"file://{inputs}", str(outputs))
    transform_results.write_csv(rows, tmp_path / "summary.csv")
    with open(tmp_path / "summary.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [row["file"] for row in table] == ["a.jpg", "b.jpg", "notes.txt", "sub/c.jpg"]
    assert table[0] == {"file": "a.jpg", "label": "001.Affenpinscher", "probability": "0.910000",
                        "top_k": "001.Affenpinscher:0.9100;002.Afghan_hound:0.0500", "error": ""}
    assert table[1]["error"] == transform_results.NO_OUTPUT and table[1]["label"] == ""
    assert table[2]["error"] == "image is not a decodable image"
    assert table[3]["error"].startswith("output is not JSON")


# ---------------------------------------------------------------- transform.py against moto

MODEL_DATA = "s3://dog-models/dog-classifier-v1/model.tar.gz"
PHOTOS = "s3://dog-data/photos"
PREDICTIONS = "s3://dog-data/predictions"


def s3():
    return boto3.client("s3", region_name=REGION, aws_access_key_id="test-setup", aws_secret_access_key="x")


def start(*extra: str) -> int:
    return transform.main(["--image-uri", SERVE_IMAGE, "--role", ROLE, "--model-data", MODEL_DATA,
                           "--input", PHOTOS, "--output", PREDICTIONS, *extra])


def test_transform_creates_a_model_then_a_job_over_the_prefix_as_a_folder(moto, capsys):
    assert start("--instance-count", "2", "--instance-type", "ml.c5.xlarge") == 0
    out = capsys.readouterr().out
    model = moto.request("CreateModel")
    job = moto.request("CreateTransformJob")
    assert model["PrimaryContainer"] == {"Image": SERVE_IMAGE, "ModelDataUrl": MODEL_DATA, "Environment": {}}
    assert model["ExecutionRoleArn"] == ROLE and model["EnableNetworkIsolation"] is True
    assert re.fullmatch(r"dog-transform-\d{8}-\d{6}-\d{3}", job["TransformJobName"])
    assert job["ModelName"] == model["ModelName"] == f"{job['TransformJobName']}-model"
    assert job["TransformInput"] == {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                                     "S3Uri": f"{PHOTOS}/"}},
                                     "ContentType": "application/x-image"}  # SplitType None: a file per request
    assert job["TransformOutput"] == {"S3OutputPath": PREDICTIONS, "Accept": "application/json"}
    assert job["TransformResources"] == {"InstanceType": "ml.c5.xlarge", "InstanceCount": 2}
    # unset: SageMaker asks the container (GET /execution-parameters)
    assert not {"MaxConcurrentTransforms", "MaxPayloadInMB", "BatchStrategy"} & set(job)
    assert f"reuse it with --model-name {model['ModelName']}" in out and "transform job: dog-transform-" in out


def test_transform_passes_the_limits_it_is_given_and_reuses_a_model(moto):
    assert start("--job-name", "dog-first") == 0
    model = moto.request("CreateModel")["ModelName"]
    moto.reset_recording()
    assert transform.main(["--model-name", model, "--input", PHOTOS, "--output", PREDICTIONS, "--max-payload", "20",
                           "--max-concurrent", "4", "--job-name", "dog-second"]) == 0
    assert moto.requests("CreateModel") == []
    job = moto.request("CreateTransformJob")
    assert (job["ModelName"], job["MaxPayloadInMB"], job["MaxConcurrentTransforms"]) == (model, 20, 4)


def test_the_local_aws_refuses_a_job_of_a_missing_model_and_a_reused_job_name(moto, capsys):
    assert transform.main(["--model-name", "dog-nothing", "--input", PHOTOS, "--output", PREDICTIONS]) == 1
    assert "argument --model-name: no model dog-nothing" in capsys.readouterr().err
    assert moto.requests("CreateTransformJob") == []
    with pytest.raises(Exception, match="Could not find model"):  # had it not looked first
        boto3.client("sagemaker", region_name=REGION).create_transform_job(
            TransformJobName="dog-x", ModelName="dog-nothing", TransformInput={"DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": PHOTOS}}}, TransformOutput={"S3OutputPath": PREDICTIONS},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    assert start("--job-name", "dog-once") == 0
    with pytest.raises(Exception, match="must be unique"):  # what AWS answers a second job of one name
        boto3.client("sagemaker", region_name=REGION).create_transform_job(
            TransformJobName="dog-once", ModelName="dog-once-model", TransformInput={"DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": PHOTOS}}}, TransformOutput={"S3OutputPath": PREDICTIONS},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    capsys.readouterr()
    moto.reset_recording()
    assert start("--job-name", "dog-once") == 1  # the script asks first, and creates nothing
    assert "argument --job-name: a transform job dog-once exists already" in capsys.readouterr().err
    assert [r["operation"] for r in moto.requests()] == ["DescribeTransformJob"]


def upload(prefix: str, files: dict[str, bytes]) -> None:
    bucket, key = prefix.removeprefix("s3://").split("/", 1)
    client = s3()
    if bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=bucket)
    for name, data in files.items():
        client.put_object(Bucket=bucket, Key=f"{key}/{name}", Body=data)


def test_wait_and_summarize_a_job_that_skipped_a_file_as_sagemaker_does(moto, tmp_path, monkeypatch, capsys):
    # moto's job completes at once and writes nothing: the .out files are what SageMaker writes, and
    # the job's status what SageMaker reports when a file got no output (Failed, with its reason)
    upload(PHOTOS, {"a.jpg": b"jpeg", "b.jpg": b"jpeg", "broken.jpg": b"\xff\xd8"})
    upload(PREDICTIONS, {"a.jpg.out": json.dumps(ANSWER).encode(), "b.jpg.out": json.dumps(ANSWER).encode()})
    upload("s3://dog-data/photos-old", {"z.jpg": b"jpeg"})  # beside the prefix, not under it

    def failed(**kwargs):
        kwargs["parsed"].update(TransformJobStatus="Failed", FailureReason="ClientError: See job logs for more "
                                                                           "information")

    from test_cloud_scripts import rewrite_answers

    rewrite_answers(monkeypatch, "DescribeTransformJob", failed)
    assert start("--wait", "--summarize", str(tmp_path / "predictions.csv")) == 1
    captured = capsys.readouterr()
    assert "is Failed: ClientError" in captured.err
    assert "(3 files, 2 classified, 1 not)" in captured.out and "broken.jpg: no output" in captured.out
    with open(tmp_path / "predictions.csv") as handle:
        assert [row["file"] for row in csv.DictReader(handle)] == ["a.jpg", "b.jpg", "broken.jpg"]
    # alone, for a job that has ended
    assert transform.main(["--summarize", str(tmp_path / "again.csv"), "--input", PHOTOS, "--output", PREDICTIONS,
                           "--region", REGION]) == 1
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "predictions.csv").read_text()


@pytest.mark.parametrize("args, message", [
    (["--input", PHOTOS, "--output", PREDICTIONS], "give --model-data or --model-name"),
    (["--model-data", MODEL_DATA, "--input", PHOTOS, "--output", PREDICTIONS], "needs --image-uri and --role"),
    (["--model-name", "m", "--input", "photos", "--output", PREDICTIONS], "argument --input: a transform job needs"),
    (["--model-name", "m", "--input", PHOTOS, "--output", PREDICTIONS, "--max-payload", "101"], "at most 100"),
    (["--model-name", "m", "--input", PHOTOS, "--output", PREDICTIONS, "--summarize", "x.csv"], "needs --wait"),
    (["--model-name", "m", "--input", PHOTOS, "--output", PREDICTIONS, "--local"], "not with --local"),
    (["--model-name", "m", "--input", "s3://Bad_Bucket/x", "--output", PREDICTIONS], "bucket name"),
])
def test_transform_refuses_bad_input_before_calling_aws(args, message, moto, capsys):
    _refused(args, message, moto, capsys)


@pytest.mark.parametrize("flags, message", [
    (["--instance-count", "2"], "argument --instance-count: --local runs one container"),
    (["--local-port", "70000"], "a TCP port is at most 65535"),
])
def test_local_mode_refuses_what_one_container_here_cannot_do(flags, message, moto, tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "model.tar.gz").write_bytes(b"x")
    _refused(["--local", "--image-uri", "dog-classifier-serve:local", "--role", ROLE, "--model-data",
              str(tmp_path / "model.tar.gz"), "--input", str(tmp_path / "photos"), "--output", str(tmp_path / "out"),
              *flags], message, moto, capsys)


def _refused(args, message, moto, capsys):
    with pytest.raises(SystemExit) as exit_:
        transform.main([*args, "--region", REGION])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert moto.requests() == []
