"""The model artifact, loaded for serving: model.json's numbers + model.onnx in ONNX Runtime."""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image

from contract import artifact
from contract.cpus import instruction_set_level


class ModelLoadError(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """The eval transform training recorded: shorter side to `resize` (bilinear), centre `crop`, normalise."""

    resize: int
    crop: int
    mean: np.ndarray
    std: np.ndarray
    jpeg_draft: bool

    @classmethod
    def from_json(cls, spec: dict) -> Preprocess:
        if spec.get("resize_rule", "shorter_side") != "shorter_side" or spec.get("interpolation") != "bilinear":
            raise ModelLoadError(f"unsupported preprocessing in model.json: {spec}")
        return cls(resize=int(spec["resize"]), crop=int(spec["crop"]),
                   mean=np.asarray(spec["mean"], dtype=np.float32).reshape(3, 1, 1),
                   std=np.asarray(spec["std"], dtype=np.float32).reshape(3, 1, 1),
                   jpeg_draft=bool(spec.get("jpeg_draft", False)))

    def __call__(self, image: Image.Image) -> np.ndarray:
        """RGB PIL image -> float32 (3, crop, crop), exactly as torchvision's Resize/CenterCrop on PIL do it."""
        width, height = image.size
        if width <= height:
            size = (self.resize, int(self.resize * height / width))
        else:
            size = (int(self.resize * width / height), self.resize)
        image = image.resize(size, Image.Resampling.BILINEAR)
        left = round((size[0] - self.crop) / 2.0)  # torchvision rounds the same way
        top = round((size[1] - self.crop) / 2.0)
        image = image.crop((left, top, left + self.crop, top + self.crop))
        pixels = np.asarray(image)  # (crop, crop, 3) uint8
        planes = np.empty((3, self.crop, self.crop), dtype=np.float32)  # contiguous: ONNX Runtime copies nothing
        for channel in range(3):
            np.take(self.normalised[channel], pixels[:, :, channel], out=planes[channel])
        return planes

    @functools.cached_property
    def normalised(self) -> np.ndarray:
        """(3, 256) float32: what each 8-bit value of each channel becomes, with the same float32 arithmetic
        as training's Normalize (x / (255 std) - mean / std), so a lookup is bit-identical to computing it
        per pixel, at a third of the cost."""
        values = np.arange(256, dtype=np.float32)[None, :]
        std, mean = self.std.reshape(3, 1), self.mean.reshape(3, 1)
        return values * (1.0 / (255.0 * std)) - mean / std


def model_file(model_dir: Path, metadata: dict, precision: str = "auto") -> tuple[Path, str]:
    """(the ONNX file to serve, "int8" or "fp32"): see choose_model."""
    path, chosen, _ = choose_model(model_dir, metadata, precision)
    return path, chosen


def choose_model(model_dir: Path, metadata: dict, precision: str = "auto",
                 level: str | None = None) -> tuple[Path, str, str | None]:
    """(the ONNX file to serve, "int8" or "fp32", why the int8 model is not served here or None): the int8
    model when training wrote one (model.json's "int8" entry names it) and checked it on this CPU's
    instruction-set level (`level`, default this machine's), unless SERVE_PRECISION=fp32;
    SERVE_PRECISION=int8 insists on it, checked here or not."""
    try:
        float_file, int8_file = artifact.float_model(model_dir, metadata), artifact.int8_model(model_dir, metadata)
    except artifact.ArtifactError as error:
        raise ModelLoadError(str(error)) from None
    int8 = metadata.get("int8") or {}
    if precision == "fp32" or (precision == "auto" and int8_file is None):
        return float_file, "fp32", None
    if int8_file is None:
        why = int8.get("reason") or "the training job ran with --quantize none or predates int8"
        raise ModelLoadError(f"SERVE_PRECISION=int8 but {model_dir} has no int8 model ({why})")
    if not int8_file.is_file():
        raise ModelLoadError(f"{int8_file} not found, though model.json names it (SERVE_PRECISION=fp32 serves "
                             f"{float_file.name})")
    if precision == "auto":
        level = level or instruction_set_level()
        unchecked = int8_unchecked_on(int8, level)
        if unchecked:
            return float_file, "fp32", (f"serving {float_file.name}, not {int8_file.name}: {unchecked}, and int8 "
                                        f"answers depend on the CPU's integer kernels (SERVE_PRECISION=int8 serves "
                                        "it anyway)")
    return int8_file, "int8", None


def int8_unchecked_on(int8: dict, level: str) -> str | None:
    """Why the training job's int8 check does not cover a CPU of `level` (None: it does)."""
    levels = int8.get("levels")
    if not isinstance(levels, dict):
        return f"model.json's int8 check predates per-CPU checks, and this CPU is {level}"
    check = levels.get(level)
    if not isinstance(check, dict):
        return f"model.json has no int8 check for this CPU's level ({level})"
    if check.get("checked") is not True:
        reason = " ".join(str(check.get("reason")).split())[:200]  # model.json is the artifact's: bounded
        return f"the training job did not check int8 on this CPU's level ({level}: {reason})"
    return None


def served_file(model_dir: Path, precision: str = "auto") -> Path:
    """The ONNX file a worker would load from `model_dir` (model.json read, nothing loaded)."""
    return model_file(model_dir, _read_metadata(model_dir), precision)[0]


class OnnxClassifier:
    def __init__(self, model_dir: Path, threads: int, precision: str = "auto"):
        metadata = _read_metadata(model_dir)
        self.classes: list[str] = list(metadata["classes"])
        self.preprocess = Preprocess.from_json(metadata["preprocess"])
        onnx_spec = metadata.get("onnx", {})
        self.input_name = onnx_spec.get("input", "input")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        model_path, self.precision, self.int8_fallback = choose_model(model_dir, metadata, precision)
        self.model_file = model_path.name
        try:
            self.session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise ModelLoadError(f"cannot load {model_path}: {' '.join(str(error).split())}") from error
        outputs = self.session.get_outputs()[0].shape
        if outputs[-1] != len(self.classes):
            raise ModelLoadError(
                f"{model_path} has {outputs[-1]} outputs but model.json lists {len(self.classes)} classes")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def warm_up(self) -> None:
        self.predict(np.zeros((1, 3, self.preprocess.crop, self.preprocess.crop), dtype=np.float32))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 3, crop, crop) -> probabilities (N, classes)."""
        return self.session.run(None, {self.input_name: batch})[0]


def unreadable(path: Path) -> str:
    """Why `path` cannot be read, and the three ways out: the serving image runs as an unprivileged user."""
    return (f"cannot read {path} as uid {os.getuid()}: make the model readable to others (chmod -R a+rX before "
            "packing it), run the container as the files' owner (docker run --user UID:GID), or set SERVE_USER=root")


def _read_metadata(model_dir: Path) -> dict:
    try:
        return artifact.read_metadata(model_dir)
    except PermissionError:
        raise ModelLoadError(unreadable(model_dir / artifact.METADATA_FILE)) from None
    except artifact.ArtifactError as error:
        raise ModelLoadError(str(error)) from None


def check_artifact(model_dir: Path, precision: str = "auto") -> OnnxClassifier:
    """The model loaded and run once as a worker will, before the model server starts: a corrupt or
    incompatible artifact fails the container in seconds with one line, instead of workers retrying it
    until the start-up timeout with the reason in Java's log."""
    metadata = _read_metadata(model_dir)
    try:
        named = artifact.named_files(model_dir, metadata)
    except artifact.ArtifactError as error:
        raise ModelLoadError(str(error)) from None
    for path in named:  # every file model.json names: SERVE_PRECISION may pick either later
        if not path.is_file():
            raise ModelLoadError(f"{path} not found")
        if not os.access(path, os.R_OK):
            raise ModelLoadError(unreadable(path))
    # picks the file as the workers will, parses the preprocessing and the graph
    classifier = OnnxClassifier(model_dir, threads=1, precision=precision)
    try:
        classifier.warm_up()
    except Exception as error:
        raise ModelLoadError(f"{model_dir / classifier.model_file} loads but does not run on a "
                             f"{classifier.preprocess.crop} px image: "
                             f"{' '.join(str(error).split())}") from error
    return classifier
