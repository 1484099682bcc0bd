"""Checkpoints that survive a kill at any moment (write to a temp file, fsync, rename), and the one place
that says what a training checkpoint holds and reads it back (save_training, load_training).

A checkpoint holds only what `torch.load(..., weights_only=True)` accepts (tensors,
numbers, strings, lists, dicts), so loading one can never run code.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path

import torch

from train.engine import RunningTotals
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


@dataclasses.dataclass
class BestEpoch:
    """The epoch with the best validation accuracy so far: the one the job ships."""

    epoch: int | None = None
    valid_accuracy: float = -1.0
    valid_loss: float = math.inf
    state: dict | None = None  # its trained weights (CPU copies)


@dataclasses.dataclass
class TrainingState:
    """Where a job stands between steps: all a restart needs besides the weights and the optimizer."""

    epoch: int = 0  # epochs done
    step: int = 0  # steps done of the next epoch
    totals: RunningTotals = dataclasses.field(default_factory=RunningTotals)  # that epoch's sums so far
    history: list[dict] = dataclasses.field(default_factory=list)  # one entry of metrics per epoch done
    best: BestEpoch = dataclasses.field(default_factory=BestEpoch)


@dataclasses.dataclass
class Resumed:
    model: dict
    optimizer: dict
    scaler: dict | None
    state: TrainingState


def save_training(path: Path, identity: dict, hyperparameters: dict, model: dict, optimizer: dict,
                  scaler: dict | None, state: TrainingState) -> None:
    save_atomic({
        "identity": identity,
        "hyperparameters": hyperparameters,
        "model": model,
        "optimizer": optimizer,
        "scaler": scaler,
        "epoch": state.epoch,
        "step": state.step,
        "totals": dataclasses.asdict(state.totals),
        "history": state.history,
        "best": {field.name: getattr(state.best, field.name) for field in dataclasses.fields(BestEpoch)},  # no copy
    }, path)


def load_training(path: Path, identity: dict) -> Resumed | None:
    """The job's checkpoint at `path`, None when there is none; a checkpoint of another model fails."""
    saved = load(path)
    if saved is None:
        return None
    check_compatible(saved, identity, path)
    state = TrainingState(saved["epoch"], saved["step"], RunningTotals(**saved["totals"]), saved["history"],
                          BestEpoch(**saved["best"]))
    return Resumed(saved["model"], saved["optimizer"], saved.get("scaler"), state)
