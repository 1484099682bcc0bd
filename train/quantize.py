"""model.int8.onnx beside model.onnx: calibrated on validation images, kept only if it answers as the float model does.

The quantizer runs in its own process (train/int8_worker.py, by the interpreter in QUANTIZE_PYTHON,
default this one): ONNX Runtime's quantizer needs protobuf >= 4.25.8 and ml_dtypes, and the
training image keeps smdebug's protobuf 3.20.3, so the image carries a second small environment
for it. This side turns images into the network's input exactly as evaluation does, hands them over
as .npy files, and decides from the answer whether the int8 file ships.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from contract.artifact import INT8_FILE, ONNX_FILE
from train.errors import TrainingError

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("int8_worker.py")
TIMEOUT_S = 3600


@dataclasses.dataclass(frozen=True)
class Int8Settings:
    method: str
    calibration_images: int
    max_accuracy_drop: float  # percentage points
    min_agreement: float  # 0..1


def quantize_artifact(model_dir: Path, input_name: str, calibration: Iterable[np.ndarray],
                      compared: Iterable[tuple[np.ndarray, np.ndarray]], compared_split: str,
                      settings: Int8Settings) -> dict:
    """Writes model_dir/model.int8.onnx when it passes; returns model.json's "int8" entry either way.
    `calibration`: float32 network inputs; `compared`: (inputs, labels) of the split both models are scored on."""
    with tempfile.TemporaryDirectory(prefix="int8-") as folder:
        work = Path(folder)
        calibration_files, calibrated = _save(work, "calibration", ((batch,) for batch in calibration))
        compared_files, _ = _save(work, "compared", compared)
        request = {"model": str(model_dir / ONNX_FILE), "output": str(model_dir / INT8_FILE),
                   "method": settings.method, "input_name": input_name,
                   "calibration": [files[0] for files in calibration_files], "test": compared_files,
                   "result": str(work / "result.json")}
        (work / "request.json").write_text(json.dumps(request))
        python = os.environ.get("QUANTIZE_PYTHON") or sys.executable
        try:
            finished = subprocess.run([python, str(WORKER), str(work / "request.json")], capture_output=True,
                                      text=True, timeout=TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise TrainingError(f"int8 quantization could not run ({python}): {error}; --quantize none ships the "
                                "float model only") from error
        if finished.returncode != 0:
            lines = [line for line in finished.stderr.splitlines() if line.strip()]
            raise TrainingError(f"int8 quantization failed: {lines[-1] if lines else f'exit {finished.returncode}'}"
                                "; --quantize none ships the float model only")
        answer = json.loads((work / "result.json").read_text())
    if "skipped" in answer:  # e.g. a model gone NaN: the rules and the report say why, the job itself is not failed
        entry = {"file": None, "reason": f"int8 model not made: {answer['skipped']}"}
        log.warning("%s", entry["reason"])
        return entry
    entry = {
        "file": INT8_FILE,
        "quantization": "ONNX Runtime static, QDQ, per-channel int8 weights, uint8 activations",
        "calibration": {"split": "valid", "images": calibrated, "method": settings.method},
        "compared_on": {"split": compared_split, "images": answer["images"],
                        "accuracy_fp32": answer["accuracy_fp32"], "accuracy_int8": answer["accuracy_int8"],
                        "agreement": answer["agreement"],
                        "max_abs_probability_difference": answer["max_abs_probability_difference"]},
        "limits": {"max_accuracy_drop_points": settings.max_accuracy_drop, "min_agreement": settings.min_agreement},
        "seconds": round(answer["quantize_seconds"] + answer["compare_seconds"], 1),
        "onnxruntime": answer["onnxruntime"],
    }
    drop = 100 * (answer["accuracy_fp32"] - answer["accuracy_int8"])
    problems = []
    if drop > settings.max_accuracy_drop:
        problems.append(f"{compared_split} accuracy {answer['accuracy_int8']:.4f} against "
                        f"{answer['accuracy_fp32']:.4f} (-{drop:.2f} points > {settings.max_accuracy_drop:g})")
    if answer["agreement"] < settings.min_agreement:
        problems.append(f"top-1 agreement {answer['agreement']:.2%} < {settings.min_agreement:.0%}")
    if problems:
        (model_dir / INT8_FILE).unlink(missing_ok=True)
        entry["file"] = None
        entry["reason"] = "int8 model not written: " + "; ".join(problems) + " (the float model.onnx ships alone)"
        log.warning("%s", entry["reason"])
    else:
        log.info("int8 model written: %s, %s accuracy %.4f (float %.4f), agreement %.2f%%, max |dp| %.4f, %.1f s",
                 INT8_FILE, compared_split, answer["accuracy_int8"], answer["accuracy_fp32"],
                 100 * answer["agreement"], answer["max_abs_probability_difference"], entry["seconds"])
    return entry


def _save(folder: Path, name: str, batches: Iterable[tuple[np.ndarray, ...]]) -> tuple[list[list[str]], int]:
    """Each batch's arrays as .npy files; returns their paths and the number of images."""
    saved, images = [], 0
    for index, arrays in enumerate(batches):
        images += len(arrays[0])
        paths = []
        for part, array in enumerate(arrays):
            path = folder / f"{name}_{index:05d}_{part}.npy"
            np.save(path, np.ascontiguousarray(array))
            paths.append(str(path))
        saved.append(paths)
    if not saved:
        raise TrainingError(f"int8 quantization: no {name} images")
    return saved, images
