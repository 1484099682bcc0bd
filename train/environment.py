"""The one place that reads the SageMaker training environment.

Everything else takes the plain `TrainingEnvironment` built here. Flags (PathOverrides)
win over environment variables, which win over the /opt/ml defaults, so the same
program runs in a SageMaker job, in `docker run` with /opt/ml mounted, and on a
laptop with plain directories.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path

from train.errors import TrainingError
from train.hyperparameters import PathOverrides

SPLITS = ("train", "valid", "test")
FAILURE_COPY_ENV = "TRAIN_FAILURE_REASON_COPY"
DEBUG_HOOK_CONFIG_ENV = "SMDEBUG_CONFIG_FILE_PATH"  # smdebug's own variable for the hook config


@dataclasses.dataclass(frozen=True)
class TrainingEnvironment:
    train_dir: Path | None  # None only when features_dir stands in for the images
    valid_dir: Path | None
    test_dir: Path | None  # optional: without it the job reports no test metrics
    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    failure_file: Path
    pretrained_dir: Path | None
    num_gpus: int | None  # None: whatever CUDA reports
    hosts: tuple[str, ...]
    current_host: str
    debug_hook_config: Path | None = None  # SageMaker Debugger's hook config, when the job has one
    tensorboard_dir: Path = Path("/opt/ml/output/tensorboard")  # TensorBoardOutputConfig's default LocalPath
    features_dir: Path | None = None  # a featurize job's output: train the head on it, no images needed

    @property
    def host_rank(self) -> int:
        return self.hosts.index(self.current_host)


def base_dir_from(environ: Mapping[str, str], overrides: PathOverrides) -> Path:
    return overrides.base_dir or Path(environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))


def failure_file_from(environ: Mapping[str, str], overrides: PathOverrides) -> Path:
    """Where the failure reason goes; usable even when the rest of the environment is broken."""
    return base_dir_from(environ, overrides) / "output" / "failure"


def failure_copy_from(environ: Mapping[str, str]) -> Path | None:
    """A second place for the failure reason, set by the training image's `train` wrapper: the
    sagemaker-training toolkit replaces output/failure with its own multi-line message."""
    value = environ.get(FAILURE_COPY_ENV)
    return Path(value) if value else None


def read_environment(environ: Mapping[str, str], overrides: PathOverrides) -> TrainingEnvironment:
    base = base_dir_from(environ, overrides)
    features_dir = overrides.features_dir or _channel(environ, base, "features")
    if features_dir is not None:
        train_dir = valid_dir = test_dir = None
    else:
        train_dir, valid_dir, test_dir = _data_dirs(environ, overrides, base)
    hosts = tuple(_json_list(environ, "SM_HOSTS") or [socket.gethostname()])
    current_host = environ.get("SM_CURRENT_HOST", hosts[0])
    if current_host not in hosts:
        raise TrainingError(f"SM_CURRENT_HOST {current_host!r} is not in SM_HOSTS {list(hosts)}")
    return TrainingEnvironment(
        train_dir=train_dir,
        valid_dir=valid_dir,
        test_dir=test_dir,
        model_dir=overrides.model_dir or Path(environ.get("SM_MODEL_DIR", base / "model")),
        output_data_dir=overrides.output_data_dir
        or Path(environ.get("SM_OUTPUT_DATA_DIR", base / "output" / "data")),
        checkpoint_dir=overrides.checkpoint_dir or _checkpoint_dir(environ, base),
        failure_file=failure_file_from(environ, overrides),
        pretrained_dir=overrides.pretrained_dir or _channel(environ, base, "pretrained"),
        num_gpus=_int(environ, "SM_NUM_GPUS", default=None),
        hosts=hosts,
        current_host=current_host,
        debug_hook_config=_debug_hook_config(environ, base),
        tensorboard_dir=overrides.tensorboard_dir or base / "output" / "tensorboard",
        features_dir=features_dir,
    )


def _checkpoint_dir(environ: Mapping[str, str], base: Path) -> Path:
    """SageMaker syncs one S3 prefix into /opt/ml/checkpoints, and a tuning job gives all its trials
    the same prefix: each job keeps its checkpoint under its own name (SageMaker sets
    TRAINING_JOB_NAME; a spot restart keeps it), so a trial never finds another trial's."""
    job_name = environ.get("TRAINING_JOB_NAME", "").strip()
    return base / "checkpoints" / job_name if job_name and "/" not in job_name else base / "checkpoints"


def _debug_hook_config(environ: Mapping[str, str], base: Path) -> Path | None:
    """SageMaker writes input/config/debughookconfig.json for a job with a DebuggerHookConfig."""
    if environ.get(DEBUG_HOOK_CONFIG_ENV):
        return Path(environ[DEBUG_HOOK_CONFIG_ENV])
    default = base / "input" / "config" / "debughookconfig.json"
    return default if default.is_file() else None


def _data_dirs(environ, overrides: PathOverrides, base: Path) -> tuple[Path, Path, Path | None]:
    """Per-split channels (train/valid/test), or one channel holding the three folders.

    The single channel is `--data-dir`, else SM_CHANNEL_TRAINING (the SDK's default
    channel name, and how dogImages was uploaded: s3://.../dogImages/{train,valid,test}).
    """
    single = overrides.data_dir or _channel(environ, base, "training")
    found: dict[str, Path | None] = {}
    for split in SPLITS:
        explicit = getattr(overrides, f"{split}_dir")
        from_channel = _channel(environ, base, split)
        if explicit is not None:
            found[split] = explicit
        elif from_channel is not None:
            found[split] = from_channel
        elif single is not None and (single / split).is_dir():
            found[split] = single / split
        else:
            found[split] = None
    if single is not None and not single.is_dir():
        raise TrainingError(f"data folder {single} does not exist")
    for split in ("train", "valid"):
        if found[split] is None:
            where = f"{single} has no {split}/ folder" if single else "no data channel was given"
            raise TrainingError(
                f"no {split} split: {where}; pass --data-dir DIR (holding train/ valid/ test/) "
                f"or --{split}-dir DIR, or give the job a '{split}' or 'training' channel"
            )
        if not found[split].is_dir():
            raise TrainingError(f"{split} folder {found[split]} does not exist")
    if found["test"] is not None and not found["test"].is_dir():
        raise TrainingError(f"test folder {found['test']} does not exist")
    return found["train"], found["valid"], found["test"]


def _channel(environ: Mapping[str, str], base: Path, name: str) -> Path | None:
    value = environ.get(f"SM_CHANNEL_{name.upper()}")
    if value:
        return Path(value)
    # `docker run IMAGE train` without the toolkit's variables: look where SageMaker mounts channels.
    mounted = base / "input" / "data" / name
    return mounted if mounted.is_dir() else None


def _json_list(environ: Mapping[str, str], key: str) -> list[str] | None:
    raw = environ.get(key)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise TrainingError(f"{key} is not JSON: {raw!r}") from None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise TrainingError(f"{key} must be a non-empty JSON list of host names, got {raw!r}")
    return value


def _int(environ: Mapping[str, str], key: str, default):
    raw = environ.get(key)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise TrainingError(f"{key} must be an integer, got {raw!r}") from None


def check_writable(env: TrainingEnvironment) -> None:
    """The folders the job writes, tried before any data is read: a bad --model-dir is found in a second,
    not after hours of training. (A disk that fills up later is still found when the write fails.)"""
    folders = [("the model or report", "model dir", env.model_dir),
               ("the model or report", "output data dir", env.output_data_dir),
               ("checkpoints", "checkpoint dir", env.checkpoint_dir)]
    for what, label, folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
                pass
        except OSError as error:
            raise TrainingError(f"cannot write {what}: {label} {folder} is not writable ({error.strerror or error}); "
                                "checked before reading any data") from error
