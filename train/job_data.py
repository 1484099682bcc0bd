"""The data a job trains on, checked once on each host before any training process starts: the class
folders and every file of each split, or the classes, splits and features a featurize job recorded."""

from __future__ import annotations

import dataclasses
import logging
import time

from train import feature_bundle
from train.data import Split, check_class_sets, class_name, scan_split
from train.environment import TrainingEnvironment
from train.errors import TrainingError
from train.feature_bundle import FeatureBundle
from train.hyperparameters import Hyperparameters

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PreparedData:
    class_folders: list[str]
    splits: dict[str, Split]
    features: FeatureBundle | None = None  # set when the job trains on a featurize job's output

    @property
    def classes(self) -> list[str]:
        return [class_name(folder) for folder in self.class_folders]


def prepare_data(env: TrainingEnvironment, threads: int) -> PreparedData:
    """Check the class sets and every file once, on this host, before any process starts."""
    roots = {"train": env.train_dir, "valid": env.valid_dir}
    if env.test_dir is not None:
        roots["test"] = env.test_dir
    else:
        log.warning("no test split given: the job reports valid metrics only")
    folders = check_class_sets(roots)
    if len(folders) < 2:
        raise TrainingError(f"need at least 2 classes to train a classifier, found {len(folders)}: {folders}")
    started = time.perf_counter()
    splits = {name: scan_split(name, root, folders, threads) for name, root in roots.items()}
    log.info("data: %d classes; %s; checked in %.1f s", len(folders),
             ", ".join(f"{s.name} {len(s.samples)} images ({len(s.skipped)} skipped)" for s in splits.values()),
             time.perf_counter() - started)
    return PreparedData(class_folders=folders, splits=splits)


def features_data(hp: Hyperparameters, env: TrainingEnvironment) -> PreparedData:
    """The classes, splits and features a featurize job recorded; the job's flags must fit them."""
    if not hp.features_cacheable or hp.cache_features is False:
        raise TrainingError("a features channel trains the head on fixed features: it needs --freeze-backbone "
                            "true, --augment false and --cache-features true or auto")
    started = time.perf_counter()
    bundle = feature_bundle.read(env.features_dir)
    bundle.check_matches(hp.arch, hp.weights, hp.image_size)
    splits = bundle.splits()
    log.info("data: %d classes; features of %s from %s, read in %.1f s", len(bundle.class_folders),
             ", ".join(f"{s.name} {len(s.samples)} images" for s in splits.values()), env.features_dir,
             time.perf_counter() - started)
    return PreparedData(class_folders=bundle.class_folders, splits=splits, features=bundle)
