"""Request decoding and serving config, without a server."""

import pytest

from serve import codec
from serve.config import ConfigError, read_config


@pytest.mark.parametrize("header, expected", [
    (None, "application/json"), ("", "application/json"), ("*/*", "application/json"),
    ("application/x-npy", "application/x-npy"), ("Application/JSON; charset=utf-8", "application/json"),
    ("text/html, application/x-npy;q=0.8", "application/x-npy"),
])
def test_choose_accept(header, expected):
    assert codec.choose_accept(header, "application/json") == expected


def test_unsupported_accept_is_406_and_lists_what_is_supported():
    with pytest.raises(codec.RequestError) as error:
        codec.choose_accept("text/csv", "application/json")
    assert error.value.status == 406 and "application/x-npy" in error.value.message


@pytest.mark.parametrize("header, expected", [(None, 5), ("top_k=2", 2), ("TOP_K = 3", 3), ("a=1;top_k=1", 1),
                                              ("top_k=500", 10), ("other=1", 5)])
def test_top_k(header, expected):
    assert codec.parse_top_k(header, num_classes=10, default=5) == expected


@pytest.mark.parametrize("header", ["top_k=0", "top_k=-1", "top_k=abc", "top_k=", "top_k=1.5"])
def test_bad_top_k_is_400(header):
    with pytest.raises(codec.RequestError) as error:
        codec.parse_top_k(header, num_classes=10, default=5)
    assert error.value.status == 400 and "top_k" in error.value.message


def test_config_defaults_fit_workers_times_threads_to_the_cores(monkeypatch):
    monkeypatch.setattr("serve.config.usable_cpus", lambda: 8)
    config = read_config({})
    assert (config.workers, config.threads_per_worker) == (4, 2)
    assert config.port == 8080 and config.max_payload_bytes == 6 << 20
    assert str(config.model_dir) == "/opt/ml/model"
    config = read_config({"SAGEMAKER_MODEL_SERVER_WORKERS": "8", "SAGEMAKER_BASE_DIR": "/srv"})
    assert (config.workers, config.threads_per_worker) == (8, 1)
    assert str(config.model_dir) == "/srv/model"
    monkeypatch.setattr("serve.config.usable_cpus", lambda: 2)
    assert (read_config({}).workers, read_config({}).threads_per_worker) == (1, 2)  # ml.m5.large


@pytest.mark.parametrize("env, name", [({"SAGEMAKER_BIND_TO_PORT": "40000"}, "SAGEMAKER_BIND_TO_PORT"),
                                       ({"SAGEMAKER_MODEL_SERVER_WORKERS": "0"}, "SAGEMAKER_MODEL_SERVER_WORKERS"),
                                       ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "six"}, "SAGEMAKER_MAX_PAYLOAD_IN_MB")])
def test_bad_settings_name_the_variable(env, name):
    with pytest.raises(ConfigError, match=name):
        read_config(env)


def test_stage_clock_splits_a_request_into_stages_that_add_up_to_its_latency():
    from serve.handler_service import StageClock

    ticks = iter([10.0, 10.001, 10.002, 10.003, 10.005, 10.0065, 10.0135, 10.0135])  # seconds, injected
    stages = StageClock(clock=lambda: next(ticks))
    for stage in ("decode", "preprocess", "decode", "preprocess", "model", "encode"):  # a batch of two images
        stages.start(stage)
    stages.start(None)
    assert stages.summary() == "parse_ms=1.00 decode_ms=3.00 preprocess_ms=2.50 model_ms=7.00 encode_ms=0.00"
    assert round(stages.total_ms(), 6) == 13.5


def test_normalising_by_lookup_is_bit_identical_to_computing_each_pixel():
    import numpy as np
    from PIL import Image

    from serve.model import Preprocess

    preprocess = Preprocess.from_json({"resize": 40, "crop": 32, "mean": [0.485, 0.456, 0.406],
                                       "std": [0.229, 0.224, 0.225], "interpolation": "bilinear"})
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    cropped = image.resize((53, 40), Image.Resampling.BILINEAR).crop((10, 4, 42, 36))
    per_pixel = (np.asarray(cropped, dtype=np.float32).transpose(2, 0, 1) * (1.0 / (255.0 * preprocess.std))
                 - preprocess.mean / preprocess.std)
    got = preprocess(image)
    assert got.dtype == np.float32 and got.flags["C_CONTIGUOUS"] and np.array_equal(got, per_pixel)
