"""Folder-per-class datasets (dogImages layout: split/NNN.Breed_Name/*.jpg).

Every file is checked once before training (a cheap reduced-scale decode), so broken
files are skipped, counted and reported up front instead of crashing a worker
mid-epoch, and a split with too many of them fails the job before it pays for compute.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image

from imaging import ImageTooLarge, load_rgb
from train.errors import TrainingError

log = logging.getLogger(__name__)

MAX_UNREADABLE_FRACTION = 0.05
# The smallest side decoded when checking a file: JPEGs decode at 1/8 scale, fast.
_CHECK_SIZE = 8
_NUMBER_PREFIX = re.compile(r"^\d+[._\- ]+")
# Files that sit beside images in real datasets and are no image: listed as ignored, never counted as corrupt.
NOT_IMAGES = frozenset({".txt", ".md", ".json", ".csv", ".tsv", ".yaml", ".yml", ".xml", ".html", ".pdf", ".py",
                        ".ini", ".db", ".log"})


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclasses.dataclass
class Split:
    name: str
    root: Path
    samples: list[tuple[Path, int]]
    skipped: list[SkippedFile]
    ignored: list[str] = dataclasses.field(default_factory=list)  # not images (NOT_IMAGES, hidden files)

    @property
    def num_files(self) -> int:
        return len(self.samples) + len(self.skipped)


def class_name(folder_name: str) -> str:
    """`001.Affenpinscher` -> `Affenpinscher`; `042.Cairn_terrier` -> `Cairn terrier`."""
    name = _NUMBER_PREFIX.sub("", folder_name) or folder_name
    return name.replace("_", " ")


def class_folders(root: Path) -> list[str]:
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise TrainingError(f"{root} holds no class folders (expected {root}/NNN.Class_Name/*.jpg)")
    return folders


def check_class_sets(split_roots: dict[str, Path]) -> list[str]:
    """The class folders every split shares, in output order; fails naming any difference."""
    per_split = {name: class_folders(root) for name, root in split_roots.items()}
    reference_name, reference = next(iter(per_split.items()))
    for name, folders in per_split.items():
        if folders != reference:
            only_here = sorted(set(folders) - set(reference))
            only_there = sorted(set(reference) - set(folders))
            raise TrainingError(
                f"class folders differ between {reference_name} and {name}: "
                f"only in {name}: {_preview(only_here)}; only in {reference_name}: {_preview(only_there)}"
            )
    return reference


def _preview(names: list[str], limit: int = 5) -> str:
    if not names:
        return "none"
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def scan_split(name: str, root: Path, folders: list[str], threads: int) -> Split:
    files, ignored = [], []
    for index, folder in enumerate(folders):
        for path in sorted((root / folder).iterdir()):
            if not path.is_file():
                continue
            if path.name.startswith(".") or path.suffix.lower() in NOT_IMAGES:
                ignored.append(str(path))
            else:
                files.append((path, index))
    if ignored:
        log.info("%s: ignored %d file(s) that are no images, e.g. %s", name, len(ignored), ignored[0])
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # PIL decodes without the GIL
        problems = list(pool.map(_problem_with, (path for path, _ in files)))
    samples = [sample for sample, problem in zip(files, problems, strict=True) if problem is None]
    skipped = [SkippedFile(str(path), problem) for (path, _), problem in zip(files, problems, strict=True) if problem]
    split = Split(name=name, root=root, samples=samples, skipped=skipped, ignored=ignored)
    _enforce_readable(split)
    return split


def _problem_with(path: Path) -> str | None:
    if path.stat().st_size == 0:
        return "empty file"
    try:
        load_rgb(path, min_side=_CHECK_SIZE)
    except (ImageTooLarge, Image.DecompressionBombError) as error:
        return f"too many pixels: {error}"
    except Exception as error:  # noqa: BLE001 - any decoder failure means 'skip this file'
        return f"{type(error).__name__}: {error}"
    return None


def _enforce_readable(split: Split) -> None:
    if split.num_files == 0:
        raise TrainingError(f"{split.name} split at {split.root} has no files")
    if split.skipped:
        log.warning("%s: skipped %d of %d files that could not be read, e.g. %s (%s)",
                    split.name, len(split.skipped), split.num_files, split.skipped[0].path,
                    split.skipped[0].reason)
    fraction = len(split.skipped) / split.num_files
    if fraction > MAX_UNREADABLE_FRACTION:
        raise TrainingError(
            f"{split.name} split: {len(split.skipped)} of {split.num_files} files ({fraction:.0%}) are unreadable, "
            f"more than the {MAX_UNREADABLE_FRACTION:.0%} allowed; first: {split.skipped[0].path} "
            f"({split.skipped[0].reason})"
        )


class ImageFolderDataset(torch.utils.data.Dataset):
    """(uint8 CHW tensor, label) pairs; normalisation happens on the batch, on the device."""

    def __init__(self, samples: list[tuple[Path, int]], transform, decode_min_side: int):
        self.samples = samples
        self.transform = transform
        self.decode_min_side = decode_min_side

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        image = load_rgb(path, min_side=self.decode_min_side)
        return self.transform(image), label

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]


class EpochSampler(torch.utils.data.Sampler):
    """Indices for one epoch: a permutation fixed by (seed, epoch), this rank's shard, from a batch offset.

    The order depends only on (seed, epoch), so a job resumed mid-epoch skips exactly
    the batches it had done. Training shards are padded to equal length (DDP needs the
    same number of steps on every rank); eval shards never overlap, so each image counts once.
    """

    def __init__(self, length: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1):
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip_samples: int = 0) -> None:
        self.epoch, self.skip = epoch, skip_samples

    def _shard(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        if self.shuffle and self.world_size > 1:
            order += order[: (-self.length) % self.world_size]
        return order[self.rank :: self.world_size]

    def __iter__(self):
        return iter(self._shard()[self.skip :])

    def __len__(self) -> int:
        return max(0, len(self._shard()) - self.skip)
