"""The featurize job (`--featurize true`): one backbone pass over every split, written for tuning trials.

A tuning run's trials differ only in the head's hyperparameters, yet a frozen backbone gives
each of them the same features: this job computes them once (eval transform, the feature
cache's own) and writes a feature bundle to the model dir, which SageMaker uploads as the
job's model.tar.gz. Trials take that as their `features` channel and train only the head.
It runs in the training job's processes (train.trainer: the same layout, data check and
launcher); under DDP each rank computes its shard of every split and rank 0 writes.
"""

from __future__ import annotations

import logging
import time

import torch

from train import distributed, feature_bundle
from train.data import Split
from train.environment import TrainingEnvironment
from train.errors import TrainingError
from train.features import backbone_features
from train.hyperparameters import Hyperparameters

log = logging.getLogger(__name__)


def featurize(hp: Hyperparameters, env: TrainingEnvironment, class_folders: list[str], splits: dict[str, Split],
              device: torch.device, workers: int, worker_init_fn=None) -> None:
    """This process's part: its shard of every split's features (all of them in one process); rank 0 writes."""
    started = time.perf_counter()
    main = distributed.is_main_process()
    backbone, features = backbone_features(splits, arch=hp.arch, weights=hp.weights,
                                           pretrained_dir=env.pretrained_dir, image_size=hp.image_size,
                                           seed=hp.seed, device=device, num_workers=workers, show_progress=main,
                                           worker_init_fn=worker_init_fn)
    if not main:
        return
    try:
        feature_bundle.write(env.model_dir, arch=hp.arch, weights=hp.weights, image_size=hp.image_size,
                             class_folders=class_folders, splits=splits, features=features,
                             backbone_state=backbone.state_dict())
    except OSError as error:
        raise TrainingError(f"cannot write the features to {env.model_dir}: {error}") from error
    counts = ", ".join(f"{name} {len(values)}" for name, (values, _) in features.items())
    dim = next(iter(features.values()))[0].shape[1]
    log.info("features written to %s: %s images x %d values, %s backbone, %d px, in %.1f s", env.model_dir,
             counts, dim, hp.arch, hp.image_size, time.perf_counter() - started)
    print(f"featurized: {counts} images, {dim} features each", flush=True)
