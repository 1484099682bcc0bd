"""The featurize job and tuning trials on its output, run as SageMaker runs them: `python -m train`
in a fresh process, the bundle handed to the trial as the model.tar.gz in its `features` channel."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import torch
from conftest import run_train

from train.cli import main as train_main

# The real ResNet-50 shape (2048 features), on tiny images: the plumbing is what is tested.
FLAGS = ["--arch", "resnet50", "--weights", "none", "--image-size", "32", "--batch-size", "4", "--num-workers", "0",
         "--hidden-units", "16", "--epochs", "3"]


def features_channel(tarball: Path, base_dir: Path) -> Path:
    """What SageMaker puts in a trial's `features` channel: the featurize job's model.tar.gz."""
    channel = base_dir / "input" / "data" / "features"
    channel.mkdir(parents=True)
    os.link(tarball, channel / "model.tar.gz")
    return channel


def failure_of(base_dir: Path) -> str:
    return (base_dir / "output" / "failure").read_text()


@pytest.fixture(scope="module")
def featurized(tiny_dataset, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("featurize")
    result = run_train([*FLAGS, "--featurize", "true", "--data-dir", str(tiny_dataset)], base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "featurized: train 24, valid 9, test 9 images, 2048 features each" in result.stdout
    return base / "model"


@pytest.fixture(scope="module")
def tarball(featurized) -> Path:
    """The featurize job's model dir as SageMaker uploads it: model.tar.gz."""
    path = featurized.parent / "model.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:  # random weights do not compress anyway
        for file in sorted(featurized.iterdir()):
            archive.add(file, arcname=file.name)
    return path


def test_featurize_writes_every_split_and_the_backbone(featurized, tiny_dataset):
    assert sorted(p.name for p in featurized.iterdir()) == ["backbone.pt", "features.json", "features.pt"]
    metadata = json.loads((featurized / "features.json").read_text())
    assert metadata["arch"] == "resnet50" and metadata["image_size"] == 32 and metadata["feature_dim"] == 2048
    assert metadata["class_folders"] == sorted(p.name for p in (tiny_dataset / "train").iterdir())
    assert len(metadata["splits"]["train"]["files"]) == 24 and set(metadata["splits"]) == {"train", "valid", "test"}
    tensors = torch.load(featurized / "features.pt", weights_only=True)
    assert tensors["train.features"].shape == (24, 2048) and tensors["train.features"].dtype == torch.float32
    assert tensors["test.labels"].tolist() == metadata["splits"]["test"]["labels"]
    assert "layer4.2.conv3.weight" in torch.load(featurized / "backbone.pt", weights_only=True)


def test_two_ddp_processes_featurize_what_one_does(featurized, tiny_dataset, tmp_path):
    # Each rank computes its shard of every split (tests/test_feature_shards.py); rank 0 writes the gathered whole.
    result = run_train([*FLAGS, "--featurize", "true", "--processes-per-host", "2", "--data-dir", str(tiny_dataset)],
                       tmp_path, {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 host(s) x 2 process(es), CPU" in result.stdout
    assert result.stdout.count("featurized: train 24, valid 9, test 9 images") == 1  # rank 0 alone writes
    ours, theirs = (torch.load(d / "features.pt", weights_only=True) for d in (tmp_path / "model", featurized))
    assert ours.keys() == theirs.keys()
    for key in ours:  # other batches and thread counts sum the convolutions in another order: ~3e-5 apart
        assert torch.allclose(ours[key].float(), theirs[key].float(), atol=1e-4), key
    assert json.loads((tmp_path / "model" / "features.json").read_text()) == \
        json.loads((featurized / "features.json").read_text())


def test_a_trial_on_the_features_trains_the_same_model_as_from_images(tarball, tiny_dataset, tmp_path):
    trial, from_images = tmp_path / "trial", tmp_path / "images"
    features_channel(tarball, trial)
    result = run_train([*FLAGS, "--augment", "false"], trial)  # no image channel at all
    assert result.returncode == 0, result.stdout + result.stderr
    assert "features of train, valid, test taken from the features channel" in result.stdout
    assert "METRIC test:loss=" in result.stdout  # the tuner's regexes find what they look for
    reference = run_train([*FLAGS, "--augment", "false", "--data-dir", str(tiny_dataset)], from_images)
    assert reference.returncode == 0, reference.stdout + reference.stderr

    histories = [json.loads((base / "output/data/evaluation.json").read_text())["history"]
                 for base in (trial, from_images)]
    for ours, theirs in zip(*histories, strict=True):
        for name in ("train:loss", "train:accuracy", "valid:loss", "valid:accuracy"):
            assert ours[name] == pytest.approx(theirs[name], abs=1e-5), name
    # The artifact is the whole classifier (backbone from the bundle), deployable like any other.
    models = [torch.load(base / "model/model.pt", weights_only=True) for base in (trial, from_images)]
    assert models[0].keys() == models[1].keys()
    for key in models[0]:
        assert torch.allclose(models[0][key].float(), models[1][key].float(), atol=1e-5), key
    assert (trial / "model" / "model.onnx").is_file()


@pytest.mark.parametrize("flags, message", [
    (["--image-size", "64", "--augment", "false"],
     "--image-size 64 does not match the features channel, made with --image-size 32"),
    (["--arch", "resnet18", "--augment", "false"],
     "--arch resnet18 does not match the features channel, made with --arch resnet50"),
    ([], "a features channel trains the head on fixed features: it needs --freeze-backbone true, --augment false"),
    (["--augment", "false", "--freeze-backbone", "false"], "needs --freeze-backbone true"),
])
def test_a_trial_refuses_flags_that_do_not_fit_the_features(flags, message, tarball, tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    features_channel(tarball, tmp_path)
    assert train_main([*FLAGS, *flags]) == 1
    assert message in failure_of(tmp_path)
    assert not (tmp_path / "model" / "model.onnx").exists()


def test_bad_features_channels_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    channel = tmp_path / "input" / "data" / "features"
    channel.mkdir(parents=True)
    (channel / "notes.txt").write_text("not features")
    assert train_main([*FLAGS, "--augment", "false"]) == 1
    assert f"{channel} holds neither features.json nor model.tar.gz" in failure_of(tmp_path)

    (channel / "model.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    assert train_main([*FLAGS, "--augment", "false"]) == 1
    assert f"cannot unpack {channel / 'model.tar.gz'}" in failure_of(tmp_path)

    (channel / "model.tar.gz").unlink()
    (channel / "features.json").write_text(json.dumps({"format": "something-else"}))
    assert train_main([*FLAGS, "--augment", "false"]) == 1
    assert "is not a featurize job's output" in failure_of(tmp_path)


@pytest.mark.parametrize("library_filter", [True, False], ids=["tarfile data filter", "Python without it"])
@pytest.mark.parametrize("member", ["../../escaped.json", "/tmp/escaped.json", "link"])
def test_a_tarball_cannot_write_outside_its_folder(member, library_filter, featurized, tmp_path, monkeypatch):
    from train import archive as safe_unpacking

    if not library_filter:  # Debian bookworm's Python 3.11.2 has no tarfile.data_filter
        monkeypatch.setattr(safe_unpacking, "_DATA_FILTER", {})
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    channel = tmp_path / "input" / "data" / "features"
    channel.mkdir(parents=True)
    with tarfile.open(channel / "model.tar.gz", "w:gz", compresslevel=1) as archive:
        for path in sorted(featurized.iterdir()):
            if path.name != "features.json":
                archive.add(path, arcname=path.name)
        if member == "link":  # features.json as a link to a file outside
            (tmp_path / "outside.json").write_text("{}")
            info = tarfile.TarInfo("features.json")
            info.type, info.linkname = tarfile.SYMTYPE, str(tmp_path / "outside.json")
            archive.addfile(info)
        else:  # TarInfo by hand: tarfile.add would strip a leading "/"
            data = (featurized / "features.json").read_bytes()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert train_main([*FLAGS, "--augment", "false"]) == 1
    assert "cannot unpack" in failure_of(tmp_path)
    assert not list(tmp_path.rglob("escaped.json")) and not Path("/tmp/escaped.json").exists()


def test_featurize_refuses_a_features_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    assert train_main(["--featurize", "true", "--features-dir", str(tmp_path)]) == 1
    assert "--featurize true writes features from images: it takes no --features-dir" in failure_of(tmp_path)


@pytest.mark.parametrize("limit, value, message", [
    ("MAX_UNPACKED_BYTES", 2500, "unpacks to 3,000 bytes, more than the 2,500 allowed"),
    ("MAX_MEMBERS", 2, "holds 3 members, more than the 2 allowed")])
def test_a_tarball_over_the_unpacking_caps_is_refused_naming_the_limit(tmp_path, monkeypatch, limit, value, message):
    from train import archive as safe_unpacking
    from train.errors import TrainingError

    monkeypatch.setattr(safe_unpacking, limit, value)  # lowered: the rule is tested, not a 16 GiB tarball
    tarball = tmp_path / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as bundle:
        for index in range(3):
            info = tarfile.TarInfo(f"part-{index}.npy")
            info.size = 1000
            bundle.addfile(info, io.BytesIO(b"\0" * 1000))
    with pytest.raises(TrainingError, match=message):
        safe_unpacking.unpack(tarball, tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
