"""A training job from checked data to model artifact: epochs, checkpoints, resume, DDP, artifact."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import random
import time

import torch
from torch.nn.parallel import DistributedDataParallel

from train import checkpoint, distributed, export, feature_bundle, featurize, launcher, report
from train.data import EpochSampler, ImageFolderDataset, Split, check_class_sets, class_name, scan_split
from train.debugger import DebuggerHook, create_hook
from train.diagnostics.session import Diagnostics, NoDiagnostics
from train.diagnostics.settings import DiagnosticsSettings
from train.diagnostics.story import SplitCounts, Story
from train.engine import Precision, RunningTotals, StopRequested, evaluate, train_one_epoch
from train.environment import TrainingEnvironment, check_writable
from train.errors import Interrupted, TrainingError
from train.feature_bundle import FeatureBundle
from train.features import FeatureBatches, split_features
from train.gpu import usable_gpus
from train.hyperparameters import Hyperparameters, default_num_workers
from train.launcher import StopFlag, ignore_stop_signals
from train.metrics import format_metrics
from train.network import Normalize, Preprocess, build_classifier, eval_transform, train_transform
from train.progress import Progress
from train.quantize import Int8Settings, quantize_artifact
from train.weights import StartingWeights, load_starting_weights

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PreparedData:
    class_folders: list[str]
    splits: dict[str, Split]
    features: FeatureBundle | None = None  # set when the job trains on a featurize job's output

    @property
    def classes(self) -> list[str]:
        return [class_name(folder) for folder in self.class_folders]


def run(hp: Hyperparameters, env: TrainingEnvironment, diagnostics: DiagnosticsSettings | None = None) -> None:
    """A training job, or a featurize job (--featurize true): the same layout, data check and processes."""
    if hp.featurize and env.features_dir is not None:
        raise TrainingError(f"--featurize true computes features from images; this job was also given "
                            f"features ({env.features_dir}): give it the training data instead")
    layout = distributed.plan_layout(hp.processes_per_host, usable_gpus(hp.device, env.num_gpus), env.hosts,
                                     env.host_rank)
    check_writable(env)
    if hp.weights == "none" and hp.freeze_backbone and not hp.featurize:
        log.warning("--weights none with --freeze-backbone true trains only the head on a random backbone that never "
                    "learns: expect accuracy near chance. Use --weights imagenet (or a checkpoint), or "
                    "--freeze-backbone false to train the whole network from scratch")
    workers = hp.num_workers if hp.num_workers is not None else default_num_workers()
    data = prepare_data(env, threads=max(1, workers)) if env.features_dir is None else features_data(hp, env)
    log.info("process layout: %d host(s) x %d process(es), %s", layout.num_hosts, layout.processes_per_host,
             "CUDA" if layout.use_cuda else "CPU")
    launcher.launch(train_process, (hp, env, layout, data, diagnostics or DiagnosticsSettings()),
                    layout.processes_per_host)


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


def train_process(local_rank: int, stop: StopFlag, hp: Hyperparameters, env: TrainingEnvironment,
                  layout: distributed.ProcessLayout, data: PreparedData, diagnostics: DiagnosticsSettings) -> None:
    """One process of the host (launcher.launch): a training job's or a featurize job's."""
    device = distributed.init_process(layout, local_rank)
    try:
        if hp.featurize:
            featurize.featurize(hp, env, data.class_folders, data.splits, device, share_host(hp, layout, device),
                                worker_init_fn=ignore_stop_signals)
        else:
            _Job(hp, env, layout, data, stop, device, diagnostics).run()
    except RuntimeError as error:
        if layout.distributed and distributed.peer_lost(error):
            raise TrainingError(f"lost another process of this job ({' '.join(str(error).split())[:300]}): it failed "
                                "or its host went away; the failure file of the host that failed says why") from error
        raise
    finally:
        distributed.shutdown()


def share_host(hp: Hyperparameters, layout: distributed.ProcessLayout, device: torch.device) -> int:
    """This process's loader workers (the host's, split between its processes); on CPU, its share of the
    cores for torch's threads too."""
    workers = hp.num_workers if hp.num_workers is not None else default_num_workers()
    if layout.processes_per_host == 1:
        return workers
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // layout.processes_per_host))
    return max(0, workers // layout.processes_per_host)


class _Job:
    def __init__(self, hp, env, layout, data, stop, device, diagnostics_settings):
        self.hp, self.env, self.data, self.stop, self.device = hp, env, data, stop, device
        self.diagnostics_settings = diagnostics_settings
        self.rank, self.world_size = distributed.rank_and_world()
        self.is_main = self.rank == 0
        self.precision = Precision.for_device(device)
        self.num_workers = share_host(hp, layout, device)
        self.preprocess = Preprocess.for_image_size(hp.image_size)
        self.checkpoint_path = env.checkpoint_dir / checkpoint.CHECKPOINT_NAME
        # What makes a checkpoint this run's: everything but the epoch count and the machine layout,
        # so a rerun with another lr fails loudly instead of silently resuming the old run.
        self.identity = {**dataclasses.asdict(hp), "classes": data.class_folders}
        for machine_specific in ("epochs", "num_workers", "processes_per_host", "cache_features", "featurize",
                                 "device", "quantize", "int8_calibration_method", "int8_calibration_images",
                                 "int8_max_accuracy_drop", "int8_min_agreement"):  # int8: after training
            self.identity.pop(machine_specific)
        self.cached = hp.uses_feature_cache or data.features is not None
        self.features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- setup ---------------------------------------------------------------------------------
    def _build(self) -> None:
        torch.manual_seed(self.hp.seed)
        # Trained on a featurize job's output, the backbone is the one that made the features.
        start = StartingWeights(self.data.features.backbone_state) if self.data.features is not None \
            else load_starting_weights(self.hp.weights, self.hp.arch, self.env.pretrained_dir,
                                       self.data.class_folders, self.hp.hidden_units)
        try:
            self.classifier = build_classifier(self.hp.arch, len(self.data.class_folders), self.hp.hidden_units,
                                               start.backbone, self.hp.freeze_backbone)
            if start.head is not None:  # fine-tuning a finished job's classifier further
                self.classifier.head.load_state_dict(start.head)
        except (ValueError, RuntimeError) as error:
            raise TrainingError(f"--weights {self.hp.weights}: {error}") from error
        self.classifier.to(self.device)
        if self.precision.channels_last:
            self.classifier.to(memory_format=torch.channels_last)
        # With cached features only the head runs during the epochs; it is the same module as the
        # classifier's head, so checkpoints and the artifact still hold the whole network.
        trained = self.classifier.head if self.cached else self.classifier
        self.model = trained
        if self.world_size > 1:
            self.model = DistributedDataParallel(trained, device_ids=[self.device.index]
                                                 if self.device.type == "cuda" else None)
        trainable = [p for p in self.classifier.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=self.hp.lr)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.precision.autocast_dtype == torch.float16)
        self.criterion = torch.nn.CrossEntropyLoss()
        # SageMaker Debugger's tensors come from rank 0 (its rules read one worker's view).
        self.debugger = create_hook(self.env.debug_hook_config, self.classifier, self.criterion) \
            if self.is_main else DebuggerHook()
        self.diagnostics = self._diagnostics()
        self.normalize = Normalize(self.preprocess.mean, self.preprocess.std).to(self.device)
        self.input_normalize = None if self.cached else self.normalize  # cached features need none
        log.info("model: %s + head(%d) -> %d classes, %s backbone, %d trainable parameters%s",
                 self.hp.arch, self.hp.hidden_units, len(self.data.class_folders),
                 "frozen" if self.hp.freeze_backbone else "trainable", sum(p.numel() for p in trainable),
                 ", features cached" if self.cached else "")

    def _diagnostics(self):
        """Rank 0 profiles and judges the run (gradients are all-reduced: its view is everyone's)."""
        if not (self.is_main and self.diagnostics_settings.enabled):
            return NoDiagnostics()
        counts = [0] * len(self.data.class_folders)
        for _, label in self.data.splits["train"].samples:
            counts[label] += 1
        return Diagnostics(self.diagnostics_settings, self.classifier, self.device, self.data.classes, counts,
                           self.env.output_data_dir, self.env.tensorboard_dir)

    def _loader(self, split: Split, train: bool, epoch: int = 0, skip_batches: int = 0):
        """This rank's batches of a split: images, or cached features in the very same order."""
        sampler = EpochSampler(len(split.samples), shuffle=train, seed=self.hp.seed, rank=self.rank,
                               world_size=self.world_size)
        sampler.set_epoch(epoch, skip_samples=skip_batches * self.hp.batch_size)
        # A last batch of 1 breaks BatchNorm in train mode; full batches only, when there are any.
        drop_last = train and len(split.samples) // self.world_size >= self.hp.batch_size
        if self.cached:
            return FeatureBatches(*self.features[split.name], sampler, self.hp.batch_size, drop_last)
        transform = train_transform(self.preprocess, self.hp.augment) if train else eval_transform(self.preprocess)
        return self._image_loader(split, transform, sampler, drop_last, epoch)

    def _image_loader(self, split: Split, transform, sampler, drop_last: bool, epoch: int = 0):
        dataset = ImageFolderDataset(split.samples, transform, decode_min_side=self.preprocess.resize)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.hp.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=drop_last,
            worker_init_fn=ignore_stop_signals,
            generator=torch.Generator().manual_seed(self.hp.seed * 7919 + epoch),
            persistent_workers=False,
            prefetch_factor=4 if self.num_workers > 0 else None,
        )

    def _cache_features(self) -> None:
        """Every split's backbone features, once: each rank computes its shard, and all ranks get every split
        (the training shards differ per epoch)."""
        if self.data.features is not None:  # a featurize job's output, given as the features channel
            self.features = self.data.features.features(self.device)
            log.info("features of %s taken from the features channel", ", ".join(self.features))
            return
        started = time.perf_counter()
        for name, split in self.data.splits.items():
            self.features[name] = split_features(self.classifier.backbone, split, self.preprocess, self.precision,
                                                 self.normalize, self.num_workers, show_progress=self.is_main,
                                                 worker_init_fn=ignore_stop_signals)
        log.info("features cached for %s in %.1f s", ", ".join(self.features), time.perf_counter() - started)

    # -- checkpoints -----------------------------------------------------------------------------
    def _resume(self) -> None:
        self.start_epoch, self.start_step, self.totals = 0, 0, RunningTotals()
        self.history: list[dict] = []
        self.best = {"epoch": None, "valid_accuracy": -1.0, "valid_loss": float("inf"), "state": None}
        if self.is_main:
            for leftover in checkpoint.remove_stale_temp_files(self.checkpoint_path):
                log.warning("removed %s, a checkpoint write a killed run left unfinished", leftover.name)
        saved = checkpoint.load(self.checkpoint_path)
        if saved is None:
            return
        checkpoint.check_compatible(saved, self.identity, self.checkpoint_path)
        self._load_trained_state(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        self.start_epoch, self.start_step = saved["epoch"], saved["step"]
        self.totals = RunningTotals(**saved["totals"])
        self.history = saved["history"]
        self.best = saved["best"]
        log.info("resuming from checkpoint %s: epoch %d, step %d (%d epoch(s) done)",
                 self.checkpoint_path, self.start_epoch + 1, self.start_step, len(self.history))

    def _trained_state(self) -> dict:
        """What training changes: the head alone when the backbone is frozen. A frozen backbone is rebuilt
        identically on resume (same weights, or the same seed), and leaving it out keeps each checkpoint
        and best-epoch copy ~94 MB smaller for ResNet-50: a head-on-features epoch no longer waits on disk."""
        if self.hp.freeze_backbone:
            return {f"head.{k}": v for k, v in self.classifier.head.state_dict().items()}
        return self.classifier.state_dict()

    def _load_trained_state(self, state: dict) -> None:
        loaded = self.classifier.load_state_dict(state, strict=not self.hp.freeze_backbone)
        missing = [key for key in loaded.missing_keys if key.startswith("head.")]  # backbone keys may be absent
        if missing:
            raise TrainingError(f"checkpoint {self.checkpoint_path} lacks the head's {missing[:3]}")

    def _save_checkpoint(self, epoch: int, step: int, totals: RunningTotals) -> None:
        if not self.is_main:
            return
        checkpoint.save_atomic({
            "identity": self.identity,
            "hyperparameters": dataclasses.asdict(self.hp),
            "model": self._trained_state(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": epoch,
            "step": step,
            "totals": dataclasses.asdict(totals),
            "history": self.history,
            "best": self.best,
        }, self.checkpoint_path)

    # -- the job -------------------------------------------------------------------------------
    def run(self) -> None:
        self._build()
        try:
            self._run()
        finally:
            self.debugger.close()
            self.diagnostics.close()

    def _run(self) -> None:
        self._resume()
        if self.cached:
            self._cache_features()
        splits = self.data.splits
        valid_loader = self._loader(splits["valid"], train=False)
        for epoch in range(self.start_epoch, self.hp.epochs):
            skip = self.start_step if epoch == self.start_epoch else 0
            totals = self.totals if epoch == self.start_epoch else RunningTotals()
            self._train_epoch(epoch, skip, totals)
            train_loss, train_accuracy, images_per_second = self._reduced(totals)
            self.debugger.set_mode("EVAL")
            with Progress(f"epoch {epoch + 1} valid", len(valid_loader), enabled=self.is_main) as progress:
                valid_loss, valid_accuracy, valid_confusion = evaluate(
                    self.model, valid_loader, self.precision, self.input_normalize, len(self.data.class_folders),
                    progress, self.criterion)
            values = {"train:loss": train_loss, "train:accuracy": train_accuracy, "valid:loss": valid_loss,
                      "valid:accuracy": valid_accuracy, "epoch:seconds": totals.seconds,
                      "train:images_per_second": images_per_second}
            self.history.append({"epoch": epoch + 1, **values})
            self.diagnostics.end_epoch(epoch + 1, train_loss, valid_loss, train_accuracy, valid_accuracy,
                                       valid_confusion)
            if valid_accuracy > self.best["valid_accuracy"]:
                self.best = {"epoch": epoch + 1, "valid_accuracy": valid_accuracy, "valid_loss": valid_loss,
                             "state": {k: v.detach().cpu().clone() for k, v in self._trained_state().items()}}
            if self.is_main:
                print(format_metrics(values, epoch=epoch + 1), flush=True)
            self._save_checkpoint(epoch + 1, 0, RunningTotals())
            if self.stop():
                raise Interrupted(f"stopped by {self.stop.signal_name} after epoch {epoch + 1}; checkpoint saved")
        self.debugger.close()  # before the export, which must not copy or trigger its hooks
        self.diagnostics.close()  # likewise its ReLU hooks (left on when a run has under 10 steps)
        self._finish()

    def _train_epoch(self, epoch: int, skip: int, totals: RunningTotals) -> None:
        loader = self._loader(self.data.splits["train"], train=True, epoch=epoch, skip_batches=skip)
        self.diagnostics.start_epoch(epoch + 1, global_step=epoch * (skip + len(loader)) + skip)
        with Progress(f"epoch {epoch + 1}/{self.hp.epochs} train", skip + len(loader), initial=skip,
                      enabled=self.is_main) as progress:
            self.debugger.set_mode("TRAIN")
            try:
                train_one_epoch(self.model, loader, self.optimizer, self.scaler, self.precision, self.input_normalize,
                                totals, skip, self.stop, progress, self.criterion, self.diagnostics.observer)
            except StopRequested as stopped:
                step = stopped.args[0]
                self._save_checkpoint(epoch, step, totals)
                raise Interrupted(f"stopped by {self.stop.signal_name} at epoch {epoch + 1} step {step}; "
                                  f"checkpoint saved to {self.checkpoint_path}") from None

    def _reduced(self, totals: RunningTotals) -> tuple[float, float, float]:
        sums = torch.tensor([totals.loss_sum, totals.correct, totals.count], dtype=torch.float64, device=self.device)
        loss_sum, correct, count = distributed.all_reduce_sum(sums).tolist()
        return loss_sum / max(1, count), correct / max(1, count), count / max(totals.seconds, 1e-9)

    def _finish(self) -> None:
        if self.best["state"] is not None:
            self._load_trained_state(self.best["state"])
        num_classes = len(self.data.class_folders)
        metrics = {"best_epoch": self.best["epoch"], "valid:accuracy": self.best["valid_accuracy"],
                   "valid:loss": self.best["valid_loss"]}
        if self.is_main:  # the tuner's objective is the last value printed: the shipped epoch's
            print(format_metrics({"valid:loss": self.best["valid_loss"], "valid:accuracy": self.best["valid_accuracy"]},
                                 best_epoch=self.best["epoch"]), flush=True)
        final_split = "valid"
        final = None
        if "test" in self.data.splits:
            final_split = "test"
            test_loader = self._loader(self.data.splits["test"], train=False)
            with Progress("test", len(test_loader), enabled=self.is_main) as progress:
                final = evaluate(self.model, test_loader, self.precision, self.input_normalize, num_classes, progress)
            metrics.update({"test:loss": final[0], "test:accuracy": final[1]})
            if self.is_main:
                print(format_metrics({"test:loss": final[0], "test:accuracy": final[1]}), flush=True)
        else:
            valid_loader = self._loader(self.data.splits["valid"], train=False)
            final = evaluate(self.model, valid_loader, self.precision, self.input_normalize, num_classes,
                             Progress("valid", 0, enabled=False))
        if self.is_main:
            self._write_outputs(metrics, final_split, final)
        distributed.wait_for_all()

    def _quantize(self) -> dict:
        """model.int8.onnx from the exported model.onnx: calibrated on a seeded sample of validation images,
        scored against the float model on the test split (valid when there is none)."""
        valid = self.data.splits["valid"]
        if self.data.features is not None or not valid.samples:
            # A tuning trial on a featurize job's output: the objective is all it is for, and it has no images.
            reason = "int8 model not made: trained on a features channel, there are no images to calibrate on"
            log.warning("%s", reason)
            return {"file": None, "reason": reason}
        sample = random.Random(self.hp.seed).sample(valid.samples, min(self.hp.int8_calibration_images,
                                                                       len(valid.samples)))
        compared = self.data.splits.get("test", valid)
        normalize = Normalize(self.preprocess.mean, self.preprocess.std)

        def inputs(samples, batch_size):
            dataset = ImageFolderDataset(samples, eval_transform(self.preprocess), self.preprocess.resize)
            loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=self.num_workers,
                                                 worker_init_fn=ignore_stop_signals)
            with torch.no_grad():
                for images, labels in loader:
                    yield normalize(images).numpy(), labels.numpy()

        settings = Int8Settings(self.hp.int8_calibration_method, self.hp.int8_calibration_images,
                                self.hp.int8_max_accuracy_drop, self.hp.int8_min_agreement)
        return quantize_artifact(self.env.model_dir, export.INPUT_NAME,
                                 (batch for batch, _ in inputs(sample, 16)), inputs(compared.samples, 64),
                                 compared.name, settings)

    def _story(self, split_name: str, loss: float, accuracy: float, confusion: torch.Tensor,
               int8: dict | None = None) -> Story:
        """What report.html opens with: the job, its data and settings, and what the shipped model scores."""
        return Story(
            job=os.environ.get("TRAINING_JOB_NAME") or "a local run (no TRAINING_JOB_NAME)",
            date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            splits=[SplitCounts(s.name, len(s.samples), len(s.skipped), len(s.ignored))
                    for s in self.data.splits.values()],
            hyperparameters=dataclasses.asdict(self.hp), split_name=split_name, accuracy=accuracy, loss=loss,
            best_epoch=self.best["epoch"], classes=self.data.classes, confusion=confusion.tolist(), int8=int8)

    def _write_outputs(self, metrics: dict, split_name: str, final) -> None:
        log.info("training done (best epoch %s); writing the model artifact and report", self.best["epoch"])
        loss, accuracy, confusion = final
        metadata = export.model_metadata(
            classes=self.data.classes, class_folders=self.data.class_folders, preprocess=self.preprocess,
            arch=self.hp.arch, hyperparameters=dataclasses.asdict(self.hp), metrics=metrics)
        try:
            export.write_artifact(self.env.model_dir, self.classifier.cpu(), metadata)
            if self.hp.quantize == "int8":
                metadata["int8"] = self._quantize()
                export.write_metadata(self.env.model_dir, metadata)
            report.write_report(self.env.output_data_dir, classes=self.data.classes, split_name=split_name,
                                loss=loss, accuracy=accuracy, confusion=confusion, history=self.history,
                                splits=list(self.data.splits.values()))
            self.diagnostics.finish(self.env.output_data_dir, self._story(split_name, loss, accuracy, confusion,
                                                                          metadata.get("int8")))
        except OSError as error:
            raise TrainingError(f"cannot write the model or report: {error}") from error
        log.info("model artifact written to %s; report to %s", self.env.model_dir, self.env.output_data_dir)
