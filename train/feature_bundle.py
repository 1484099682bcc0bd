"""The featurize job's output: a frozen backbone's features of every split, for tuning trials to train heads on.

    features.json  what they are: arch, weights, image size, classes, and per split its files
                   (relative to the split folder), labels and skipped files
    features.pt    per split `<split>.features` (N, D) float32 and `<split>.labels` (N,) int64
    backbone.pt    the backbone's state dict, so a trial's model artifact is the whole classifier
                   without the trial fetching any weights

A featurize job writes it to its model dir, so SageMaker uploads it as the job's model.tar.gz;
a trial takes that one S3 object as its `features` channel. Reading accepts the folder or the
tarball, and loads tensors with weights_only=True (no pickle code runs).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from train import archive
from train.data import SkippedFile, Split
from train.errors import TrainingError

FORMAT = "dog-classifier-features"
VERSION = 1
METADATA_FILE = "features.json"
TENSORS_FILE = "features.pt"
BACKBONE_FILE = "backbone.pt"
TARBALL_NAMES = ("model.tar.gz", "features.tar.gz")


class FeatureBundle:
    def __init__(self, metadata: dict, tensors: dict[str, torch.Tensor], backbone_state: dict[str, torch.Tensor]):
        self.metadata, self.tensors, self.backbone_state = metadata, tensors, backbone_state

    @property
    def class_folders(self) -> list[str]:
        return list(self.metadata["class_folders"])

    def splits(self) -> dict[str, Split]:
        """The splits as the featurize job found them: sample paths, labels and skipped files."""
        result = {}
        for name, split in self.metadata["splits"].items():
            root = Path(split["root"])
            samples = [(root / file, label) for file, label in zip(split["files"], split["labels"], strict=True)]
            skipped = [SkippedFile(item["path"], item["reason"]) for item in split["skipped"]]
            result[name] = Split(name=name, root=root, samples=samples, skipped=skipped)
        return result

    def features(self, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {name: (self.tensors[f"{name}.features"].to(device), self.tensors[f"{name}.labels"].to(device))
                for name in self.metadata["splits"]}

    def check_matches(self, arch: str, weights: str, image_size: int) -> None:
        """A trial's hyperparameters must describe the backbone that made the features."""
        made_with = {"arch": arch, "weights": _weights_name(weights), "image-size": image_size}
        for flag, value in made_with.items():
            recorded = self.metadata[flag.replace("-", "_")]
            if recorded != value:
                raise TrainingError(f"--{flag} {value} does not match the features channel, made with "
                                    f"--{flag} {recorded}: pass --{flag} {recorded} or featurize again")


def _weights_name(weights: str) -> str:
    """imagenet / none as given; a weight file by its name (the trial's copy may live elsewhere)."""
    return weights if weights in ("imagenet", "none") else Path(weights).name


def write(directory: Path, *, arch: str, weights: str, image_size: int, class_folders: list[str],
          splits: dict[str, Split], features: dict[str, tuple[torch.Tensor, torch.Tensor]],
          backbone_state: dict[str, torch.Tensor]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, (values, labels) in features.items():
        tensors[f"{name}.features"] = values.detach().float().cpu().contiguous()
        tensors[f"{name}.labels"] = labels.detach().long().cpu()
    metadata = {
        "format": FORMAT, "version": VERSION, "arch": arch, "weights": _weights_name(weights),
        "image_size": image_size, "feature_dim": int(next(iter(tensors.values())).shape[1]),
        "class_folders": class_folders,
        "splits": {name: {"root": str(split.root),
                          "files": [str(path.relative_to(split.root)) for path, _ in split.samples],
                          "labels": [label for _, label in split.samples],
                          "skipped": [{"path": s.path, "reason": s.reason} for s in split.skipped]}
                   for name, split in splits.items()},
    }
    torch.save(tensors, directory / TENSORS_FILE)
    torch.save({k: v.detach().cpu() for k, v in backbone_state.items()}, directory / BACKBONE_FILE)
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=1))


def read(location: Path) -> FeatureBundle:
    """The bundle in a folder, or in the one tarball a `features` channel holds."""
    if not location.is_dir():
        raise TrainingError(f"features folder {location} does not exist")
    if (location / METADATA_FILE).is_file():
        return _read_folder(location)
    tarballs = [location / name for name in TARBALL_NAMES if (location / name).is_file()]
    if not tarballs:
        raise TrainingError(f"{location} holds neither {METADATA_FILE} nor {' or '.join(TARBALL_NAMES)}: "
                            "give the features channel a featurize job's model.tar.gz")
    with tempfile.TemporaryDirectory(prefix="features-") as unpacked:
        archive.unpack(tarballs[0], Path(unpacked))
        return _read_folder(Path(unpacked))


def _read_folder(folder: Path) -> FeatureBundle:
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text())
    except (OSError, ValueError) as error:
        raise TrainingError(f"cannot read {folder / METADATA_FILE}: {error}") from error
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise TrainingError(f"{folder / METADATA_FILE} is not a featurize job's output (format {FORMAT!r})")
    if metadata.get("version") != VERSION:
        raise TrainingError(f"features format version {metadata.get('version')} is not {VERSION}: featurize again")
    tensors = _load_tensors(folder / TENSORS_FILE)
    for name, split in metadata["splits"].items():
        values, labels = tensors.get(f"{name}.features"), tensors.get(f"{name}.labels")
        if values is None or labels is None or len(values) != len(split["files"]) or len(labels) != len(values):
            raise TrainingError(f"{folder / TENSORS_FILE}: the {name} features do not match {METADATA_FILE}")
    return FeatureBundle(metadata, tensors, _load_tensors(folder / BACKBONE_FILE))


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # missing, truncated or not ours: one message
        raise TrainingError(f"cannot load {path}: {type(error).__name__}: {error}") from error
    if not isinstance(loaded, dict):
        raise TrainingError(f"{path} does not hold a dict of tensors")
    return loaded
