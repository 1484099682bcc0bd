"""contract/: the model artifact's layout and checks, and the one boolean vocabulary, as each side uses them."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from contract import artifact, cpus
from contract.booleans import parse_bool
from serve.config import ConfigError, read_config
from serve.model import ModelLoadError, check_artifact, model_file
from train.hyperparameters import str_to_bool

GOOD = {"format_version": 1, "classes": ["a", "b"], "preprocess": {}}


def _written(tmp_path, metadata) -> object:
    (tmp_path / artifact.METADATA_FILE).write_text(metadata if isinstance(metadata, str) else json.dumps(metadata))
    return tmp_path


@pytest.mark.parametrize("metadata, says", [
    (None, "model.json not found: is"),
    ("{not json", "cannot read"),
    ("[1, 2]", "is not a JSON object"),
    ({**GOOD, "format_version": 2}, "unsupported format_version 2"),
    ({"format_version": 1, "classes": []}, "lacks preprocess"),
])
def test_a_model_json_that_is_not_one_this_code_reads_is_named_with_why(metadata, says, tmp_path):
    if metadata is not None:
        _written(tmp_path, metadata)
    with pytest.raises(artifact.ArtifactError, match=says):
        artifact.read_metadata(tmp_path)


def test_the_files_model_json_names_default_to_the_float_model_and_an_optional_int8_one(tmp_path):
    assert artifact.named_files(tmp_path, GOOD) == [tmp_path / "model.onnx"]
    with_int8 = {**GOOD, "onnx": {"file": "model.onnx"}, "int8": {"file": "model.int8.onnx"}}
    assert artifact.named_files(tmp_path, with_int8) == [tmp_path / "model.onnx", tmp_path / "model.int8.onnx"]
    not_made = {**GOOD, "int8": {"file": None, "reason": "int8 model not written: ..."}}
    assert artifact.int8_model(tmp_path, not_made) is None


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sub/model.onnx", "", ".", "..", 7])
def test_model_json_cannot_point_outside_the_artifacts_folder(name, tmp_path):
    for key in ("onnx", "int8"):
        with pytest.raises(artifact.ArtifactError, match=f"{key}.file .* is not a file name in the artifact's"):
            artifact.named_files(tmp_path, {**GOOD, key: {"file": name}})
    with pytest.raises(artifact.ArtifactError, match="int8 is not an object"):
        artifact.named_files(tmp_path, {**GOOD, "int8": "model.int8.onnx"})


def test_serving_refuses_an_artifact_whose_model_json_names_a_file_elsewhere(trained_model_dir, tmp_path):
    # the attack: a model.json that makes the server load (or probe) any file the container can read
    outside = tmp_path / "outside.onnx"
    shutil.copy(trained_model_dir / "model.onnx", outside)
    model = tmp_path / "model"
    shutil.copytree(trained_model_dir, model)
    metadata = json.loads((model / "model.json").read_text())
    metadata["onnx"]["file"] = "../outside.onnx"
    (model / "model.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelLoadError, match=r"onnx.file '../outside.onnx' is not a file name in the artifact's"):
        check_artifact(model)
    metadata["onnx"]["file"], metadata["format_version"] = "model.onnx", 99
    (model / "model.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelLoadError, match="unsupported format_version 99"):
        check_artifact(model)


def test_a_worker_picking_its_model_file_refuses_one_elsewhere_and_an_unreadable_model_json_says_what_to_do(
        tmp_path, monkeypatch):
    # model_file() is what each worker calls (check_artifact refuses such an artifact earlier, at start-up)
    with pytest.raises(ModelLoadError, match=r"int8.file '/etc/passwd' is not a file name in the artifact's"):
        model_file(tmp_path, {**GOOD, "int8": {"file": "/etc/passwd"}})
    # This suite runs as root, which reads any file whatever its mode: a stand-in raises what reading
    # model.json raises for the serving image's unprivileged user.
    def unreadable(model_dir):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(artifact, "read_metadata", unreadable)
    with pytest.raises(ModelLoadError, match=r"cannot read .*model.json as uid \d+: make the model readable"):
        check_artifact(tmp_path)


@pytest.mark.parametrize("word, value", [("true", True), ("True", True), (" 1 ", True), ("yes", True), ("on", True),
                                         ("false", False), ("FALSE", False), ("0", False), ("no", False),
                                         ("off", False)])
def test_train_and_serve_read_the_same_boolean_words(word, value):
    assert parse_bool(word) is value
    assert str_to_bool(word) is value
    assert read_config({"SAGEMAKER_BATCH": word}).batch is value


@pytest.mark.parametrize("word", ["maybe", "", "2", "truthy"])
def test_a_word_that_is_not_a_boolean_is_refused_on_both_sides(word):
    with pytest.raises(ValueError, match="expected true or false"):
        parse_bool(word)
    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false"):
        str_to_bool(word)
    if word:  # an empty variable is an unset one: false
        with pytest.raises(ConfigError, match=r"SAGEMAKER_BATCH=.*expected true or false"):
            read_config({"SAGEMAKER_BATCH": word})


def _cgroup(tmp_path, version: int, files: dict[str, str]):
    root = tmp_path / "cgroup"
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if version == 2:
        (root / "cgroup.controllers").write_text("cpu memory\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/\n")
    return root, proc


def test_the_cpu_count_honours_a_cgroup_quota_and_rounds_it_up(tmp_path, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(16)))
    assert cpus.usable_cpus(*_cgroup(tmp_path / "v2", 2, {"cpu.max": "150000 100000\n"})) == 2  # --cpus 1.5
    assert cpus.usable_cpus(*_cgroup(tmp_path / "v2max", 2, {"cpu.max": "max 100000\n"})) == 16
    v1 = _cgroup(tmp_path / "v1", 1, {"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert cpus.usable_cpus(*v1) == 4
    unlimited = _cgroup(tmp_path / "v1none", 1, {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert cpus.usable_cpus(*unlimited) == 16
    assert cpus.usable_cpus(tmp_path / "absent", tmp_path / "absent") == 16  # no cgroup files: the affinity mask
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})  # docker --cpuset-cpus 0
    assert cpus.usable_cpus(*v1) == 1


@pytest.mark.parametrize("flags, level", [
    ("fpu avx2 avx512f avx512bw avx512_vnni", "AVX-512 VNNI"),
    ("fpu avx2 avx512f avx512bw", "AVX-512 without VNNI"),  # Skylake 8175M, under ml.m5 and ml.c5
    ("fpu avx2 avx_vnni", "AVX-VNNI"),
    ("fpu sse4_2 avx2", "AVX2"),
])
def test_instruction_set_level_from_the_cpu_flags(tmp_path, flags, level):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    assert cpus.instruction_set_level(cpuinfo) == level
    assert cpus.cpu_model(cpuinfo) == "Some CPU"


def test_serving_picks_int8_only_on_a_cpu_level_the_training_job_checked(tmp_path):
    from serve.model import choose_model

    for name in ("model.onnx", "model.int8.onnx"):
        (tmp_path / name).write_bytes(b"onnx")
    levels = {"AVX-512 VNNI": {"checked": True, "how": "native, on the training host"},
              "AVX2": {"checked": False, "reason": "qemu-x86_64-static not found"}}
    metadata = {**GOOD, "int8": {"file": "model.int8.onnx", "levels": levels}}
    assert choose_model(tmp_path, metadata, level="AVX-512 VNNI") == (tmp_path / "model.int8.onnx", "int8", None)
    path, precision, why = choose_model(tmp_path, metadata, level="AVX2")  # an ml.m5 on Skylake, say
    assert (path.name, precision) == ("model.onnx", "fp32")
    assert why.startswith("serving model.onnx, not model.int8.onnx: the training job did not check int8 on this "
                          "CPU's level (AVX2: qemu-x86_64-static not found)")
    assert "no int8 check for this CPU's level (arm64)" in choose_model(tmp_path, metadata, level="arm64")[2]
    levels["AVX2"]["reason"] = "x\n" * 5000  # model.json is the artifact's: the line stays one, and short
    assert "\n" not in choose_model(tmp_path, metadata, level="AVX2")[2]
    assert len(choose_model(tmp_path, metadata, level="AVX2")[2]) < 500
    older = {**GOOD, "int8": {"file": "model.int8.onnx"}}  # a model.json from before the per-level checks
    assert "predates per-CPU checks" in choose_model(tmp_path, older, level="AVX-512 VNNI")[2]
    # SERVE_PRECISION=int8 is the operator's word; fp32 is too
    assert choose_model(tmp_path, metadata, "int8", level="AVX2")[:2] == (tmp_path / "model.int8.onnx", "int8")
    assert choose_model(tmp_path, metadata, "fp32", level="AVX-512 VNNI")[:2] == (tmp_path / "model.onnx", "fp32")
