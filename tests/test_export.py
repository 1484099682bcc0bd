"""ONNX export: the served graph must give the PyTorch eval path's probabilities."""

import json

import numpy as np
import onnxruntime
import pytest
import torch

from train.export import INPUT_NAME, export_onnx, model_metadata, write_artifact
from train.network import Preprocess, WithSoftmax, build_classifier


@pytest.mark.parametrize("arch, crop", [("resnet50", 64), ("resnet18", 32)])
def test_onnx_matches_pytorch(tmp_path, arch, crop):
    torch.manual_seed(0)
    classifier = build_classifier(arch, num_classes=133, hidden_units=64, backbone_state=None, freeze_backbone=True)
    classifier.eval()
    path = tmp_path / "model.onnx"
    export_onnx(classifier, crop, path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 3, crop, crop]
    for batch in (1, 3):  # dynamic batch dimension
        images = torch.randn(batch, 3, crop, crop)
        expected = WithSoftmax(classifier).eval()(images).detach().numpy()
        got = session.run(None, {INPUT_NAME: images.numpy()})[0]
        assert got.shape == (batch, 133)
        assert np.abs(got - expected).max() <= 1e-4
        np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_artifact_holds_graph_metadata_and_safe_weights(tmp_path):
    classifier = build_classifier("resnet18", 2, 8, None, freeze_backbone=False)
    metadata = model_metadata(classes=["A", "B"], class_folders=["001.A", "002.B"],
                              preprocess=Preprocess.for_image_size(32), arch="resnet18",
                              hyperparameters={"lr": 0.1}, metrics={"test:accuracy": 1.0})
    write_artifact(tmp_path, classifier, metadata)
    saved = json.loads((tmp_path / "model.json").read_text())
    assert saved["classes"] == ["A", "B"]
    assert saved["preprocess"]["resize"] == 37 and saved["preprocess"]["crop"] == 32
    assert saved["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert saved["onnx"]["output_kind"].startswith("probabilities")
    assert set(saved["versions"]) >= {"torch", "torchvision", "onnx", "python"}
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    reloaded = build_classifier("resnet18", 2, 8, None, freeze_backbone=False)
    reloaded.load_state_dict(state)
