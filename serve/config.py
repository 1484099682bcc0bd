"""The one place the serving side reads its environment (SageMaker's SAGEMAKER_* variables and ours)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_MAX_PAYLOAD_MB = 6  # a real-time endpoint's request limit
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
DEFAULT_MAX_INSTANCES = 64
DEFAULT_TOP_K = 5
READY_DIR_ENV = "SERVE_READY_DIR"  # where workers mark that their model is loaded (set by the launcher)
PRECISIONS = ("auto", "int8", "fp32")
MAX_PORT = 32766  # multi-model-server 1.1 refuses ports >= 32767 ("Invalid port number")


class ConfigError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    model_dir: Path
    port: int
    workers: int
    threads_per_worker: int
    max_payload_bytes: int
    max_image_pixels: int
    max_instances: int
    default_accept: str
    response_timeout_s: int
    startup_timeout_s: int
    precision: str = "auto"  # SERVE_PRECISION: auto (int8 when the artifact has it), int8, fp32


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def read_config(environ: Mapping[str, str] = os.environ) -> ServingConfig:
    base = Path(environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    cpus = cpu_count()
    # Defaults sized to the machine: two ONNX Runtime threads per worker on ml.m5.large's
    # two vCPUs measured best; workers x threads never exceeds the cores.
    workers = _int(environ, "SAGEMAKER_MODEL_SERVER_WORKERS", max(1, cpus // 2), minimum=1)
    threads = _int(environ, "ORT_INTRA_OP_THREADS", max(1, cpus // workers), minimum=1)
    return ServingConfig(
        model_dir=base / "model",
        port=_int(environ, "SAGEMAKER_BIND_TO_PORT", 8080, minimum=1, maximum=MAX_PORT),
        workers=workers,
        threads_per_worker=threads,
        max_payload_bytes=_int(environ, "SAGEMAKER_MAX_PAYLOAD_IN_MB", DEFAULT_MAX_PAYLOAD_MB, minimum=1) << 20,
        max_image_pixels=_int(environ, "MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS, minimum=1),
        max_instances=_int(environ, "MAX_BATCH_INSTANCES", DEFAULT_MAX_INSTANCES, minimum=1),
        default_accept=environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "application/json",
        response_timeout_s=_int(environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60, minimum=1),
        startup_timeout_s=_int(environ, "SAGEMAKER_STARTUP_TIMEOUT", 600, minimum=1),
        precision=_choice(environ, "SERVE_PRECISION", "auto", PRECISIONS),
    )


def _choice(environ, key: str, default: str, choices: tuple[str, ...]) -> str:
    value = (environ.get(key) or default).strip().lower()
    if value not in choices:
        raise ConfigError(f"{key}={environ.get(key)!r}: expected one of {', '.join(choices)}")
    return value


def _int(environ, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = environ.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(f"{key} must be between {minimum} and {maximum or 'any'}, got {value}")
    return value
