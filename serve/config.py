"""The one place the serving side reads its environment (SageMaker's SAGEMAKER_* variables and ours)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from contract.booleans import parse_bool
from contract.cpus import usable_cpus

DEFAULT_MAX_PAYLOAD_MB = 6  # a real-time endpoint's request limit
MAX_BATCH_PAYLOAD_MB = 100  # batch transform's MaxPayloadInMB limit
BATCH_STRATEGIES = ("SINGLE_RECORD", "MULTI_RECORD")  # SAGEMAKER_BATCH_STRATEGY's values
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
# All images of one request together, as decoded: 64 dogImages photos fit (~0.5 MP each, or less after
# JPEG's reduced-size decoding); 64 images at the per-image cap (2.5 G pixels, 10 GB as RGB) do not.
DEFAULT_MAX_REQUEST_PIXELS = 100_000_000
# A 16 x 2,500,000 image is within the pixel cap, but scaling its shorter side to the model's size would
# make the longer one gigapixels long; photos and panoramas stay well inside 20:1.
DEFAULT_MAX_ASPECT_RATIO = 20.0
DEFAULT_MAX_INSTANCES = 64
DEFAULT_TOP_K = 5
READY_DIR_ENV = "SERVE_READY_DIR"  # where workers mark that their model is loaded (set by the launcher)
UNLOAD_PREFIX = "unload-"  # a worker's mark there: this model could not load, unregister it (multi-model)
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
    max_request_pixels: int
    max_aspect_ratio: float
    default_accept: str
    response_timeout_s: int
    startup_timeout_s: int
    precision: str = "auto"  # SERVE_PRECISION: auto (int8 when the artifact has it), int8, fp32
    # batch transform (SageMaker sets these on the container of a transform job)
    batch: bool = False  # SAGEMAKER_BATCH
    batch_strategy: str | None = None  # SAGEMAKER_BATCH_STRATEGY, when the job set one
    max_concurrent_transforms: int | None = None  # SAGEMAKER_MAX_CONCURRENT_TRANSFORMS, when the job set one
    multi_model: bool = False  # SAGEMAKER_MULTI_MODEL: models come and go through POST/DELETE /models
    memory_headroom_mb: int = 256  # SERVE_MEMORY_HEADROOM_MB: kept free beside a model loaded on a multi-model endpoint
    model_root: Path = Path("/opt/ml/models")  # a multi-model endpoint loads folders under it only


def read_config(environ: Mapping[str, str] = os.environ) -> ServingConfig:
    base = Path(environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    cpus = usable_cpus()
    concurrent = _int(environ, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", 0, minimum=1) or None
    # Defaults sized to the machine: two ONNX Runtime threads per worker on ml.m5.large's
    # two vCPUs measured best; workers x threads never exceeds the cores. A transform job that
    # sends at most N requests at once gets at most N workers (more would only hold memory).
    multi_model = _bool(environ, "SAGEMAKER_MULTI_MODEL")
    # one worker per model on a multi-model endpoint (as AWS's own MMS containers have it): each model
    # loaded costs a worker's memory
    default_workers = 1 if multi_model else max(1, cpus // 2)
    workers = _int(environ, "SAGEMAKER_MODEL_SERVER_WORKERS", min(default_workers, concurrent or default_workers),
                   minimum=1)
    threads = _int(environ, "ORT_INTRA_OP_THREADS", max(1, cpus // workers), minimum=1)
    return ServingConfig(
        model_dir=base / "model",
        port=_int(environ, "SAGEMAKER_BIND_TO_PORT", 8080, minimum=1, maximum=MAX_PORT),
        workers=workers,
        threads_per_worker=threads,
        max_payload_bytes=_int(environ, "SAGEMAKER_MAX_PAYLOAD_IN_MB", DEFAULT_MAX_PAYLOAD_MB, minimum=1,
                               maximum=MAX_BATCH_PAYLOAD_MB) << 20,
        max_image_pixels=_int(environ, "MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS, minimum=1),
        max_instances=_int(environ, "MAX_BATCH_INSTANCES", DEFAULT_MAX_INSTANCES, minimum=1),
        max_request_pixels=_int(environ, "MAX_REQUEST_PIXELS", DEFAULT_MAX_REQUEST_PIXELS, minimum=1),
        max_aspect_ratio=float(_int(environ, "MAX_IMAGE_ASPECT_RATIO", int(DEFAULT_MAX_ASPECT_RATIO), minimum=1)),
        default_accept=environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "application/json",
        response_timeout_s=_int(environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60, minimum=1),
        startup_timeout_s=_int(environ, "SAGEMAKER_STARTUP_TIMEOUT", 600, minimum=1),
        precision=_choice(environ, "SERVE_PRECISION", "auto", PRECISIONS),
        batch=_bool(environ, "SAGEMAKER_BATCH"),
        batch_strategy=_choice(environ, "SAGEMAKER_BATCH_STRATEGY", "", ("", *BATCH_STRATEGIES), upper=True) or None,
        max_concurrent_transforms=concurrent,
        multi_model=multi_model,
        memory_headroom_mb=_int(environ, "SERVE_MEMORY_HEADROOM_MB", 256, minimum=0),
        model_root=base / "models",
    )


def _bool(environ, key: str) -> bool:
    try:
        return parse_bool(environ.get(key) or "false")
    except ValueError:
        raise ConfigError(f"{key}={environ.get(key)!r}: expected true or false") from None


def _choice(environ, key: str, default: str, choices: tuple[str, ...], upper: bool = False) -> str:
    value = (environ.get(key) or default).strip()
    value = value.upper() if upper else value.lower()
    if value not in choices:
        raise ConfigError(f"{key}={environ.get(key)!r}: expected one of {', '.join(filter(None, choices))}")
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


def execution_parameters(config: ServingConfig) -> dict:
    """The answer to batch transform's GET /execution-parameters (used where the job left a value unset).

    Keys and BatchStrategy values as CreateTransformJob names them (the SDK's local mode passes them
    on as API values). One image per request: SingleRecord unless the job asked for MULTI_RECORD;
    as many requests at once as there are workers; the payload limit this server enforces.
    """
    return {"MaxConcurrentTransforms": config.max_concurrent_transforms or config.workers,
            "BatchStrategy": "MultiRecord" if config.batch_strategy == "MULTI_RECORD" else "SingleRecord",
            "MaxPayloadInMB": config.max_payload_bytes >> 20}
