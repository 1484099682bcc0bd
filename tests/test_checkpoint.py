"""Checkpoints are atomic: a failed write leaves the previous one loadable."""

import pytest
import torch

from train import checkpoint
from train.errors import TrainingError


def test_save_and_load_round_trip_with_weights_only(tmp_path):
    path = tmp_path / "ckpt" / "checkpoint.pt"
    checkpoint.save_atomic({"epoch": 2, "model": {"w": torch.ones(3)}, "history": [{"a": 1.0}]}, path)
    loaded = checkpoint.load(path)
    assert loaded["epoch"] == 2 and torch.equal(loaded["model"]["w"], torch.ones(3))
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_a_write_that_dies_midway_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    checkpoint.save_atomic({"epoch": 1}, path)
    real_save = torch.save

    def dying_save(obj, handle):
        real_save({"epoch": 99, "junk": torch.zeros(1000)}, handle)
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError):
        checkpoint.save_atomic({"epoch": 2}, path)
    assert checkpoint.load(path)["epoch"] == 1
    assert list(tmp_path.iterdir()) == [path]


def test_missing_and_corrupt_checkpoints(tmp_path):
    assert checkpoint.load(tmp_path / "none.pt") is None
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(TrainingError, match="delete it to start over"):
        checkpoint.load(tmp_path / "bad.pt")


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    with pytest.raises(TrainingError, match="lr differ"):
        checkpoint.check_compatible({"identity": {"arch": "resnet50", "lr": 0.1}}, {"arch": "resnet50", "lr": 0.01},
                                    tmp_path / "checkpoint.pt")
