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
