"""The model artifact: the only thing the serving image knows about training.

    model.onnx   the network + softmax, dynamic batch, input "input" (N, 3, crop, crop) float32
    model.json   classes in output order, preprocessing, arch, hyperparameters, metrics, versions
    model.pt     the classifier's state dict, for fine-tuning further (weights_only-loadable)
    model.int8.onnx  the same network quantized to int8 (train/quantize.py), when it passed its check;
                 model.json's "int8" says how it was made and how it compares, or why it is absent
"""

from __future__ import annotations

import copy
import json
import platform
import warnings
from pathlib import Path

import torch

from contract import artifact
from train.network import Classifier, Preprocess, WithSoftmax

ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


def export_onnx(classifier: Classifier, crop: int, path: Path) -> None:
    model = WithSoftmax(copy.deepcopy(classifier).float().cpu().to(memory_format=torch.contiguous_format)).eval()
    example = torch.zeros(1, 3, crop, crop)
    with warnings.catch_warnings():
        # The TorchScript exporter is the one that runs beside numpy<2 (smdebug's pin in the
        # training image); the torch.export-based one needs onnxscript, which needs numpy>=2.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=ONNX_OPSET,
        )


def model_metadata(*, classes: list[str], class_folders: list[str], preprocess: Preprocess, arch: str,
                   hyperparameters: dict, metrics: dict) -> dict:
    import onnx
    import torchvision

    return {
        "format_version": artifact.FORMAT_VERSION,
        "classes": classes,
        "class_folders": class_folders,
        "num_classes": len(classes),
        "preprocess": preprocess.to_json(),
        "onnx": {"file": artifact.ONNX_FILE, "input": INPUT_NAME, "output": OUTPUT_NAME, "opset": ONNX_OPSET,
                 "output_kind": "probabilities (softmax applied in the graph)"},
        "weights": {"file": artifact.WEIGHTS_FILE, "format": "torch state_dict of train.network.Classifier"},
        "arch": arch,
        "hyperparameters": hyperparameters,
        "metrics": metrics,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "onnx": onnx.__version__,
        },
    }


def write_artifact(model_dir: Path, classifier: Classifier, metadata: dict) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    export_onnx(classifier, metadata["preprocess"]["crop"], model_dir / artifact.ONNX_FILE)
    torch.save(classifier.state_dict(), model_dir / artifact.WEIGHTS_FILE)
    write_metadata(model_dir, metadata)


def write_metadata(model_dir: Path, metadata: dict) -> None:
    (model_dir / artifact.METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")

