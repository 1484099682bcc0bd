"""SageMaker Debugger's smdebug hook in real training runs, read back with smdebug's create_trial."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import FAST_FLAGS, REPO, run_train

from train.debugger import create_hook
from train.network import build_classifier

# What SageMaker writes to input/config/debughookconfig.json for a DebuggerHookConfig
HOOK_CONFIG = {"LocalPath": "{tensors}", "HookParameters": {"save_interval": "1"},
               "CollectionConfigurations": [{"CollectionName": "losses"}, {"CollectionName": "weights"},
                                            {"CollectionName": "gradients"}]}
READ_TRIAL = """
import json, sys
from smdebug.core.modes import ModeKeys
from smdebug.trials import create_trial
trial = create_trial(sys.argv[1])
loss = trial.tensor_names(collection="losses")[0]
print(json.dumps({"names": trial.tensor_names(), "loss": loss,
                  "train_steps": len(trial.tensor(loss).steps(mode=ModeKeys.TRAIN)),
                  "eval_steps": len(trial.tensor(loss).steps(mode=ModeKeys.EVAL))}))
"""


def read_trial(path) -> dict:
    # smdebug's protobuf code needs the pure-Python protobuf runtime: a process of its own.
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    result = subprocess.run([sys.executable, "-c", READ_TRIAL, str(path)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("freeze", ["true", "false"])
def test_the_hook_saves_losses_weights_and_gradients_for_create_trial(freeze, tiny_dataset, tmp_path):
    tensors = tmp_path / "tensors"
    config = tmp_path / "debughookconfig.json"
    config.write_text(json.dumps(HOOK_CONFIG).replace("{tensors}", str(tensors)))
    result = run_train([*FAST_FLAGS, "--epochs", "1", "--freeze-backbone", freeze, "--data-dir", str(tiny_dataset)],
                       tmp_path / "ml", {"SMDEBUG_CONFIG_FILE_PATH": str(config)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SageMaker Debugger: hook created" in result.stdout
    assert (tmp_path / "ml" / "model" / "model.onnx").is_file()  # the export is not disturbed by the hook

    trial = read_trial(tensors)
    names = trial["names"]
    # 24 training images in batches of 8, 9 validation images: validation losses too, for Overfit & co
    assert trial["train_steps"] >= 3 and trial["eval_steps"] >= 2, trial
    assert any(name.startswith("gradient/") for name in names)
    backbone = [name for name in names if "backbone" in name]
    if freeze == "true":
        # only the head is registered: smdebug fails on frozen parameters
        assert backbone == [] and any(name.endswith(".weight") for name in names)
    else:
        assert any(name.startswith("gradient/") and "backbone" in name for name in backbone)


def test_a_broken_hook_config_or_smdebug_leaves_the_job_running(tiny_dataset, tmp_path):
    config = tmp_path / "debughookconfig.json"
    config.write_text("{not json")
    flags = [*FAST_FLAGS, "--epochs", "1", "--data-dir", str(tiny_dataset)]
    result = run_train(flags, tmp_path / "a", {"SMDEBUG_CONFIG_FILE_PATH": str(config)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SageMaker Debugger: cannot create the hook") == 1

    broken = tmp_path / "site" / "smdebug"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('this smdebug is broken')")
    result = run_train(flags, tmp_path / "b", {"SMDEBUG_CONFIG_FILE_PATH": str(config),
                                               "PYTHONPATH": f"{tmp_path / 'site'}:{REPO}"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SageMaker Debugger: smdebug cannot be imported (ImportError: this smdebug") == 1


def test_without_a_hook_config_nothing_is_registered(caplog):
    model = build_classifier("resnet18", 3, 8, None, freeze_backbone=True)
    with caplog.at_level("INFO"):
        hook = create_hook(None, model, torch.nn.CrossEntropyLoss())
    assert not hook.active
    assert "no hook config in this job" in caplog.text
    hook.set_mode("TRAIN")  # a no-op, as the training loop calls it
    hook.close()
    assert not model.head[0]._forward_hooks
