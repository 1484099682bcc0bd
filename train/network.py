"""The one place that defines the network (backbone + head) and its eval preprocessing.

Training, export and the model artifact all take these; serving reads the numbers
from model.json and never imports this module.
"""

from __future__ import annotations

import dataclasses

import torch
import torchvision
from torch import nn
from torchvision.transforms import v2 as transforms

# ImageNet statistics: the backbone was pretrained on inputs normalised with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Resize the shorter side to 256/224 of the crop, then centre-crop (the ImageNet recipe).
RESIZE_RATIO = 256 / 224


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """Eval-time preprocessing, recorded in model.json for the serving image."""

    resize: int  # shorter side, bilinear (antialiased, as PIL does it)
    crop: int  # centre crop, square
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def for_image_size(cls, image_size: int) -> Preprocess:
        return cls(resize=round(image_size * RESIZE_RATIO), crop=image_size)

    def to_json(self) -> dict:
        return {
            "resize": self.resize,
            "crop": self.crop,
            "resize_rule": "shorter_side",
            "interpolation": "bilinear",
            "mean": list(self.mean),
            "std": list(self.std),
            "input_layout": "NCHW",
            "input_range": "RGB scaled to [0, 1], then (x - mean) / std",
            # JPEGs decode at the smallest DCT scale (Pillow draft) that keeps the shorter side >= resize.
            "jpeg_draft": True,
        }


def eval_transform(preprocess: Preprocess):
    """PIL RGB image -> uint8 CHW tensor, resized and centre-cropped.

    Resizing happens on the PIL image (Pillow's antialiased bilinear), which the
    serving image reproduces exactly with Pillow alone.
    """
    return transforms.Compose([
        transforms.Resize(preprocess.resize, interpolation=transforms.InterpolationMode.BILINEAR, antialias=True),
        transforms.CenterCrop(preprocess.crop),
        transforms.PILToTensor(),
    ])


def train_transform(preprocess: Preprocess, augment: bool):
    if not augment:
        return eval_transform(preprocess)
    return transforms.Compose([
        transforms.RandomResizedCrop(preprocess.crop, antialias=True),
        transforms.RandomHorizontalFlip(),
        transforms.PILToTensor(),
    ])


class Normalize(nn.Module):
    """uint8 (or [0, 255] float) NCHW batch -> normalised float batch, on whatever device it is on."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std).view(1, 3, 1, 1)), persistent=False)
        self.register_buffer("shift", torch.tensor(mean).view(1, 3, 1, 1) / torch.tensor(std).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.float() * self.scale - self.shift


class Classifier(nn.Module):
    """A torchvision ResNet without its ImageNet layer, and a Linear-ReLU-Linear head."""

    def __init__(self, arch: str, num_classes: int, hidden_units: int):
        super().__init__()
        backbone = torchvision.models.get_model(arch, weights=None)
        features = backbone.fc.in_features
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = build_head(features, hidden_units, num_classes)
        self.backbone_frozen = False

    def freeze_backbone(self) -> None:
        self.backbone_frozen = True
        self.backbone.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        # A frozen backbone keeps its BatchNorm statistics: eval mode even while the head trains.
        if self.backbone_frozen:
            self.backbone.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.backbone_frozen:
            with torch.no_grad():
                features = self.backbone(images)
        else:
            features = self.backbone(images)
        return self.head(features)


def build_head(features: int, hidden_units: int, num_classes: int) -> nn.Module:
    """Linear-ReLU-Linear on the backbone's pooled features (also what local tuning trains alone)."""
    return nn.Sequential(
        nn.Linear(features, hidden_units),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_units, num_classes),
    )


class WithSoftmax(nn.Module):
    """What is exported: probabilities, so every client gets calibrated numbers without extra math."""

    def __init__(self, classifier: Classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(images), dim=1)


def build_classifier(arch: str, num_classes: int, hidden_units: int, backbone_state: dict | None,
                     freeze_backbone: bool) -> Classifier:
    model = Classifier(arch, num_classes, hidden_units)
    if backbone_state is not None:
        state = {k: v for k, v in backbone_state.items() if not k.startswith("fc.")}
        try:
            missing, unexpected = model.backbone.load_state_dict(state, strict=False)
        except RuntimeError as error:  # shape mismatches: weights of another arch
            detail = str(error).strip().splitlines()[1].strip() if "\n" in str(error) else str(error)
            raise ValueError(f"backbone weights do not fit {arch}: {detail}") from None
        if missing or unexpected:
            raise ValueError(f"backbone weights do not fit {arch}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if freeze_backbone:
        model.freeze_backbone()
    return model
