"""Pretrained weights are found offline (cache, pretrained channel) and loaded without pickle."""

import pickle

import pytest
import torch
import torchvision

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
