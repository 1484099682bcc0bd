"""The feature cache: a frozen backbone's features, computed once, and batches of them.

With a frozen backbone (eval mode, so BatchNorm is fixed) and no random augmentation, every
epoch would recompute exactly the same features; computing them once leaves each epoch only
the head's work. Batches come in the order the image loader would give them (same sampler),
so a cached job trains the same head as an uncached one, up to float rounding.
"""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

from train import distributed
from train.data import EpochSampler, ImageFolderDataset, Split
from train.engine import Precision
from train.errors import TrainingError
from train.launcher import ignore_stop_signals
from train.network import Normalize, Preprocess, build_classifier, eval_transform
from train.progress import Progress
from train.weights import load_backbone_state

log = logging.getLogger(__name__)

# Images per backbone pass when computing features: no gradients, so memory allows more than training.
FEATURE_BATCH = 64


def backbone_features(splits: dict[str, Split], *, arch: str, weights: str, pretrained_dir, image_size: int,
                      seed: int, device: torch.device, num_workers: int, show_progress: bool = True,
                      worker_init_fn=None) -> tuple[nn.Module, dict]:
    """(the frozen backbone, each split's features) outside a training job: the featurize job and local
    tuning. The backbone is built as a job builds it, after the same seed, so with --weights none it
    is the very random backbone a job of that seed would train on (on every rank of a DDP job alike)."""
    precision = Precision.for_device(device)
    preprocess = Preprocess.for_image_size(image_size)
    state = load_backbone_state(weights, arch, pretrained_dir)
    torch.manual_seed(seed)
    try:  # the head's size does not matter: only the backbone (built first) is kept
        backbone = build_classifier(arch, 2, 1, state, freeze_backbone=True).backbone.to(device)
    except ValueError as error:
        raise TrainingError(f"--weights {weights}: {error}") from error
    if precision.channels_last:
        backbone.to(memory_format=torch.channels_last)
    normalize = Normalize(preprocess.mean, preprocess.std).to(device)
    return backbone, {name: split_features(backbone, split, preprocess, precision, normalize, num_workers,
                                           show_progress, worker_init_fn) for name, split in splits.items()}


def split_features(backbone: nn.Module, split: Split, preprocess: Preprocess, precision: Precision,
                   normalize: nn.Module, num_workers: int, show_progress: bool = True,
                   worker_init_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's features in file order, through the eval transform (what the cache, local tuning
    and the featurize job all compute). Under DDP each rank computes every world_size-th image only,
    and the shards are gathered once: every rank ends with the whole split."""
    rank, world_size = distributed.rank_and_world()
    loader = torch.utils.data.DataLoader(
        ImageFolderDataset(split.samples, eval_transform(preprocess), decode_min_side=preprocess.resize),
        batch_size=FEATURE_BATCH, sampler=EpochSampler(len(split.samples), shuffle=False, seed=0, rank=rank,
                                                       world_size=world_size),
        num_workers=num_workers, pin_memory=precision.device.type == "cuda", worker_init_fn=worker_init_fn,
        prefetch_factor=4 if num_workers > 0 else None)
    with Progress(f"features {split.name}", len(loader), enabled=show_progress) as progress:
        features, labels = compute_features(backbone, loader, precision, normalize, progress)
    if world_size == 1:
        return features, labels
    return (distributed.gather_strided(features, len(split.samples)),
            distributed.gather_strided(labels, len(split.samples)))


@torch.no_grad()
def compute_features(backbone: nn.Module, loader, precision: Precision, normalize: nn.Module,
                     progress: Progress) -> tuple[torch.Tensor, torch.Tensor]:
    """(features float32 (N, D), labels (N,)) on the training device, in the loader's order."""
    backbone.eval()
    features, labels = [], []
    for step, (images, batch_labels) in enumerate(loader, start=1):
        with precision.autocast():
            features.append(backbone(precision.prepare(images, normalize)).float())
        labels.append(batch_labels.to(precision.device))
        progress.update(step)
    if not features:  # a DDP rank with no image of a tiny split: its shard is empty, of the right width
        width = backbone(torch.zeros(1, 3, 32, 32, device=precision.device)).shape[1]
        return torch.zeros(0, width, device=precision.device), torch.zeros(0, dtype=torch.int64,
                                                                          device=precision.device)
    return torch.cat(features), torch.cat(labels)


class FeatureBatches:
    """(features, labels) batches drawn with a sampler, like a DataLoader over the cached tensors."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, sampler, batch_size: int, drop_last: bool):
        self.features, self.labels = features, labels
        self.batches = torch.utils.data.BatchSampler(sampler, batch_size, drop_last)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for indices in self.batches:
            index = torch.as_tensor(indices, device=self.features.device)
            yield self.features[index], self.labels[index]


def cache_features(backbone: nn.Module, splits: dict[str, Split], bundle, preprocess: Preprocess,
                   precision: Precision, num_workers: int, show_progress: bool) -> dict[str, tuple[torch.Tensor,
                                                                                                 torch.Tensor]]:
    """Every split's backbone features, once, for a job that trains its head on them: each rank computes its
    shard and all ranks get every split (the training shards differ per epoch). `bundle`: a featurize job's
    output (train/feature_bundle.py), taken as it is."""
    if bundle is not None:
        features = bundle.features(precision.device)
        log.info("features of %s taken from the features channel", ", ".join(features))
        return features
    started = time.perf_counter()
    normalize = Normalize(preprocess.mean, preprocess.std).to(precision.device)
    features = {name: split_features(backbone, split, preprocess, precision, normalize, num_workers,
                                     show_progress=show_progress, worker_init_fn=ignore_stop_signals)
                for name, split in splits.items()}
    log.info("features cached for %s in %.1f s", ", ".join(features), time.perf_counter() - started)
    return features
