"""The weights a job starts from, found offline: training never reaches the network.

`--weights imagenet`: a `pretrained` channel (or --pretrained-dir) holding torchvision's
weight file, then the torch hub cache ($TORCH_HOME/hub/checkpoints), where the training
image bakes them at build time and where any earlier torchvision download on a laptop put
them. `python -m train.weights download` fills that cache.

`--weights PATH`: a torchvision state dict (the backbone), or a finished job's model to
fine-tune further: its `model.pt`, its model folder, or its `model.tar.gz` (what a channel
pointing at a job's S3 output delivers). Such a model brings its head too when its class
list (`model.json` beside it) is this job's and the head has the same width; otherwise
only its backbone is taken, and the log says why.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path

import torch
import torchvision

from contract import artifact
from contract.artifact import METADATA_FILE
from contract.artifact import WEIGHTS_FILE as MODEL_FILE
from train import archive
from train.errors import TrainingError
from train.hyperparameters import ARCHITECTURES

log = logging.getLogger(__name__)

@dataclasses.dataclass
class StartingWeights:
    backbone: dict | None  # None: a random backbone
    head: dict | None = None  # a finished job's head, when that job had this job's classes and head width


def imagenet_weight_file(arch: str) -> str:
    """torchvision's file name for the arch's default ImageNet weights, e.g. resnet50-11ad3fa6.pth."""
    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    return url.rsplit("/", 1)[-1]


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def load_backbone_state(weights: str, arch: str, pretrained_dir: Path | None) -> dict | None:
    """The state dict to start the backbone from: None for `none`, else loaded with weights_only=True."""
    return load_starting_weights(weights, arch, pretrained_dir).backbone


def load_starting_weights(weights: str, arch: str, pretrained_dir: Path | None,
                          class_folders: list[str] | None = None, hidden_units: int | None = None) -> StartingWeights:
    """What `--weights` gives this job: a backbone, and a head where a finished job's fits (see the module doc)."""
    if weights == "none":
        return StartingWeights(None)
    if weights == "imagenet":
        return StartingWeights(_load_state(find_imagenet_weights(arch, pretrained_dir)))
    path = Path(weights)
    if not path.exists():
        raise TrainingError(f"--weights {weights}: no such file or folder")
    if path.is_dir() or path.name.endswith(".tar.gz"):
        with tempfile.TemporaryDirectory(prefix="weights-") as unpacked:
            folder = path if path.is_dir() else Path(unpacked)
            if not path.is_dir():
                archive.unpack(path, folder)
            if not (folder / MODEL_FILE).is_file():
                raise TrainingError(f"--weights {weights}: no {MODEL_FILE} in it (a training job's model)")
            return _split_classifier(folder / MODEL_FILE, class_folders, hidden_units)
    return _split_classifier(path, class_folders, hidden_units)


def _split_classifier(path: Path, class_folders: list[str] | None, hidden_units: int | None) -> StartingWeights:
    """A plain backbone state dict as it is; a classifier's (backbone.* and head.*) split in two."""
    state = _load_state(path)
    if not any(key.startswith("backbone.") for key in state):
        return StartingWeights(state)
    backbone = {key.removeprefix("backbone."): value for key, value in state.items() if key.startswith("backbone.")}
    head = {key.removeprefix("head."): value for key, value in state.items() if key.startswith("head.")}
    reason = _why_not_the_head(path.parent / METADATA_FILE, head, class_folders, hidden_units)
    if reason:
        log.info("--weights %s: starting from its backbone alone (%s)", path, reason)
        return StartingWeights(backbone)
    log.info("--weights %s: starting from the whole classifier (same classes, same head)", path)
    return StartingWeights(backbone, head)


def _why_not_the_head(metadata_path: Path, head: dict, class_folders: list[str] | None,
                      hidden_units: int | None) -> str | None:
    if class_folders is None:
        return "only the backbone is asked for"
    try:
        theirs = artifact.read_metadata(metadata_path.parent)["class_folders"]
    except (OSError, artifact.ArtifactError, KeyError):
        return f"no readable {METADATA_FILE} (of a supported format_version) beside it names its classes"
    if not isinstance(theirs, list):
        return f"{METADATA_FILE} beside it has no list of class folders"
    if len(theirs) != len(class_folders):
        return f"its {len(theirs)} classes are not this job's {len(class_folders)}"
    if theirs != class_folders:
        return "its classes are not this job's (other names or order)"
    first = head.get("0.weight")
    if first is None or hidden_units is None or first.shape[0] != hidden_units:
        width = "?" if first is None else first.shape[0]
        return f"its head has {width} hidden units, this job {hidden_units}"
    return None


def _load_state(path: Path) -> dict:
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
