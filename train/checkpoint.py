"""Checkpoints that survive a kill at any moment: write to a temp file, fsync, rename.

A checkpoint holds only what `torch.load(..., weights_only=True)` accepts (tensors,
numbers, strings, lists, dicts), so loading one can never run code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from train.errors import TrainingError

CHECKPOINT_NAME = "checkpoint.pt"


def save_atomic(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def remove_stale_temp_files(path: Path) -> list[Path]:
    """Half-written checkpoints a killed job left beside `path` (SageMaker would upload them to S3)."""
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for leftover in stale:
        leftover.unlink(missing_ok=True)
    return stale


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise TrainingError(
            f"checkpoint {path} cannot be loaded ({type(error).__name__}: {error}); delete it to start over"
        ) from error


def check_compatible(checkpoint: dict, identity: dict, path: Path) -> None:
    """A checkpoint from another model (arch, head, classes) cannot be resumed."""
    saved = checkpoint.get("identity", {})
    differing = sorted(key for key in identity if saved.get(key) != identity[key])
    if differing:
        raise TrainingError(
            f"checkpoint {path} was written by a different model ({', '.join(differing)} differ); "
            f"delete it or point --checkpoint-dir elsewhere"
        )
