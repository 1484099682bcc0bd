"""Model artifacts of the training program's own format with random, seeded weights: what a test or a
benchmark needs when the weights do not matter (speed, plumbing, a shape), made by train/export.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract import artifact


def random_artifact(directory: Path, classes: list[str], arch: str = "resnet18", hidden_units: int = 16,
                    image_size: int = 32, seed: int = 0, freeze_backbone: bool = False) -> Path:
    import torch

    from train.export import model_metadata, write_artifact
    from train.network import Preprocess, build_classifier

    torch.manual_seed(seed)
    classifier = build_classifier(arch, len(classes), hidden_units, None, freeze_backbone=freeze_backbone).eval()
    write_artifact(directory, classifier, model_metadata(
        classes=classes, class_folders=[f"{i + 1:03d}.{name.replace(' ', '_')}" for i, name in enumerate(classes)],
        preprocess=Preprocess.for_image_size(image_size), arch=arch, hyperparameters={"hidden_units": hidden_units},
        metrics={}))
    return directory


def resnet50_artifact(directory: Path, int8: bool = False, image_size: int = 224) -> Path:
    """The dogImages shape (ResNet-50 + head, 133 classes), random weights, seeded; with `int8`, also
    model.int8.onnx made by training's quantizer (calibrated on 16 photos: speed does not depend on the
    ranges)."""
    random_artifact(directory, [f"Breed {i}" for i in range(133)], "resnet50", 256, image_size, freeze_backbone=True)
    if int8:
        from serve.model import Preprocess as ServingPreprocess
        from support.photos import photo

        preprocess = ServingPreprocess.from_json(artifact.read_metadata(directory)["preprocess"])
        rng = np.random.default_rng(1)
        add_int8(directory, np.stack([preprocess(photo(rng, 500, 375)) for _ in range(16)]))
    return directory


def add_int8(directory: Path, inputs: np.ndarray) -> None:
    """model.int8.onnx by training's quantizer, calibrated and compared on `inputs` (limits off: the weights
    are random, so agreement with the float model says nothing; checked on this host's CPU level only)."""
    from train.export import INPUT_NAME, write_metadata
    from train.quantize import Int8Settings, quantize_artifact

    metadata = artifact.read_metadata(directory)
    half = len(inputs) // 2
    batches = [inputs[:half], inputs[half:]]
    metadata["int8"] = quantize_artifact(directory, INPUT_NAME, batches,
                                         [(batch, np.zeros(len(batch), dtype=np.int64)) for batch in batches],
                                         "photos", Int8Settings("minmax", len(inputs), 100.0, 0.0, emulated_images=0))
    write_metadata(directory, metadata)


def fitted_resnet50_artifact(directory: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """The dogImages shape (ResNet-50 + head, 133 classes, 224 px) with a random, frozen backbone and a last
    layer fitted (least squares) so that it classifies each of `images` (network inputs) as its label, with
    a margin: a model whose top-1 answers int8 can keep or lose, unlike random weights' near-uniform ones."""
    import torch

    from train.export import model_metadata, write_artifact
    from train.network import Preprocess, build_classifier

    torch.manual_seed(0)
    classes = [f"Breed {i}" for i in range(133)]
    classifier = build_classifier("resnet50", len(classes), 256, None, freeze_backbone=True).eval()
    first, relu, last = classifier.head
    with torch.no_grad():
        hidden = relu(first(classifier.backbone(torch.from_numpy(images)))).numpy()
        target = np.full((len(images), len(classes)), -4.0, dtype=np.float32)
        target[np.arange(len(images)), labels] = 4.0
        solution = np.linalg.lstsq(np.hstack([hidden, np.ones((len(images), 1), np.float32)]), target, rcond=None)[0]
        last.weight.copy_(torch.from_numpy(np.ascontiguousarray(solution[:-1].T)))
        last.bias.copy_(torch.from_numpy(np.ascontiguousarray(solution[-1])))
    write_artifact(directory, classifier, model_metadata(
        classes=classes, class_folders=[f"{i + 1:03d}.{name.replace(' ', '_')}" for i, name in enumerate(classes)],
        preprocess=Preprocess.for_image_size(224), arch="resnet50", hyperparameters={"hidden_units": 256},
        metrics={}))
    return directory
