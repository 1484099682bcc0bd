"""The featurize job (`--featurize true`): one backbone pass over every split, written for tuning trials.

A tuning run's trials differ only in the head's hyperparameters, yet a frozen backbone gives
each of them the same features: this job computes them once (eval transform, the feature
cache's own) and writes a feature bundle to the model dir, which SageMaker uploads as the
job's model.tar.gz. Trials take that as their `features` channel and train only the head.
"""

from __future__ import annotations

import logging
import time

import torch

from train import feature_bundle
from train.environment import TrainingEnvironment
from train.errors import TrainingError
from train.features import backbone_features
from train.gpu import usable_gpus
from train.hyperparameters import Hyperparameters, default_num_workers

log = logging.getLogger(__name__)


def run(hp: Hyperparameters, env: TrainingEnvironment) -> None:
    from train.trainer import prepare_data  # the same checks and skipped-file rules as a training job

    if env.features_dir is not None:
        raise TrainingError(f"--featurize true computes features from images; this job was also given "
                            f"features ({env.features_dir}): give it the training data instead")
    device = torch.device("cuda" if usable_gpus(hp.device, env.num_gpus) else "cpu")  # before the data check
    started = time.perf_counter()
    workers = hp.num_workers if hp.num_workers is not None else default_num_workers()
    data = prepare_data(env, threads=max(1, workers))
    backbone, features = backbone_features(data.splits, arch=hp.arch, weights=hp.weights,
                                           pretrained_dir=env.pretrained_dir, image_size=hp.image_size,
                                           seed=hp.seed, device=device, num_workers=workers)
    try:
        feature_bundle.write(env.model_dir, arch=hp.arch, weights=hp.weights, image_size=hp.image_size,
                             class_folders=data.class_folders, splits=data.splits, features=features,
                             backbone_state=backbone.state_dict())
    except OSError as error:
        raise TrainingError(f"cannot write the features to {env.model_dir}: {error}") from error
    counts = ", ".join(f"{name} {len(values)}" for name, (values, _) in features.items())
    dim = next(iter(features.values()))[0].shape[1]
    log.info("features written to %s: %s images x %d values, %s backbone, %d px, in %.1f s", env.model_dir,
             counts, dim, hp.arch, hp.image_size, time.perf_counter() - started)
    print(f"featurized: {counts} images, {dim} features each", flush=True)
