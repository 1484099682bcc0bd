"""A training job from checked data to model artifact: epochs, checkpoints, resume, DDP, artifact.

`train` reads as torchvision's references/classification/train.py does: build, resume, then the epoch
loop (train_one_epoch, evaluate, checkpoint), then finish (train/finish.py).
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch.nn.parallel import DistributedDataParallel

from contract.cpus import usable_cpus
from train import checkpoint, distributed, featurize, launcher
from train.checkpoint import BestEpoch, TrainingState
from train.debugger import DebuggerHook, create_hook
from train.diagnostics.session import Diagnostics, NoDiagnostics
from train.diagnostics.settings import DiagnosticsSettings
from train.engine import Precision, RunningTotals, StopRequested, evaluate, train_one_epoch
from train.environment import TrainingEnvironment, check_writable
from train.errors import Interrupted, TrainingError
from train.features import cache_features
from train.finish import TrainedJob, finish
from train.gpu import usable_gpus
from train.hyperparameters import Hyperparameters, default_num_workers
from train.job_data import PreparedData, features_data, prepare_data
from train.launcher import StopFlag, ignore_stop_signals
from train.loaders import Batching
from train.metrics import format_metrics
from train.network import Normalize, Preprocess, build_classifier
from train.progress import Progress
from train.weights import StartingWeights, load_starting_weights

log = logging.getLogger(__name__)

# What makes a checkpoint this run's is every hyperparameter but these: the epoch count, the machine
# layout and int8 (after training). A rerun with another lr fails loudly instead of resuming the old run.
NOT_IN_IDENTITY = ("epochs", "num_workers", "processes_per_host", "cache_features", "featurize", "device", "quantize",
                   "int8_calibration_method", "int8_calibration_images", "int8_max_accuracy_drop",
                   "int8_min_agreement", "int8_emulated_images")


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


def train_process(local_rank: int, stop: StopFlag, hp: Hyperparameters, env: TrainingEnvironment,
                  layout: distributed.ProcessLayout, data: PreparedData, diagnostics: DiagnosticsSettings) -> None:
    """One process of the host (launcher.launch): a training job's or a featurize job's."""
    device = distributed.init_process(layout, local_rank)
    try:
        if hp.featurize:
            featurize.featurize(hp, env, data.class_folders, data.splits, device, share_host(hp, layout, device),
                                worker_init_fn=ignore_stop_signals)
        else:
            train(hp, env, data, stop, device, share_host(hp, layout, device), diagnostics)
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
        torch.set_num_threads(max(1, usable_cpus() // layout.processes_per_host))
    return max(0, workers // layout.processes_per_host)


@dataclasses.dataclass
class Network:
    """The classifier and what trains it. `model` is what the epochs run: the classifier, or its head alone
    on cached features (the same module, so checkpoints and the artifact still hold the whole network),
    wrapped in DDP when there are several processes."""

    classifier: torch.nn.Module
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: torch.nn.Module


def train(hp: Hyperparameters, env: TrainingEnvironment, data: PreparedData, stop: StopFlag, device: torch.device,
          num_workers: int, diagnostics_settings: DiagnosticsSettings) -> None:
    rank, world_size = distributed.rank_and_world()
    is_main = rank == 0
    precision = Precision.for_device(device)
    preprocess = Preprocess.for_image_size(hp.image_size)
    cached = hp.uses_feature_cache or data.features is not None
    batching = Batching(hp.batch_size, hp.seed, num_workers, preprocess, hp.augment, device.type == "cuda", rank,
                        world_size)
    net = build_network(hp, env, data, device, precision, cached, world_size)
    normalize = None if cached else Normalize(preprocess.mean, preprocess.std).to(device)  # features need none
    # SageMaker Debugger's tensors come from rank 0 (its rules read one worker's view).
    debugger = create_hook(env.debug_hook_config, net.classifier, net.criterion) if is_main else DebuggerHook()
    diagnostics = make_diagnostics(diagnostics_settings, data, net.classifier, device, env, is_main)
    identity = {k: v for k, v in {**dataclasses.asdict(hp), "classes": data.class_folders}.items()
                if k not in NOT_IN_IDENTITY}
    checkpoint_path = env.checkpoint_dir / checkpoint.CHECKPOINT_NAME

    def save(state: TrainingState) -> None:
        if is_main:
            checkpoint.save_training(checkpoint_path, identity, dataclasses.asdict(hp), trained_state(hp, net),
                                     net.optimizer.state_dict(),
                                     net.scaler.state_dict() if net.scaler.is_enabled() else None, state)

    def evaluate_split(name: str, criterion: torch.nn.Module | None = None, label: str | None = None,
                       per_image: bool = False):
        loader = batching.batches(data.splits[name], train=False, features=features.get(name))
        with Progress(label or name, len(loader), enabled=is_main) as progress:
            return evaluate(net.model, loader, precision, normalize, len(data.class_folders), progress, criterion,
                            per_image_of=len(data.splits[name].samples) if per_image else None)

    try:
        state = resume(checkpoint_path, identity, net, hp, is_main)
        features = {}
        if cached:
            features = cache_features(net.classifier.backbone, data.splits, data.features, preprocess, precision,
                                      num_workers, show_progress=is_main)
        for epoch in range(state.epoch, hp.epochs):
            loader = batching.batches(data.splits["train"], train=True, epoch=epoch, skip_batches=state.step,
                                      features=features.get("train"))
            diagnostics.start_epoch(epoch + 1, global_step=epoch * (state.step + len(loader)) + state.step)
            debugger.set_mode("TRAIN")
            with Progress(f"epoch {epoch + 1}/{hp.epochs} train", state.step + len(loader), initial=state.step,
                          enabled=is_main) as progress:
                try:
                    train_one_epoch(net.model, loader, net.optimizer, net.scaler, precision, normalize, state.totals,
                                    state.step, stop, progress, net.criterion, diagnostics.observer)
                except StopRequested as stopped:
                    state.step = stopped.args[0]
                    save(state)
                    raise Interrupted(f"stopped by {stop.signal_name} at epoch {epoch + 1} step {state.step}; "
                                      f"checkpoint saved to {checkpoint_path}") from None
            train_loss, train_accuracy, images_per_second = reduced(state.totals, device)
            debugger.set_mode("EVAL")
            valid_loss, valid_accuracy, valid_confusion, _ = evaluate_split("valid", net.criterion,
                                                                            f"epoch {epoch + 1} valid")
            values = {"train:loss": train_loss, "train:accuracy": train_accuracy, "valid:loss": valid_loss,
                      "valid:accuracy": valid_accuracy, "epoch:seconds": state.totals.seconds,
                      "train:images_per_second": images_per_second}
            state.history.append({"epoch": epoch + 1, **values})
            diagnostics.end_epoch(epoch + 1, train_loss, valid_loss, train_accuracy, valid_accuracy, valid_confusion)
            if valid_accuracy > state.best.valid_accuracy:
                state.best = BestEpoch(epoch + 1, valid_accuracy, valid_loss,
                                       {k: v.detach().cpu().clone() for k, v in trained_state(hp, net).items()})
            if is_main:
                print(format_metrics(values, epoch=epoch + 1), flush=True)
            state.epoch, state.step, state.totals = epoch + 1, 0, RunningTotals()
            save(state)
            if stop():
                raise Interrupted(f"stopped by {stop.signal_name} after epoch {epoch + 1}; checkpoint saved")
        debugger.close()  # before the export, which must not copy or trigger its hooks
        diagnostics.close()  # likewise its ReLU hooks (left on when a run has under 10 steps)
        finish(TrainedJob(hp, env, data, net.classifier, num_workers, is_main), state,
               lambda weights: load_trained_state(hp, net, weights, checkpoint_path), evaluate_split, diagnostics)
    finally:
        debugger.close()
        diagnostics.close()


def build_network(hp: Hyperparameters, env: TrainingEnvironment, data: PreparedData, device: torch.device,
                  precision: Precision, cached: bool, world_size: int) -> Network:
    torch.manual_seed(hp.seed)
    # Trained on a featurize job's output, the backbone is the one that made the features.
    start = StartingWeights(data.features.backbone_state) if data.features is not None \
        else load_starting_weights(hp.weights, hp.arch, env.pretrained_dir, data.class_folders, hp.hidden_units)
    try:
        classifier = build_classifier(hp.arch, len(data.class_folders), hp.hidden_units, start.backbone,
                                      hp.freeze_backbone)
        if start.head is not None:  # fine-tuning a finished job's classifier further
            classifier.head.load_state_dict(start.head)
    except (ValueError, RuntimeError) as error:
        raise TrainingError(f"--weights {hp.weights}: {error}") from error
    classifier.to(device)
    if precision.channels_last:
        classifier.to(memory_format=torch.channels_last)
    model = classifier.head if cached else classifier
    if world_size > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    trainable = [p for p in classifier.parameters() if p.requires_grad]
    log.info("model: %s + head(%d) -> %d classes, %s backbone, %d trainable parameters%s", hp.arch, hp.hidden_units,
             len(data.class_folders), "frozen" if hp.freeze_backbone else "trainable",
             sum(p.numel() for p in trainable), ", features cached" if cached else "")
    return Network(classifier, model, torch.optim.Adam(trainable, lr=hp.lr),
                   torch.amp.GradScaler(device.type, enabled=precision.autocast_dtype == torch.float16),
                   torch.nn.CrossEntropyLoss())


def make_diagnostics(settings: DiagnosticsSettings, data: PreparedData, classifier: torch.nn.Module,
                     device: torch.device, env: TrainingEnvironment, is_main: bool) -> NoDiagnostics:
    """Rank 0 profiles and judges the run (gradients are all-reduced: its view is everyone's)."""
    if not (is_main and settings.enabled):
        return NoDiagnostics()
    counts = [0] * len(data.class_folders)
    for _, label in data.splits["train"].samples:
        counts[label] += 1
    return Diagnostics(settings, classifier, device, data.classes, counts, env.output_data_dir, env.tensorboard_dir)


def resume(path, identity: dict, net: Network, hp: Hyperparameters, is_main: bool) -> TrainingState:
    """The state the checkpoint at `path` saved, its weights and optimizer loaded; a fresh start without one."""
    if is_main:
        for leftover in checkpoint.remove_stale_temp_files(path):
            log.warning("removed %s, a checkpoint write a killed run left unfinished", leftover.name)
    resumed = checkpoint.load_training(path, identity)
    if resumed is None:
        return TrainingState()
    load_trained_state(hp, net, resumed.model, path)
    net.optimizer.load_state_dict(resumed.optimizer)
    if resumed.scaler:
        net.scaler.load_state_dict(resumed.scaler)
    state = resumed.state
    log.info("resuming from checkpoint %s: epoch %d, step %d (%d epoch(s) done)", path, state.epoch + 1, state.step,
             len(state.history))
    return state


def trained_state(hp: Hyperparameters, net: Network) -> dict:
    """What training changes: the head alone when the backbone is frozen. A frozen backbone is rebuilt
    identically on resume (same weights, or the same seed), and leaving it out keeps each checkpoint
    and best-epoch copy ~94 MB smaller for ResNet-50: a head-on-features epoch no longer waits on disk."""
    if hp.freeze_backbone:
        return {f"head.{k}": v for k, v in net.classifier.head.state_dict().items()}
    return net.classifier.state_dict()


def load_trained_state(hp: Hyperparameters, net: Network, weights: dict, path) -> None:
    loaded = net.classifier.load_state_dict(weights, strict=not hp.freeze_backbone)
    missing = [key for key in loaded.missing_keys if key.startswith("head.")]  # backbone keys may be absent
    if missing:
        raise TrainingError(f"checkpoint {path} lacks the head's {missing[:3]}")


def reduced(totals: RunningTotals, device: torch.device) -> tuple[float, float, float]:
    """(loss, accuracy, images per second) of the epoch over all ranks."""
    sums = torch.tensor([totals.loss_sum, totals.correct, totals.count], dtype=torch.float64, device=device)
    loss_sum, correct, count = distributed.all_reduce_sum(sums).tolist()
    return loss_sum / max(1, count), correct / max(1, count), count / max(totals.seconds, 1e-9)
