"""The SageMaker side of the training contract: which directories the job reads and writes."""

import json
from pathlib import Path

import pytest

from train.environment import read_environment
from train.errors import TrainingError
from train.hyperparameters import PathOverrides


def make_splits(root: Path, splits=("train", "valid", "test")) -> Path:
    for split in splits:
        (root / split / "001.A").mkdir(parents=True)
    return root


def test_per_split_channels_and_sagemaker_variables(tmp_path):
    channels = make_splits(tmp_path / "input" / "data")
    environ = {
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "SM_CHANNEL_TRAIN": str(channels / "train"),
        "SM_CHANNEL_VALID": str(channels / "valid"),
        "SM_CHANNEL_TEST": str(channels / "test"),
        "SM_MODEL_DIR": str(tmp_path / "sm-model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "sm-output"),
        "SM_NUM_GPUS": "4",
        "SM_HOSTS": json.dumps(["algo-1", "algo-2"]),
        "SM_CURRENT_HOST": "algo-2",
    }
    env = read_environment(environ, PathOverrides())
    assert (env.train_dir, env.valid_dir, env.test_dir) == (channels / "train", channels / "valid", channels / "test")
    assert env.model_dir == tmp_path / "sm-model"
    assert env.output_data_dir == tmp_path / "sm-output"
    assert env.checkpoint_dir == tmp_path / "checkpoints"
    assert env.failure_file == tmp_path / "output" / "failure"
    assert env.num_gpus == 4 and env.hosts == ("algo-1", "algo-2") and env.host_rank == 1


def test_single_training_channel_holding_the_three_folders(tmp_path):
    # How the original Udacity project's users uploaded dogImages: one S3 prefix with train/ valid/ test/ inside.
    data = make_splits(tmp_path / "input" / "data" / "training")
    env = read_environment({"SAGEMAKER_BASE_DIR": str(tmp_path), "SM_CHANNEL_TRAINING": str(data)}, PathOverrides())
    assert (env.train_dir, env.valid_dir, env.test_dir) == (data / "train", data / "valid", data / "test")


def test_defaults_under_the_base_dir_without_toolkit_variables(tmp_path):
    # `docker run IMAGE train` with /opt/ml mounted but no SM_* variables set.
    make_splits(tmp_path / "input" / "data" / "training")
    env = read_environment({"SAGEMAKER_BASE_DIR": str(tmp_path)}, PathOverrides())
    assert env.train_dir == tmp_path / "input" / "data" / "training" / "train"
    assert env.model_dir == tmp_path / "model"
    assert env.output_data_dir == tmp_path / "output" / "data"
    assert env.num_gpus is None and len(env.hosts) == 1


def test_flags_override_the_environment(tmp_path):
    data = make_splits(tmp_path / "plain")
    other = make_splits(tmp_path / "other", ("valid",))
    overrides = PathOverrides(base_dir=tmp_path / "base", data_dir=data, valid_dir=other / "valid",
                              model_dir=tmp_path / "m", output_data_dir=tmp_path / "o", checkpoint_dir=tmp_path / "c")
    env = read_environment({"SM_MODEL_DIR": "/nowhere"}, overrides)
    assert env.train_dir == data / "train" and env.valid_dir == other / "valid" and env.test_dir == data / "test"
    assert (env.model_dir, env.output_data_dir, env.checkpoint_dir) == (tmp_path / "m", tmp_path / "o", tmp_path / "c")
    assert env.failure_file == tmp_path / "base" / "output" / "failure"


def test_test_split_is_optional(tmp_path):
    data = make_splits(tmp_path / "d", ("train", "valid"))
    env = read_environment({}, PathOverrides(base_dir=tmp_path, data_dir=data))
    assert env.test_dir is None


@pytest.mark.parametrize("splits, message", [(("train", "test"), "no valid split"), (("valid",), "no train split")])
def test_missing_split_says_how_to_provide_it(tmp_path, splits, message):
    data = make_splits(tmp_path / "d", splits)
    with pytest.raises(TrainingError, match=message) as error:
        read_environment({}, PathOverrides(base_dir=tmp_path, data_dir=data))
    assert "--data-dir" in str(error.value)


def test_missing_folders_and_bad_host_variables_are_named(tmp_path):
    with pytest.raises(TrainingError, match="does not exist"):
        read_environment({}, PathOverrides(base_dir=tmp_path, data_dir=tmp_path / "absent"))
    data = make_splits(tmp_path / "d")
    with pytest.raises(TrainingError, match="SM_HOSTS"):
        read_environment({"SM_HOSTS": "algo-1"}, PathOverrides(base_dir=tmp_path, data_dir=data))
    with pytest.raises(TrainingError, match="SM_CURRENT_HOST"):
        read_environment({"SM_HOSTS": '["a"]', "SM_CURRENT_HOST": "b"}, PathOverrides(base_dir=tmp_path, data_dir=data))
    with pytest.raises(TrainingError, match="SM_NUM_GPUS"):
        read_environment({"SM_NUM_GPUS": "two"}, PathOverrides(base_dir=tmp_path, data_dir=data))


def test_debugger_hook_config_where_sagemaker_writes_it_or_named_by_smdebugs_variable(tmp_path):
    make_splits(tmp_path / "input" / "data" / "training")
    assert read_environment({"SAGEMAKER_BASE_DIR": str(tmp_path)}, PathOverrides()).debug_hook_config is None
    config = tmp_path / "input" / "config" / "debughookconfig.json"
    config.parent.mkdir(parents=True)
    config.write_text("{}")
    assert read_environment({"SAGEMAKER_BASE_DIR": str(tmp_path)}, PathOverrides()).debug_hook_config == config
    other = tmp_path / "elsewhere.json"
    env = read_environment({"SAGEMAKER_BASE_DIR": str(tmp_path), "SMDEBUG_CONFIG_FILE_PATH": str(other)},
                           PathOverrides())
    assert env.debug_hook_config == other


def test_checkpoints_of_a_sagemaker_job_live_under_its_name(tmp_path):
    # a tuning job syncs one checkpoint prefix into every trial; a spot restart keeps the job's name
    make_splits(tmp_path / "input" / "data" / "training")
    environ = {"SAGEMAKER_BASE_DIR": str(tmp_path), "TRAINING_JOB_NAME": "dog-tune-251126-1903-003-7c1d2e4f"}
    env = read_environment(environ, PathOverrides())
    assert env.checkpoint_dir == tmp_path / "checkpoints" / "dog-tune-251126-1903-003-7c1d2e4f"
    assert read_environment({"SAGEMAKER_BASE_DIR": str(tmp_path)}, PathOverrides()).checkpoint_dir == \
        tmp_path / "checkpoints"
