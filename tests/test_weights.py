"""Pretrained weights are found offline (cache, pretrained channel) and loaded without pickle."""

import pickle
import shutil
import tarfile

import pytest
import torch
import torchvision
from conftest import FAST_FLAGS, run_train

from train.errors import TrainingError
from train.network import build_classifier
from train.weights import imagenet_weight_file, load_backbone_state


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def fake_imagenet_file(directory, arch="resnet18"):
    # The real file is torchvision's ImageNet state dict; a random one has the same keys and shapes.
    directory.mkdir(parents=True, exist_ok=True)
    model = torchvision.models.get_model(arch, weights=None)
    path = directory / imagenet_weight_file(arch)
    torch.save(model.state_dict(), path)
    return path, model


def test_file_names_are_torchvisions():
    assert imagenet_weight_file("resnet50") == "resnet50-11ad3fa6.pth"


def test_imagenet_weights_from_the_hub_cache_reach_the_backbone(torch_home):
    _, source = fake_imagenet_file(torch_home / "hub" / "checkpoints")
    state = load_backbone_state("imagenet", "resnet18", pretrained_dir=None)
    classifier = build_classifier("resnet18", 3, 8, state, freeze_backbone=True)
    assert torch.equal(classifier.backbone.conv1.weight, source.conv1.weight)
    assert not any(p.requires_grad for p in classifier.backbone.parameters())
    assert all(p.requires_grad for p in classifier.head.parameters())


def test_pretrained_channel_comes_first(torch_home, tmp_path):
    fake_imagenet_file(torch_home / "hub" / "checkpoints")
    _, channel_model = fake_imagenet_file(tmp_path / "pretrained")
    state = load_backbone_state("imagenet", "resnet18", pretrained_dir=tmp_path / "pretrained")
    assert torch.equal(state["conv1.weight"], channel_model.conv1.weight)


def test_missing_weights_fail_at_once_saying_how_to_provide_them(torch_home):
    with pytest.raises(TrainingError) as error:
        load_backbone_state("imagenet", "resnet50", pretrained_dir=None)
    message = str(error.value)
    assert "resnet50-11ad3fa6.pth" in message and "pretrained" in message and "--weights none" in message


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"conv1.weight": print}, handle, protocol=2)  # a callable: weights_only refuses it
    with pytest.raises(TrainingError, match="cannot load backbone weights"):
        load_backbone_state(str(path), "resnet18", None)


def test_weights_of_another_arch_are_refused(tmp_path):
    path, _ = fake_imagenet_file(tmp_path, "resnet18")
    state = load_backbone_state(str(path), "resnet50", None)
    with pytest.raises(ValueError, match="do not fit resnet50"):
        build_classifier("resnet50", 3, 8, state, freeze_backbone=True)


# ---------------------------------------------------------------- fine-tuning a finished job's model further

def model_state(model_dir):
    return torch.load(model_dir / "model.pt", weights_only=True)


def assert_same(ours: dict, theirs: dict, prefix: str, atol: float = 1e-6) -> None:
    keys = [key for key in theirs if key.startswith(prefix)]
    assert keys
    for key in keys:
        assert torch.allclose(ours[key].float(), theirs[key].float(), atol=atol), key


@pytest.mark.parametrize("given", ["model.pt", "model folder", "model.tar.gz"])
def test_a_finished_jobs_model_fine_tunes_further_as_a_whole(given, trained_model_dir, tiny_dataset, tmp_path):
    weights = {"model.pt": trained_model_dir / "model.pt", "model folder": trained_model_dir,
               "model.tar.gz": tmp_path / "model.tar.gz"}[given]
    if given == "model.tar.gz":  # what a `pretrained` channel on a job's S3 output delivers
        with tarfile.open(weights, "w:gz") as archive:
            for path in trained_model_dir.iterdir():
                archive.add(path, arcname=path.name)
    # The trained model's own settings, a frozen backbone and a learning rate too small to move the head:
    # the job must end where the finished one did, head included.
    result = run_train([*FAST_FLAGS, "--weights", str(weights), "--epochs", "1", "--lr", "1e-8",
                        "--data-dir", str(tiny_dataset)], tmp_path / "job")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "starting from the whole classifier (same classes, same head)" in result.stdout
    assert_same(model_state(tmp_path / "job" / "model"), model_state(trained_model_dir), "", atol=1e-5)


def test_another_class_set_takes_only_the_backbone(trained_model_dir, tiny_dataset, tmp_path):
    two_classes = tmp_path / "data"
    for split in ("train", "valid", "test"):
        for folder in sorted((tiny_dataset / split).iterdir())[:2]:
            shutil.copytree(folder, two_classes / split / folder.name)
    result = run_train([*FAST_FLAGS, "--weights", str(trained_model_dir / "model.pt"), "--epochs", "1",
                        "--data-dir", str(two_classes)], tmp_path / "job")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "starting from its backbone alone (its 3 classes are not this job's 2)" in result.stdout
    ours = model_state(tmp_path / "job" / "model")
    assert_same(ours, model_state(trained_model_dir), "backbone.")  # frozen: exactly the finished job's
    assert ours["head.2.weight"].shape[0] == 2


def test_a_missing_weights_path_fails_the_job_before_any_data_check(tiny_dataset, tmp_path):
    result = run_train([*FAST_FLAGS, "--weights", str(tmp_path / "no-such" / "model.pt"), "--data-dir",
                        str(tiny_dataset)], tmp_path)
    assert result.returncode == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert failure.startswith(f"--weights {tmp_path / 'no-such' / 'model.pt'}: no such file or folder")
    assert "data:" not in result.stdout  # refused before the files were checked
