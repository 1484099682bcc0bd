"""After the last epoch: the best epoch's weights back in the model, the final evaluation (the test split,
else valid), and what the job ships: the model artifact, the int8 model, the report and the diagnostics."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import random
from collections.abc import Callable

import torch

from train import distributed, export, report
from train.checkpoint import TrainingState
from train.data import ImageFolderDataset
from train.diagnostics.session import NoDiagnostics
from train.diagnostics.story import SplitCounts, Story
from train.engine import Evaluation
from train.environment import TrainingEnvironment
from train.errors import TrainingError
from train.gallery import Mistake, worst_mistakes
from train.hyperparameters import Hyperparameters
from train.job_data import PreparedData
from train.launcher import ignore_stop_signals
from train.metrics import format_metrics
from train.network import Normalize, Preprocess, eval_transform
from train.quantize import Int8Settings, quantize_artifact

log = logging.getLogger(__name__)

# (split name, per_image=...) -> engine.Evaluation of the model as it is now, all ranks together
Evaluate = Callable[..., Evaluation]


@dataclasses.dataclass(frozen=True)
class TrainedJob:
    hp: Hyperparameters
    env: TrainingEnvironment
    data: PreparedData
    classifier: torch.nn.Module
    num_workers: int
    is_main: bool


def finish(job: TrainedJob, state: TrainingState, load_trained_state: Callable[[dict], None], evaluate: Evaluate,
           diagnostics: NoDiagnostics) -> None:
    best = state.best
    if best.state is not None:
        load_trained_state(best.state)
    if job.is_main:  # the tuner's objective is the last value printed: the shipped epoch's
        print(format_metrics({"valid:loss": best.valid_loss, "valid:accuracy": best.valid_accuracy},
                             best_epoch=best.epoch), flush=True)
    metrics = {"best_epoch": best.epoch, "valid:accuracy": best.valid_accuracy, "valid:loss": best.valid_loss}
    split_name = "test" if "test" in job.data.splits else "valid"
    final = evaluate(split_name, per_image=True)  # every rank: gathering each image's answer is collective
    if split_name == "test":
        metrics.update({"test:loss": final[0], "test:accuracy": final[1]})
        if job.is_main:
            print(format_metrics({"test:loss": final[0], "test:accuracy": final[1]}), flush=True)
    if job.is_main:
        _write_outputs(job, state, metrics, split_name, final, diagnostics)
    distributed.wait_for_all()


def _write_outputs(job: TrainedJob, state: TrainingState, metrics: dict, split_name: str, final,
                   diagnostics: NoDiagnostics) -> None:
    log.info("training done (best epoch %s); writing the model artifact and report", state.best.epoch)
    loss, accuracy, confusion, predictions = final
    preprocess = Preprocess.for_image_size(job.hp.image_size)
    metadata = export.model_metadata(
        classes=job.data.classes, class_folders=job.data.class_folders, preprocess=preprocess,
        arch=job.hp.arch, hyperparameters=dataclasses.asdict(job.hp), metrics=metrics)
    try:
        export.write_artifact(job.env.model_dir, job.classifier.cpu(), metadata)
        if job.hp.quantize == "int8":
            metadata["int8"] = _quantize(job, preprocess)
            export.write_metadata(job.env.model_dir, metadata)
        report.write_report(job.env.output_data_dir, classes=job.data.classes, split_name=split_name,
                            loss=loss, accuracy=accuracy, confusion=confusion, history=state.history,
                            splits=list(job.data.splits.values()))
        mistakes = worst_mistakes(job.data.splits[split_name].samples, predictions, job.data.classes)
        diagnostics.finish(job.env.output_data_dir,
                           _story(job, state, split_name, loss, accuracy, confusion, metadata.get("int8"), mistakes))
    except OSError as error:
        raise TrainingError(f"cannot write the model or report: {error}") from error
    log.info("model artifact written to %s; report to %s", job.env.model_dir, job.env.output_data_dir)


def _quantize(job: TrainedJob, preprocess: Preprocess) -> dict:
    """model.int8.onnx from the exported model.onnx: calibrated on a seeded sample of validation images,
    scored against the float model on the test split (valid when there is none)."""
    valid = job.data.splits["valid"]
    if job.data.features is not None or not valid.samples:
        # A tuning trial on a featurize job's output: the objective is all it is for, and it has no images.
        reason = "int8 model not made: trained on a features channel, there are no images to calibrate on"
        log.warning("%s", reason)
        return {"file": None, "reason": reason}
    hp = job.hp
    sample = random.Random(hp.seed).sample(valid.samples, min(hp.int8_calibration_images, len(valid.samples)))
    compared = job.data.splits.get("test", valid)
    normalize = Normalize(preprocess.mean, preprocess.std)

    def inputs(samples, batch_size):
        dataset = ImageFolderDataset(samples, eval_transform(preprocess), preprocess.resize)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=job.num_workers,
                                             worker_init_fn=ignore_stop_signals)
        with torch.no_grad():
            for images, labels in loader:
                yield normalize(images).numpy(), labels.numpy()

    settings = Int8Settings(hp.int8_calibration_method, hp.int8_calibration_images, hp.int8_max_accuracy_drop,
                            hp.int8_min_agreement, hp.int8_emulated_images)
    return quantize_artifact(job.env.model_dir, export.INPUT_NAME, (batch for batch, _ in inputs(sample, 16)),
                             inputs(compared.samples, 64), compared.name, settings)


def _story(job: TrainedJob, state: TrainingState, split_name: str, loss: float, accuracy: float,
           confusion: torch.Tensor, int8: dict | None = None,
           mistakes: tuple[list[Mistake], int] = ([], 0)) -> Story:
    """What report.html opens with: the job, its data and settings, and what the shipped model scores."""
    return Story(
        job=os.environ.get("TRAINING_JOB_NAME") or "a local run (no TRAINING_JOB_NAME)",
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        splits=[SplitCounts(s.name, len(s.samples), len(s.skipped), len(s.ignored))
                for s in job.data.splits.values()],
        hyperparameters=dataclasses.asdict(job.hp), split_name=split_name, accuracy=accuracy, loss=loss,
        best_epoch=state.best.epoch, classes=job.data.classes, confusion=confusion.tolist(), int8=int8,
        mistakes=mistakes[0], mistakes_total=mistakes[1])
