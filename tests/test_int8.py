"""The int8 model: made by the training job from its own validation images, checked against the float
model, kept or refused with the reason, and run in its own process (QUANTIZE_PYTHON)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from conftest import FAST_FLAGS, run_train

from train import int8_levels
from train.errors import TrainingError
from train.quantize import INT8_FILE, Int8Settings, quantize_artifact, x86_emulator

# A stand-in for the worker, used only where a test needs an answer the real quantizer cannot be made to
# give on demand (a fixed accuracy drop, a crash): it writes the answer it is told to and an empty output.
FAKE_WORKER = """
import json, os, sys
from pathlib import Path
request = json.loads(Path(sys.argv[-1]).read_text())
answer = json.loads(os.environ["FAKE_ANSWER"])
if "crash" in answer:
    sys.exit(answer["crash"])
if "skipped" not in answer:
    Path(request["output"]).write_bytes(b"int8")
Path(request["result"]).write_text(json.dumps({**answer, "quantize_seconds": 1.0, "compare_seconds": 1.0,
                                               "onnxruntime": "fake"}))
"""


def test_a_training_job_ships_an_int8_model_checked_against_the_float_one(tiny_dataset, tmp_path):
    result = run_train([*FAST_FLAGS, "--freeze-backbone", "false", "--epochs", "2", "--quantize", "int8",
                        "--data-dir", str(tiny_dataset)],
                       tmp_path / "ml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    model_dir = tmp_path / "ml" / "model"
    int8 = json.loads((model_dir / "model.json").read_text())["int8"]
    assert int8["file"] == INT8_FILE and (model_dir / INT8_FILE).is_file()
    assert int8["calibration"] == {"split": "valid", "images": 9, "method": "minmax"}  # all 9 valid images
    compared = int8["compared_on"]
    assert compared["split"] == "test" and compared["images"] == 9
    assert compared["agreement"] >= 0.98 and compared["accuracy_fp32"] - compared["accuracy_int8"] <= 0.01
    # a real int8 graph, a quarter of the float file's size, answering with probabilities
    model = onnxruntime.InferenceSession(str(model_dir / INT8_FILE), providers=["CPUExecutionProvider"])
    probabilities = model.run(None, {"input": np.zeros((2, 3, 32, 32), np.float32)})[0]
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert (model_dir / INT8_FILE).stat().st_size < 0.3 * (model_dir / "model.onnx").stat().st_size
    assert "int8 model written: model.int8.onnx" in result.stdout + result.stderr
    report = (tmp_path / "ml" / "output" / "data" / "report.html").read_text()
    assert "model.int8.onnx</b> written" in report
    checked_here = [level for level, check in int8["levels"].items() if check["checked"]]
    assert int8["levels"][compared["cpu"]]["checked"] and f"Served as int8 on: {', '.join(checked_here)}" in report


def test_quantize_none_ships_the_float_model_only(tiny_dataset, tmp_path):
    result = run_train([*FAST_FLAGS, "--epochs", "1", "--quantize", "none", "--data-dir", str(tiny_dataset)],
                       tmp_path / "ml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    model_dir = tmp_path / "ml" / "model"
    assert "int8" not in json.loads((model_dir / "model.json").read_text()) and not (model_dir / INT8_FILE).exists()
    assert "int8 model: not made (--quantize none)" in (tmp_path / "ml" / "output" / "data" / "report.html").read_text()


SETTINGS = Int8Settings("minmax", 4, 1.0, 0.98, emulated_images=0)  # the fake worker runs natively only


def _quantize_with(tmp_path, monkeypatch, answer: dict, settings: Int8Settings = SETTINGS) -> dict:
    worker = tmp_path / "fake_worker.py"
    worker.write_text(FAKE_WORKER)
    monkeypatch.setattr("train.quantize.WORKER", worker)
    monkeypatch.setenv("FAKE_ANSWER", json.dumps(answer))
    model_dir = tmp_path / "model"
    model_dir.mkdir(exist_ok=True)
    batch = np.zeros((2, 3, 8, 8), np.float32)
    return quantize_artifact(model_dir, "input", [batch, batch], [(batch, np.zeros(2, np.int64))], "test", settings)


def _answer(fp32: float, int8: float, agreement: float) -> dict:
    return {"images": 200, "accuracy_fp32": fp32, "accuracy_int8": int8, "agreement": agreement,
            "max_abs_probability_difference": 0.2}


def test_an_int8_model_that_loses_accuracy_is_not_written_and_the_entry_says_why(tmp_path, monkeypatch, caplog):
    entry = _quantize_with(tmp_path, monkeypatch, _answer(0.90, 0.88, 0.99))
    assert entry["file"] is None and not (tmp_path / "model" / INT8_FILE).exists()
    assert entry["reason"].startswith("int8 model not written: test accuracy 0.8800 against 0.9000 (-2.00 points > 1)")
    assert entry["calibration"] == {"split": "valid", "images": 4, "method": "minmax"}
    assert "int8 model not written" in caplog.text


def test_an_int8_model_that_disagrees_too_often_is_not_written(tmp_path, monkeypatch):
    entry = _quantize_with(tmp_path, monkeypatch, _answer(0.90, 0.90, 0.95))
    assert entry["file"] is None and "top-1 agreement 95.00% < 98%" in entry["reason"]
    entry = _quantize_with(tmp_path, monkeypatch, _answer(0.90, 0.895, 0.985))  # within both limits
    assert entry["file"] == INT8_FILE and (tmp_path / "model" / INT8_FILE).is_file() and "reason" not in entry


def test_a_float_model_that_answers_nan_gets_no_int8_model_and_the_entry_says_why(tmp_path, monkeypatch):
    # the real worker's answer for such a model (the NaN-weights run in test_diagnostics.py goes through it)
    entry = _quantize_with(tmp_path, monkeypatch, {"skipped": "model.onnx answers NaN or infinity"})
    assert entry == {"file": None, "reason": "int8 model not made: model.onnx answers NaN or infinity"}
    assert not (tmp_path / "model" / INT8_FILE).exists()


def test_a_quantizer_that_cannot_run_fails_the_job_in_one_line(tmp_path, monkeypatch):
    with pytest.raises(TrainingError, match=r"^int8 quantization failed: exit 3; --quantize none"):
        _quantize_with(tmp_path, monkeypatch, {"crash": 3})
    monkeypatch.setenv("QUANTIZE_PYTHON", str(tmp_path / "no-such-python"))
    with pytest.raises(TrainingError, match=r"int8 quantization could not run .*no-such-python"):
        _quantize_with(tmp_path, monkeypatch, _answer(0.9, 0.9, 1.0))


def test_the_worker_imports_neither_torch_nor_the_train_package():
    # It runs in the image's second environment (no torch, no train package): only numpy, onnx, onnxruntime.
    source = (Path(__file__).parents[1] / "train" / "int8_worker.py").read_text()
    imports = {line.split()[1].split(".")[0] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "json", "sys", "tempfile", "time", "pathlib", "numpy", "onnx", "onnxruntime"}
    assert sys.executable  # the default QUANTIZE_PYTHON


def _photo_inputs(count: int) -> np.ndarray:
    from serve.model import Preprocess
    from support.photos import photo

    preprocess = Preprocess.from_json({"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406],
                                       "std": [0.229, 0.224, 0.225], "interpolation": "bilinear"})
    rng = np.random.default_rng(3)
    return np.stack([preprocess(photo(rng, 500, 375)) for _ in range(count)])


@pytest.mark.skipif(x86_emulator()[0] is None and not os.environ.get("CI"),
                    reason="qemu-x86_64-static not installed (apt-get install qemu-user-static; CI installs it)")
def test_a_resnet50_int8_model_answers_within_the_jobs_limits_under_an_emulated_avx2_cpu(tmp_path):
    from support.artifacts import fitted_resnet50_artifact

    inputs, labels = _photo_inputs(24), np.arange(8) * 5 % 133
    model_dir = fitted_resnet50_artifact(tmp_path / "model", inputs[:8], labels)
    entry = quantize_artifact(model_dir, "input", [inputs[8:16], inputs[16:]], [(inputs[:8], labels)], "fitted",
                              Int8Settings("minmax", 16, 1.0, 0.98, emulated_images=8))
    assert entry["file"] == INT8_FILE, entry.get("reason")
    levels, native = entry["levels"], entry["compared_on"]["cpu"]
    assert levels[native]["how"] == "native, on the training host"
    avx2 = levels["AVX2"]
    if native in int8_levels.EXACT:  # a VNNI host: the saturating kernels ran under the emulated Haswell
        assert avx2["how"] == "emulated: qemu-x86_64-static -cpu Haswell"
        assert levels["AVX-512 without VNNI"]["how"] == "the same arithmetic as AVX2, checked by emulation"
    assert avx2["checked"] and avx2["images"] == 8
    assert avx2["agreement"] >= 0.98 and avx2["accuracy_fp32"] - avx2["accuracy_int8"] <= 0.01
    assert levels["arm64"] == {"checked": False, "reason": levels["arm64"]["reason"]}


# stands in for qemu-x86_64-static: drops "-cpu Haswell", runs the rest natively
FAKE_EMULATOR = '#!/bin/sh\nshift 2\nexec "$@"\n'
FAKE_LEVELS_WORKER = """
import json, os, sys
import numpy as np
from pathlib import Path
request = json.loads(Path(sys.argv[-1]).read_text())
state = Path(os.environ["FAKE_STATE"])
if request.get("mode") == "compare_int8":  # the emulated run: saturates unless the weights were 7-bit
    reduce_range = json.loads(state.read_text())["reduce_range"] and not os.environ.get("FAKE_ALWAYS_SATURATES")
    answer = {"images": 16, "accuracy_fp32": 0.9, "accuracy_int8": 0.9 if reduce_range else 0.7,
              "agreement": 1.0 if reduce_range else 0.75, "max_abs_probability_difference": 0.1,
              "compare_seconds": 1.0, "cpu_features": {"AVX2": True, "AVX512F": False}, "onnxruntime": "fake"}
else:
    state.write_text(json.dumps({"reduce_range": request["reduce_range"]}))
    Path(request["output"]).write_bytes(b"int8")
    for path in request["fp32_outputs"]:  # what the emulated run compares with
        np.save(path, np.full((2, 3), 1 / 3, np.float32))
    answer = {"images": 200, "accuracy_fp32": 0.9, "accuracy_int8": 0.9, "agreement": 0.99,
              "max_abs_probability_difference": 0.05, "quantize_seconds": 1.0, "compare_seconds": 1.0,
              "onnxruntime": "fake"}
Path(request["result"]).write_text(json.dumps(answer))
"""


def _quantize_with_levels(tmp_path, monkeypatch) -> dict:
    # A stand-in quantizer and emulator (the saturation cannot be made to happen on demand); the control
    # flow, the limits and model.json's record are the real ones.
    (tmp_path / "worker.py").write_text(FAKE_LEVELS_WORKER)
    emulator = tmp_path / "fake-qemu"
    emulator.write_text(FAKE_EMULATOR)
    emulator.chmod(0o755)
    monkeypatch.setattr("train.quantize.WORKER", tmp_path / "worker.py")
    monkeypatch.setattr("train.quantize.instruction_set_level", lambda: "AVX-512 VNNI")
    monkeypatch.setenv("INT8_EMULATOR", str(emulator))
    monkeypatch.setenv("FAKE_STATE", str(tmp_path / "state.json"))
    (tmp_path / "model").mkdir(exist_ok=True)
    batch = np.zeros((2, 3, 8, 8), np.float32)
    return quantize_artifact(tmp_path / "model", "input", [batch], [(batch, np.zeros(2, np.int64))], "test",
                             Int8Settings("minmax", 2, 1.0, 0.98, emulated_images=16))


def test_int8_that_saturates_without_vnni_is_quantized_again_with_7_bit_weights(tmp_path, monkeypatch, caplog):
    entry = _quantize_with_levels(tmp_path, monkeypatch)
    assert "breaks the limits without VNNI" in caplog.text and "top-1 agreement 75.00% < 98%" in caplog.text
    assert entry["file"] == INT8_FILE and entry["reduce_range"] is True
    assert entry["quantization"].endswith(", 7-bit weight range (reduce_range)")
    assert entry["levels"]["AVX2"]["agreement"] == 1.0 and entry["levels"]["AVX-512 VNNI"]["agreement"] == 0.99
    assert all(entry["levels"][level]["checked"] for level in ("AVX-512 VNNI", "AVX-VNNI", "AVX2",
                                                               "AVX-512 without VNNI"))


def test_int8_that_saturates_in_both_forms_ships_for_vnni_cpus_only(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_ALWAYS_SATURATES", "1")
    entry = _quantize_with_levels(tmp_path, monkeypatch)
    assert "holds no better" in caplog.text
    assert entry["file"] == INT8_FILE and entry["reduce_range"] is False and "reason" not in entry
    assert entry["levels"]["AVX-512 VNNI"]["checked"] and entry["levels"]["AVX-VNNI"]["checked"]
    for level in ("AVX2", "AVX-512 without VNNI"):  # served the float model (serve/model.py: choose_model)
        assert entry["levels"][level]["checked"] is False and entry["levels"][level]["agreement"] == 0.75
        assert entry["levels"][level]["reason"].startswith("answers outside the limits: under an emulated Haswell")
