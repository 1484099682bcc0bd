"""`python int8_worker.py REQUEST.json`: quantize model.onnx to int8 and measure it against the float model.

Run as a separate process, by file path, by the interpreter in QUANTIZE_PYTHON: ONNX Runtime's
quantizer needs protobuf >= 4.25.8 and ml_dtypes, while the training image's environment keeps
smdebug's protobuf 3.20.3. So this file imports only the standard library, numpy, onnx and onnxruntime,
never the `train` package or torch; the training job hands it arrays on disk (request below) and
reads one JSON answer back. train/quantize.py also runs it under an emulated CPU (QEMU's user mode)
with "mode": "compare_int8", to see the int8 model answer through another CPU's integer kernels.

Request (JSON): model, output, method (minmax|entropy|percentile), reduce_range (7-bit weights),
calibration (list of .npy files, float32 (N, 3, crop, crop), already normalised), test (list of
[images.npy, labels.npy]), fp32_outputs (where to save the float model's probabilities, one .npy a
test file), input_name, result (path of the answer). With "mode": "compare_int8": output, test,
fp32_outputs (read, not written), input_name, result: the int8 model alone, on this CPU.
Answer (JSON): the test images compared, accuracy of each model, top-1 agreement, the largest
absolute probability difference, seconds spent, the CPU features numpy saw; or {"skipped": why} when
the float model's answers are not finite and there is nothing to calibrate.
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
        # reduce_range: 7-bit weights, so that a CPU without VNNI, which adds pairs of uint8 x int8
        # products in int16 (AVX2's and AVX-512BW's vpmaddubsw), cannot saturate those sums.
        quantize_static(prepared, request["output"], _Batches(request["input_name"], request["calibration"]),
                        quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8, calibrate_method=METHODS[request["method"]],
                        nodes_to_exclude=_output_layers(prepared), reduce_range=bool(request.get("reduce_range")))
    return time.perf_counter() - started


def _session(path: str) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def compare(request: dict, float_model: bool = True) -> dict:
    """Both models on the test files (the float one's answers saved to fp32_outputs), or, without
    `float_model`, the int8 model against the float answers saved earlier, on another CPU."""
    fp32_session = _session(request["model"]) if float_model else None
    int8_session = _session(request["output"])
    correct, agree, total, max_difference = [0, 0], 0, 0, 0.0
    for (images_file, labels_file), fp32_file in zip(request["test"], request["fp32_outputs"], strict=True):
        images, labels = np.load(images_file), np.load(labels_file)
        if fp32_session is not None:
            fp32 = fp32_session.run(None, {request["input_name"]: images})[0]
            np.save(fp32_file, fp32)
        else:
            fp32 = np.load(fp32_file)
        int8 = int8_session.run(None, {request["input_name"]: images})[0]
        correct[0] += int((fp32.argmax(1) == labels).sum())
        correct[1] += int((int8.argmax(1) == labels).sum())
        agree += int((fp32.argmax(1) == int8.argmax(1)).sum())
        max_difference = max(max_difference, float(np.abs(fp32 - int8).max()))
        total += len(labels)
    return {"images": total, "accuracy_fp32": correct[0] / max(total, 1), "accuracy_int8": correct[1] / max(total, 1),
            "agreement": agree / max(total, 1), "max_abs_probability_difference": max_difference}


def cpu_features() -> dict[str, bool]:
    """What numpy's own CPUID probe saw: under an emulated CPU, the emulated CPU's features."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return {name: bool(features.get(name)) for name in ("AVX2", "AVX512F", "AVX512BW", "AVX512VNNI")}


def float_outputs_problem(request: dict) -> str | None:
    """Why there is nothing to quantize: a float model whose answers are not finite (NaN weights, say)."""
    session = onnxruntime.InferenceSession(request["model"], providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {request["input_name"]: np.load(request["calibration"][0])})[0]
    if not np.isfinite(probabilities).all():
        return "model.onnx answers NaN or infinity on validation images, so there are no ranges to calibrate"
    return None


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[1]).read_text())
    if request.get("mode") == "compare_int8":
        started = time.perf_counter()
        answer = compare(request, float_model=False)
        answer.update({"compare_seconds": time.perf_counter() - started, "cpu_features": cpu_features(),
                       "onnxruntime": onnxruntime.__version__})
        Path(request["result"]).write_text(json.dumps(answer))
        return 0
    problem = float_outputs_problem(request)
    if problem:
        Path(request["result"]).write_text(json.dumps({"skipped": problem}))
        return 0
    quantize_seconds = quantize(request)
    started = time.perf_counter()
    answer = compare(request)
    answer.update({"quantize_seconds": quantize_seconds, "compare_seconds": time.perf_counter() - started,
                   "cpu_features": cpu_features(), "onnxruntime": onnxruntime.__version__})
    Path(request["result"]).write_text(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
