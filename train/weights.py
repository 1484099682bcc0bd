"""Pretrained backbone weights, found offline: training never reaches the network.

Where they come from, in order: a `pretrained` channel (or --pretrained-dir) holding
torchvision's weight file, then the torch hub cache ($TORCH_HOME/hub/checkpoints),
where the training image bakes them at build time and where any earlier torchvision
download on a laptop put them. `python -m train.weights download` fills that cache.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torchvision

from train.errors import TrainingError
from train.hyperparameters import ARCHITECTURES


def imagenet_weight_file(arch: str) -> str:
    """torchvision's file name for the arch's default ImageNet weights, e.g. resnet50-11ad3fa6.pth."""
    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    return url.rsplit("/", 1)[-1]


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def load_backbone_state(weights: str, arch: str, pretrained_dir: Path | None) -> dict | None:
    """The state dict to start the backbone from: None for `none`, else loaded with weights_only=True."""
    if weights == "none":
        return None
    if weights == "imagenet":
        path = find_imagenet_weights(arch, pretrained_dir)
    else:
        path = Path(weights)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise TrainingError(f"cannot load backbone weights from {path}: {type(error).__name__}: {error}") from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise TrainingError(f"{path} does not hold a state dict")
    return state


def find_imagenet_weights(arch: str, pretrained_dir: Path | None) -> Path:
    filename = imagenet_weight_file(arch)
    candidates = []
    if pretrained_dir is not None:
        candidates.append(pretrained_dir / filename)
    candidates.append(hub_checkpoint_dir() / filename)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise TrainingError(
        f"ImageNet weights for {arch} ({filename}) not found offline (looked in {looked}); "
        f"provide them in a 'pretrained' channel, bake them into the image (build arg), "
        f"run `python -m train.weights download --arch {arch}` where there is internet, "
        f"or pass --weights none to train from scratch"
    )


def download(arch: str) -> Path:
    """Fetch torchvision's weights into the hub cache (for image builds and laptops with internet)."""
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    weights.get_state_dict(progress=sys.stderr.isatty(), check_hash=True)
    return hub_checkpoint_dir() / imagenet_weight_file(arch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.weights", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("download", help="download ImageNet weights into the torch hub cache")
    get.add_argument("--arch", action="append", choices=ARCHITECTURES)
    where = sub.add_parser("path", help="print where the weights for --arch are expected")
    where.add_argument("--arch", choices=ARCHITECTURES, default="resnet50")
    args = parser.parse_args(argv)
    if args.command == "path":
        print(hub_checkpoint_dir() / imagenet_weight_file(args.arch))
        return 0
    for arch in args.arch or ["resnet50"]:
        print(download(arch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
