"""Hyperparameters as command-line flags, the way SageMaker passes them (`--name value`).

SageMaker hands every hyperparameter over as a string, so booleans arrive as
"True"/"false" and numbers as "0.01"; the parsers below accept those forms and
reject anything else with a message that names the flag.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from contract.booleans import parse_bool
from contract.cpus import usable_cpus
from train.diagnostics import settings as diagnostics
from train.errors import UsageError

ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "resnet101")
# Keys SageMaker itself adds to a job's hyperparameters (the tuner's objective,
# the SDK's framework keys): they are not ours, so they are accepted and ignored.
_RESERVED_PREFIXES = ("--_", "--sagemaker_", "--sagemaker-")


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    lr: float = 0.001
    batch_size: int = 32
    epochs: int = 5
    arch: str = "resnet50"
    hidden_units: int = 256
    freeze_backbone: bool = True
    image_size: int = 224
    weights: str = "imagenet"
    augment: bool = True
    seed: int = 42
    num_workers: int | None = None  # None: chosen from the CPU count
    processes_per_host: int | None = None  # None: one per GPU, else one
    cache_features: bool | None = None  # None: whenever it applies (frozen backbone, no augmentation)
    featurize: bool = False  # write the backbone's features of every split instead of training
    device: str = "auto"  # auto: the GPUs SageMaker gives the host (SM_NUM_GPUS), else whatever CUDA sees
    quantize: str = "int8"  # int8: model.int8.onnx beside model.onnx, when it keeps the float model's answers
    int8_calibration_method: str = "minmax"
    int8_calibration_images: int = 128  # from the validation split, never test
    int8_max_accuracy_drop: float = 1.0  # test accuracy points the int8 model may lose ...
    int8_min_agreement: float = 0.98  # ... and the share of test images it must classify as the float model does
    int8_emulated_images: int = 16  # test images run again under an emulated AVX2 CPU (train/int8_levels.py)

    @property
    def features_cacheable(self) -> bool:
        return self.freeze_backbone and not self.augment

    @property
    def uses_feature_cache(self) -> bool:
        return self.features_cacheable if self.cache_features is None else self.cache_features


@dataclasses.dataclass(frozen=True)
class PathOverrides:
    """Directory flags for runs outside SageMaker; None means 'from the environment'."""

    base_dir: Path | None = None
    data_dir: Path | None = None
    train_dir: Path | None = None
    valid_dir: Path | None = None
    test_dir: Path | None = None
    model_dir: Path | None = None
    output_data_dir: Path | None = None
    checkpoint_dir: Path | None = None
    pretrained_dir: Path | None = None
    tensorboard_dir: Path | None = None
    features_dir: Path | None = None


def str_to_bool(value: str) -> bool:
    try:
        return parse_bool(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _bounded(kind, minimum, maximum):
    def parse(value: str):
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
        if kind is int:
            if not number.is_integer():
                raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}")
            number = int(number)
        if not minimum <= number <= maximum:  # also rejects nan
            raise argparse.ArgumentTypeError(f"must be between {minimum} and {maximum}, got {value!r}")
        return number

    return parse


def _auto_or(parse):
    def parse_auto(value: str):
        return None if str(value).strip().lower() == "auto" else parse(value)

    return parse_auto


def _weights(value: str) -> str:
    """imagenet, none, or a path. Whether the path exists is the job's question (check_files), not the
    parser's: scripts parse a job's hyperparameters on a laptop, where a container path means nothing."""
    lowered = value.strip().lower()
    if lowered in ("imagenet", "none"):
        return lowered
    if not value.strip():
        raise argparse.ArgumentTypeError("expected imagenet, none or a path, got an empty value")
    return value


def check_files(hp: Hyperparameters) -> None:
    """What only the machine that runs the job can check: that `--weights PATH` is there."""
    if hp.weights not in ("imagenet", "none") and not Path(hp.weights).exists():
        raise UsageError(f"--weights {hp.weights}: no such file or folder (expected imagenet, none, a state dict, "
                         "or a training job's model.pt, model folder or model.tar.gz)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit 2; we want a failure file
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    defaults = Hyperparameters()
    parser = _Parser(
        prog="python -m train",
        description="Fine-tune an ImageNet ResNet into an image classifier (SageMaker training contract).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hp = parser.add_argument_group("hyperparameters")
    hp.add_argument("--lr", type=_bounded(float, 1e-8, 10.0), default=defaults.lr, help="Adam learning rate")
    hp.add_argument("--batch-size", type=_bounded(int, 1, 65536), default=defaults.batch_size,
                    help="images per step (per process under DDP)")
    hp.add_argument("--epochs", type=_bounded(int, 1, 10000), default=defaults.epochs)
    hp.add_argument("--arch", choices=ARCHITECTURES, default=defaults.arch, help="backbone")
    hp.add_argument("--hidden-units", type=_bounded(int, 1, 65536), default=defaults.hidden_units,
                    help="width of the head's hidden layer (Linear-ReLU-Linear)")
    hp.add_argument("--freeze-backbone", type=str_to_bool, default=defaults.freeze_backbone,
                    help="train only the head (true) or the whole network (false)")
    hp.add_argument("--image-size", type=_bounded(int, 32, 1024), default=defaults.image_size,
                    help="square crop fed to the network")
    hp.add_argument("--weights", type=_weights, default=defaults.weights,
                    help="backbone init: imagenet, none, or a path to a torchvision state dict")
    hp.add_argument("--augment", type=str_to_bool, default=defaults.augment,
                    help="random resized crop + horizontal flip on the train split")
    hp.add_argument("--seed", type=_bounded(int, 0, 2**31 - 1), default=defaults.seed)
    hp.add_argument("--num-workers", type=_auto_or(_bounded(int, 0, 256)), default="auto",
                    help="data loader processes per training process (auto: from the CPU count)")
    hp.add_argument("--processes-per-host", type=_auto_or(_bounded(int, 1, 64)), default="auto",
                    help="DDP processes on this host (auto: one per GPU, else one)")
    hp.add_argument("--device", choices=("auto", "cuda", "cpu"), default=defaults.device,
                    help="auto: the host's GPUs (SM_NUM_GPUS on SageMaker), else the CPU; cuda: fail unless a GPU "
                         "works; cpu: the CPU even on a GPU host. GPUs that were asked for and do not work end the "
                         "job at once, never a silent CPU run")

    hp.add_argument("--cache-features", type=_auto_or(str_to_bool), default="auto",
                    help="compute the frozen backbone's features once and train the head on them "
                         "(auto: whenever --freeze-backbone is true and --augment false)")

    hp.add_argument("--featurize", type=str_to_bool, default=defaults.featurize,
                    help="write the frozen backbone's features of every split to the model dir and stop; "
                         "tuning trials take that output as their 'features' channel")

    int8 = parser.add_argument_group("int8 model for CPU serving (ONNX Runtime static quantization)")
    int8.add_argument("--quantize", choices=("int8", "none"), default=defaults.quantize,
                      help="int8: also write model.int8.onnx (QDQ, per-channel int8 weights), calibrated on "
                           "validation images and checked against model.onnx on the test split; none: float only")
    int8.add_argument("--int8-calibration-method", choices=("minmax", "entropy", "percentile"),
                      default=defaults.int8_calibration_method, help="how activation ranges are chosen")
    int8.add_argument("--int8-calibration-images", type=_bounded(int, 1, 100000),
                      default=defaults.int8_calibration_images,
                      help="validation images (a seeded random sample) the ranges are calibrated on")
    int8.add_argument("--int8-max-accuracy-drop", type=_bounded(float, 0.0, 100.0),
                      default=defaults.int8_max_accuracy_drop,
                      help="percentage points of test accuracy int8 may lose; more and model.int8.onnx is not written")
    int8.add_argument("--int8-min-agreement", type=_bounded(float, 0.0, 1.0), default=defaults.int8_min_agreement,
                      help="share of test images int8 must classify as the float model does; less and "
                           "model.int8.onnx is not written")
    int8.add_argument("--int8-emulated-images", type=_bounded(int, 0, 10000), default=defaults.int8_emulated_images,
                      help="test images the int8 model answers again under an emulated AVX2 CPU (QEMU, about 7 s "
                           "each for ResNet-50 at 224 px), so that endpoints without VNNI serve it; 0: no emulated "
                           "check, and those endpoints serve the float model")

    paths = parser.add_argument_group("paths (default: the SageMaker environment)")
    paths.add_argument("--base-dir", type=Path, help="SageMaker base dir (default $SAGEMAKER_BASE_DIR or /opt/ml)")
    paths.add_argument("--data-dir", type=Path, help="one folder holding train/ valid/ test/")
    paths.add_argument("--train-dir", type=Path)
    paths.add_argument("--valid-dir", type=Path)
    paths.add_argument("--test-dir", type=Path)
    paths.add_argument("--model-dir", type=Path)
    paths.add_argument("--output-data-dir", type=Path)
    paths.add_argument("--checkpoint-dir", type=Path)
    paths.add_argument("--pretrained-dir", type=Path, help="folder holding torchvision ImageNet weight files")
    paths.add_argument("--tensorboard-dir", type=Path,
                       help="TensorBoard event files (default: output/tensorboard, where SageMaker collects them)")
    paths.add_argument("--features-dir", type=Path,
                       help="a featurize job's output (folder or its model.tar.gz) to train the head on, "
                            "instead of images (default: the 'features' channel, if the job has one)")
    diagnostics.add_arguments(parser, str_to_bool, _bounded)

    parser.add_argument("--print-metric-definitions", action="store_true",
                        help="print the tuner's metric regexes as JSON and exit")
    return parser


def parse_args(argv: list[str]) -> tuple[Hyperparameters, PathOverrides, argparse.Namespace]:
    argv = _drop_reserved(argv)
    namespace = build_parser().parse_args(argv)
    hp_fields = {f.name for f in dataclasses.fields(Hyperparameters)}
    path_fields = {f.name for f in dataclasses.fields(PathOverrides)}
    values = vars(namespace)
    hyperparameters = Hyperparameters(**{k: v for k, v in values.items() if k in hp_fields})
    if hyperparameters.cache_features and not hyperparameters.features_cacheable:
        raise UsageError("--cache-features true needs --freeze-backbone true and --augment false: "
                         "a trained or augmented backbone gives different features every epoch")
    overrides = PathOverrides(**{k: v for k, v in values.items() if k in path_fields})
    if overrides.features_dir is not None and hyperparameters.featurize:
        raise UsageError("--featurize true writes features from images: it takes no --features-dir")
    return hyperparameters, overrides, namespace


def base_dir_flag(argv: list[str]) -> Path | None:
    """--base-dir of a command line whose other flags may be wrong: where even a flag error's failure goes."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("--base-dir", type=Path)
    try:
        known, _ = parser.parse_known_args(_drop_reserved(argv))
    except (argparse.ArgumentError, SystemExit):  # "--base-dir" without a value: no override
        return None
    return known.base_dir


def _drop_reserved(argv: list[str]) -> list[str]:
    kept: list[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
            continue
        if arg.startswith(_RESERVED_PREFIXES):
            skip_value = "=" not in arg
            continue
        kept.append(arg)
    return kept


def default_num_workers() -> int:
    return max(1, min(usable_cpus(), 8))
