"""One rank's batches of a split: images through a DataLoader, or cached features in the very same order.

Both draw from the same EpochSampler, so a job on cached features trains on exactly the batches an
image job would, and a job resumed mid-epoch skips exactly the batches it had done.
"""

from __future__ import annotations

import dataclasses

import torch

from train.data import EpochSampler, ImageFolderDataset, Split
from train.features import FeatureBatches
from train.launcher import ignore_stop_signals
from train.network import Preprocess, eval_transform, train_transform


@dataclasses.dataclass(frozen=True)
class Batching:
    batch_size: int
    seed: int
    num_workers: int
    preprocess: Preprocess
    augment: bool
    pin_memory: bool
    rank: int = 0
    world_size: int = 1

    def batches(self, split: Split, train: bool, epoch: int = 0, skip_batches: int = 0,
                features: tuple[torch.Tensor, torch.Tensor] | None = None):
        """This rank's batches of `split`: shuffled by (seed, epoch) for training, in file order otherwise;
        from cached `features` (that split's) when given."""
        sampler = EpochSampler(len(split.samples), shuffle=train, seed=self.seed, rank=self.rank,
                               world_size=self.world_size)
        sampler.set_epoch(epoch, skip_samples=skip_batches * self.batch_size)
        # A last batch of 1 breaks BatchNorm in train mode; full batches only, when there are any.
        drop_last = train and len(split.samples) // self.world_size >= self.batch_size
        if features is not None:
            return FeatureBatches(*features, sampler, self.batch_size, drop_last)
        transform = train_transform(self.preprocess, self.augment) if train else eval_transform(self.preprocess)
        return torch.utils.data.DataLoader(
            ImageFolderDataset(split.samples, transform, decode_min_side=self.preprocess.resize),
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=drop_last,
            worker_init_fn=ignore_stop_signals,
            generator=torch.Generator().manual_seed(self.seed * 7919 + epoch),
            persistent_workers=False,
            prefetch_factor=4 if self.num_workers > 0 else None,
        )
