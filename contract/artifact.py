"""The model artifact `python -m train` writes and serving, fine-tuning and the benchmarks read.

model/
  model.json       classes, preprocessing, metrics, format_version; names the files below
  model.onnx       the float model (model.json's onnx.file)
  model.int8.onnx  the int8 model, when the job made one (model.json's int8.file)
  model.pt         the torch state_dict, for fine-tuning further (model.json's weights.file)

SageMaker packs the folder as model.tar.gz. model.json comes from whoever made the artifact, so
the files it names are checked to be plain names inside the folder.
"""

from __future__ import annotations

import json
from pathlib import Path

FORMAT_VERSION = 1  # what export writes
SUPPORTED_FORMAT_VERSIONS = (1,)  # what readers accept
METADATA_FILE = "model.json"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
WEIGHTS_FILE = "model.pt"
TARBALL = "model.tar.gz"
REQUIRED_KEYS = ("classes", "preprocess")


class ArtifactError(ValueError):
    """An artifact that is missing, unreadable or not one this code can read; the message says which."""


def read_metadata(model_dir: Path) -> dict:
    """model.json of the artifact in `model_dir`, checked: a JSON object of a supported format_version with
    the keys every reader needs. PermissionError passes through (callers say how to make it readable)."""
    path = model_dir / METADATA_FILE
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} not found: is {model_dir} a model artifact of `python -m train`?") from None
    except PermissionError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"cannot read {path}: {error}") from error
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{path} is not a JSON object")
    if metadata.get("format_version") not in SUPPORTED_FORMAT_VERSIONS:
        raise ArtifactError(f"{path}: unsupported format_version {metadata.get('format_version')!r}")
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise ArtifactError(f"{path} lacks {', '.join(missing)}")
    return metadata


def float_model(model_dir: Path, metadata: dict) -> Path:
    """The float ONNX model model.json names (model.onnx in artifacts that name none)."""
    return _named(model_dir, metadata, "onnx", ONNX_FILE)


def int8_model(model_dir: Path, metadata: dict) -> Path | None:
    """The int8 ONNX model model.json names, None when the job made none."""
    return _named(model_dir, metadata, "int8", None)


def named_files(model_dir: Path, metadata: dict) -> list[Path]:
    """Every model file model.json names (the float model, the int8 one when there is one)."""
    int8 = int8_model(model_dir, metadata)
    return [float_model(model_dir, metadata), *([int8] if int8 is not None else [])]


def _named(model_dir: Path, metadata: dict, key: str, default: str | None) -> Path | None:
    entry = metadata.get(key)
    entry = {} if entry is None else entry
    if not isinstance(entry, dict):
        raise ArtifactError(f"{model_dir / METADATA_FILE}: {key} is not an object")
    name = entry.get("file", default)
    if name is None:
        return None
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise ArtifactError(f"{model_dir / METADATA_FILE}: {key}.file {name!r} is not a file name in the "
                            "artifact's folder")
    return model_dir / name
