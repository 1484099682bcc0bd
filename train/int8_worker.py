"""`python int8_worker.py REQUEST.json`: quantize model.onnx to int8 and measure it against the float model.

Run as a separate process, by file path, by the interpreter in QUANTIZE_PYTHON: ONNX Runtime's
quantizer needs protobuf >= 4.25.8 and ml_dtypes, while the training image's environment keeps
smdebug's protobuf 3.20.3. So this file imports only the standard library, numpy, onnx and onnxruntime,
never the `train` package or torch; the training job hands it arrays on disk (request below) and
reads one JSON answer back.

Request (JSON): model, output, method (minmax|entropy|percentile), calibration (list of .npy files,
float32 (N, 3, crop, crop), already normalised), test (list of [images.npy, labels.npy]),
input_name, result (path of the answer).
Answer (JSON): the test images compared, accuracy of each model, top-1 agreement, the largest
absolute probability difference, seconds spent; or {"skipped": why} when the float model's answers
are not finite and there is nothing to calibrate.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}


class _Batches(CalibrationDataReader):
    def __init__(self, input_name: str, files: list[str]):
        self.input_name, self.files = input_name, iter(files)

    def get_next(self):
        path = next(self.files, None)
        return None if path is None else {self.input_name: np.load(path)}


def _output_layers(model_path: str) -> list[str]:
    """The softmax node(s) and the node computing their input."""
    graph = onnx.load(model_path).graph
    producers = {output: node for node in graph.node for output in node.output}
    softmaxes = [node for node in graph.node if node.op_type == "Softmax"]
    feeding = [producers[node.input[0]] for node in softmaxes if node.input[0] in producers]
    return [node.name for node in softmaxes + feeding]


def quantize(request: dict) -> float:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        # Shape inference and graph fusion first (Conv+BN folded), as ONNX Runtime recommends.
        prepared = str(Path(scratch) / "prepared.onnx")
        quant_pre_process(request["model"], prepared, skip_symbolic_shape=True)
        # QDQ with per-channel int8 weights and uint8 activations: the form ONNX Runtime's x86 CPU
        # kernels (VNNI) run fastest. The softmax and the layer that feeds it stay float: quantized,
        # probabilities come in steps of 1/255 and no longer sum to 1; that layer is a sliver of the cost.
        quantize_static(prepared, request["output"], _Batches(request["input_name"], request["calibration"]),
                        quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8, calibrate_method=METHODS[request["method"]],
                        nodes_to_exclude=_output_layers(prepared))
    return time.perf_counter() - started


def compare(request: dict) -> dict:
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    sessions = [onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                for path in (request["model"], request["output"])]
    correct, agree, total, max_difference = [0, 0], 0, 0, 0.0
    for images_file, labels_file in request["test"]:
        images, labels = np.load(images_file), np.load(labels_file)
        fp32, int8 = (session.run(None, {request["input_name"]: images})[0] for session in sessions)
        correct[0] += int((fp32.argmax(1) == labels).sum())
        correct[1] += int((int8.argmax(1) == labels).sum())
        agree += int((fp32.argmax(1) == int8.argmax(1)).sum())
        max_difference = max(max_difference, float(np.abs(fp32 - int8).max()))
        total += len(labels)
    return {"images": total, "accuracy_fp32": correct[0] / max(total, 1), "accuracy_int8": correct[1] / max(total, 1),
            "agreement": agree / max(total, 1), "max_abs_probability_difference": max_difference}


def float_outputs_problem(request: dict) -> str | None:
    """Why there is nothing to quantize: a float model whose answers are not finite (NaN weights, say)."""
    session = onnxruntime.InferenceSession(request["model"], providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {request["input_name"]: np.load(request["calibration"][0])})[0]
    if not np.isfinite(probabilities).all():
        return "model.onnx answers NaN or infinity on validation images, so there are no ranges to calibrate"
    return None


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[1]).read_text())
    problem = float_outputs_problem(request)
    if problem:
        Path(request["result"]).write_text(json.dumps({"skipped": problem}))
        return 0
    quantize_seconds = quantize(request)
    started = time.perf_counter()
    answer = compare(request)
    answer.update({"quantize_seconds": quantize_seconds, "compare_seconds": time.perf_counter() - started,
                   "onnxruntime": onnxruntime.__version__})
    Path(request["result"]).write_text(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
