import pytest

from train.errors import UsageError
from train.hyperparameters import Hyperparameters, check_files, parse_args


def test_defaults_match_the_documented_ones():
    hp, overrides, _ = parse_args([])
    assert hp == Hyperparameters()
    assert (hp.lr, hp.batch_size, hp.arch, hp.freeze_backbone, hp.image_size, hp.weights) == (
        0.001, 32, "resnet50", True, 224, "imagenet")
    assert hp.num_workers is None and overrides.data_dir is None


def test_sagemaker_passes_everything_as_strings():
    # What the sagemaker-training toolkit turns hyperparameters.json into.
    hp, _, _ = parse_args(["--batch-size", "64", "--epochs", "3", "--freeze-backbone", "False",
                           "--lr", "0.01", "--augment", "TRUE", "--hidden-units", "512.0", "--arch", "resnet34"])
    assert hp.batch_size == 64 and hp.epochs == 3 and hp.lr == 0.01 and hp.hidden_units == 512
    assert hp.freeze_backbone is False and hp.augment is True and hp.arch == "resnet34"


@pytest.mark.parametrize("text, expected", [("True", True), ("true", True), ("1", True), ("yes", True),
                                            ("False", False), ("false", False), ("0", False), ("no", False)])
def test_string_booleans(text, expected):
    hp, _, _ = parse_args(["--freeze-backbone", text])
    assert hp.freeze_backbone is expected


@pytest.mark.parametrize("args, flag", [
    (["--lr", "fast"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "8.5"], "--batch-size"),
    (["--epochs", "many"], "--epochs"),
    (["--freeze-backbone", "maybe"], "--freeze-backbone"),
    (["--arch", "vgg16"], "--arch"),
    (["--weights", " "], "--weights"),
    (["--image-size", "8"], "--image-size"),
    (["--num-workers", "-2"], "--num-workers"),
    (["--learning-rate", "0.1"], "--learning-rate"),
])
def test_invalid_values_name_the_flag(args, flag):
    with pytest.raises(UsageError) as error:
        parse_args(args)
    assert flag in str(error.value)


def test_keys_sagemaker_adds_are_ignored():
    hp, _, _ = parse_args(["--_tuning_objective_metric", "valid:accuracy", "--lr", "0.05",
                           "--sagemaker_program", "train.py", "--sagemaker_region=us-east-1"])
    assert hp.lr == 0.05


def test_auto_and_numbers_for_worker_counts():
    hp, _, _ = parse_args(["--num-workers", "auto", "--processes-per-host", "2"])
    assert hp.num_workers is None and hp.processes_per_host == 2
    hp, _, _ = parse_args(["--num-workers", "3"])
    assert hp.num_workers == 3


def test_weights_accepts_a_file(tmp_path):
    path = tmp_path / "backbone.pth"
    path.write_bytes(b"x")
    hp, _, _ = parse_args(["--weights", str(path)])
    assert hp.weights == str(path)
    check_files(hp)


def test_a_weights_path_is_checked_by_the_job_not_the_parser():
    # Scripts parse a job's hyperparameters on a laptop: a container path must parse there.
    hp, _, _ = parse_args(["--weights", "/opt/ml/input/data/pretrained/model.tar.gz"])
    with pytest.raises(UsageError, match=r"--weights /opt/ml/input/data/pretrained/model\.tar\.gz: no such file"):
        check_files(hp)
