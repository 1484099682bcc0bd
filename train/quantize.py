"""model.int8.onnx beside model.onnx: calibrated on validation images, kept only if it answers as the float model does.

The quantizer runs in its own process (train/int8_worker.py, by the interpreter in QUANTIZE_PYTHON,
default this one): ONNX Runtime's quantizer needs protobuf >= 4.25.8 and ml_dtypes, and the
training image keeps smdebug's protobuf 3.20.3, so the image carries a second small environment
for it. This side turns images into the network's input exactly as evaluation does, hands them over
as .npy files, and decides from the answers whether the int8 file ships.

ONNX Runtime's integer kernels differ by CPU (train/int8_levels.py): the worker checks the model
natively, then, on a VNNI host, once more under an emulated AVX2 CPU (QEMU's user mode) on a few
test images. A model that breaks the limits there is quantized again with 7-bit weights
(reduce_range), which cannot saturate; model.json records what each CPU level was checked by.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from contract.artifact import INT8_FILE, ONNX_FILE
from contract.cpus import instruction_set_level
from train import int8_levels
from train.errors import TrainingError

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("int8_worker.py")
TIMEOUT_S = 3600
# qemu-x86_64-static's path (default: found on PATH); "none" turns the emulated check off
EMULATOR_ENV = "INT8_EMULATOR"


@dataclasses.dataclass(frozen=True)
class Int8Settings:
    method: str
    calibration_images: int
    max_accuracy_drop: float  # percentage points
    min_agreement: float  # 0..1
    emulated_images: int = 16  # test images run again under the emulated AVX2 CPU (0: no emulated check)


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
                   "fp32_outputs": [str(work / f"fp32_{index:05d}.npy") for index in range(len(compared_files))],
                   "result": str(work / "result.json")}
        native_level = instruction_set_level()
        checked = _quantize_and_check(work, request, native_level, compared_split, settings)
    if isinstance(checked, str):  # e.g. a model gone NaN: the rules and the report say why, the job goes on
        entry = {"file": None, "reason": f"int8 model not made: {checked}"}
        log.warning("%s", entry["reason"])
        return entry
    answer, emulated, reduce_range, problems = checked.native, checked.emulated, checked.reduce_range, checked.problems
    levels = int8_levels.record(native_level, answer, emulated, checked.emulated_reason, checked.saturating)
    entry = {
        "file": INT8_FILE,
        "quantization": "ONNX Runtime static, QDQ, per-channel int8 weights, uint8 activations"
                        + (", 7-bit weight range (reduce_range)" if reduce_range else ""),
        "reduce_range": reduce_range,
        "calibration": {"split": "valid", "images": calibrated, "method": settings.method},
        "compared_on": {"split": compared_split, "images": answer["images"],
                        "accuracy_fp32": answer["accuracy_fp32"], "accuracy_int8": answer["accuracy_int8"],
                        "agreement": answer["agreement"],
                        "max_abs_probability_difference": answer["max_abs_probability_difference"],
                        "cpu": native_level},
        "levels": levels,
        "limits": {"max_accuracy_drop_points": settings.max_accuracy_drop, "min_agreement": settings.min_agreement},
        "seconds": round(answer["quantize_seconds"] + answer["compare_seconds"]
                         + (emulated["wall_seconds"] if emulated else 0.0), 1),  # the form shipped
        "onnxruntime": answer["onnxruntime"],
    }
    if problems:
        (model_dir / INT8_FILE).unlink(missing_ok=True)
        entry["file"] = None
        entry["reason"] = "int8 model not written: " + "; ".join(problems) + " (the float model.onnx ships alone)"
        log.warning("%s", entry["reason"])
    else:
        served_on = [level for level, check in levels.items() if check["checked"]]
        log.info("int8 model written: %s, %s accuracy %.4f (float %.4f), agreement %.2f%%, max |dp| %.4f, %.1f s; "
                 "checked for %s", INT8_FILE, compared_split, answer["accuracy_int8"], answer["accuracy_fp32"],
                 100 * answer["agreement"], answer["max_abs_probability_difference"], entry["seconds"],
                 ", ".join(served_on))
    return entry


@dataclasses.dataclass
class _Checked:
    native: dict  # the shipped form's answers on this host
    emulated: dict | None  # ... and under the emulated AVX2 CPU
    emulated_reason: str | None  # why there is no emulated answer
    reduce_range: bool
    problems: list[str]  # the native answers' breaches of the limits: nothing ships
    saturating: list[str]  # the emulated answers' breaches: the model ships for VNNI CPUs only


def _quantize_and_check(work: Path, request: dict, native_level: str, split: str,
                        settings: Int8Settings) -> _Checked | str:
    """Quantize with 8-bit weights and check natively and emulated; if the emulated CPU breaks the limits,
    again with 7-bit weights (reduce_range), which keep int16 pair sums from saturating; if that breaks
    them anywhere too, the 8-bit model, for the CPUs it holds on. A str: why nothing was quantized."""
    def attempt(reduce_range: bool) -> _Checked | str:
        answer = _run_worker(work, {**request, "reduce_range": reduce_range})
        if "skipped" in answer:
            return answer["skipped"]
        problems = _limit_problems(answer, split, settings)
        if problems:  # 7-bit weights help where pairs saturate, never where calibration itself falls short
            return _Checked(answer, None, "the native check already failed", reduce_range, problems, [])
        emulated, why = _emulated_check(work, request, native_level, settings)
        saturating = [] if emulated is None else _limit_problems(
            emulated, f"under an emulated {int8_levels.EMULATED_CPU} (AVX2), {emulated['images']} {split} images:",
            settings)
        return _Checked(answer, emulated, why, reduce_range, [], saturating)

    full = attempt(False)
    if isinstance(full, str) or not full.saturating:
        return full
    log.warning("int8 model with 8-bit weights breaks the limits without VNNI (%s): quantizing again with "
                "reduce_range (7-bit weights)", "; ".join(full.saturating))
    output, kept = Path(request["output"]), work / "full-range.int8.onnx"
    shutil.copyfile(output, kept)
    reduced = attempt(True)
    if not isinstance(reduced, str) and not reduced.problems and not reduced.saturating:
        return reduced
    log.warning("int8 model with 7-bit weights holds no better: model.int8.onnx keeps 8-bit weights, and CPUs "
                "without VNNI serve the float model")
    shutil.copyfile(kept, output)
    return full


def _run_worker(work: Path, request: dict, emulator: list[str] | None = None) -> dict:
    path = work / "request.json"
    path.write_text(json.dumps(request))
    python = os.environ.get("QUANTIZE_PYTHON") or sys.executable
    command = [*emulator, python] if emulator else [python]  # a venv's python: QEMU keeps it as argv[0]
    try:
        finished = subprocess.run([*command, str(WORKER), str(path)], capture_output=True, text=True,
                                  timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TrainingError(f"int8 quantization could not run ({' '.join(command)}): {error}; --quantize none "
                            "ships the float model only") from error
    if finished.returncode != 0:
        lines = [line for line in finished.stderr.splitlines() if line.strip()]
        raise TrainingError(f"int8 quantization failed: {lines[-1] if lines else f'exit {finished.returncode}'}"
                            "; --quantize none ships the float model only")
    return json.loads(Path(request["result"]).read_text())


def _limit_problems(answer: dict, where: str, settings: Int8Settings) -> list[str]:
    drop = 100 * (answer["accuracy_fp32"] - answer["accuracy_int8"])
    problems = []
    if drop > settings.max_accuracy_drop:
        problems.append(f"{where} accuracy {answer['accuracy_int8']:.4f} against {answer['accuracy_fp32']:.4f} "
                        f"(-{drop:.2f} points > {settings.max_accuracy_drop:g})")
    if answer["agreement"] < settings.min_agreement:
        prefix = f"{where} " if where.endswith(":") else ""
        problems.append(f"{prefix}top-1 agreement {answer['agreement']:.2%} < {settings.min_agreement:.0%}")
    return problems


def x86_emulator() -> tuple[str | None, str]:
    """(qemu-x86_64-static's path, or None and why not)."""
    setting = os.environ.get(EMULATOR_ENV, "")
    if setting.lower() == "none":
        return None, f"{EMULATOR_ENV}=none"
    found = shutil.which(setting or "qemu-x86_64-static")
    if found is None:
        return None, (f"{setting or 'qemu-x86_64-static'} not found (Debian/Ubuntu: apt-get install "
                      "qemu-user-static; the training image carries it)")
    return found, ""


def _emulated_check(work: Path, request: dict, native_level: str,
                    settings: Int8Settings) -> tuple[dict | None, str | None]:
    """The int8 model under an emulated Haswell (AVX2, no AVX-512) on the first test files, against the float
    answers the native run saved: (its answer, None), or (None, why it did not run)."""
    if int8_levels.arithmetic_of(native_level) != int8_levels.EXACT:
        return None, f"the training host ({native_level}) checked this arithmetic natively"
    if settings.emulated_images <= 0:
        return None, "--int8-emulated-images 0"
    emulator, why = x86_emulator()
    if emulator is None:
        return None, why
    test, outputs, images = [], [], 0
    for (images_file, labels_file), fp32_file in zip(request["test"], request["fp32_outputs"], strict=True):
        labels = np.load(labels_file)[:settings.emulated_images - images]
        prefix = work / f"emulated_{len(test)}"
        kept = [f"{prefix}_images.npy", f"{prefix}_labels.npy"]
        outputs.append(f"{prefix}_fp32.npy")
        np.save(kept[0], np.load(images_file)[:len(labels)])
        np.save(kept[1], labels)
        np.save(outputs[-1], np.load(fp32_file)[:len(labels)])
        test.append(kept)
        images += len(labels)
        if images >= settings.emulated_images:
            break
    emulated = {"mode": "compare_int8", "output": request["output"], "input_name": request["input_name"],
                "test": test, "fp32_outputs": outputs, "result": str(work / "emulated.json")}
    started = time.perf_counter()
    answer = _run_worker(work, emulated, [emulator, "-cpu", int8_levels.EMULATED_CPU])
    answer["wall_seconds"] = time.perf_counter() - started  # QEMU's start and the imports too
    seen = answer.get("cpu_features", {})
    if not seen.get("AVX2") or seen.get("AVX512F"):
        return None, f"the emulated CPU did not look like a Haswell to the worker (numpy saw {seen})"
    return answer, None


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
