"""SageMaker Debugger: an smdebug hook, when the job was started with a DebuggerHookConfig.

SageMaker then writes the hook's config (input/config/debughookconfig.json, or the file named
by SMDEBUG_CONFIG_FILE_PATH); the hook saves the configured collections (losses, weights,
gradients, ...) where SageMaker uploads them, and the built-in rules read them from there.
A job without a config, or without a working smdebug, trains on and says so once in the log.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import sys
from pathlib import Path

from torch import nn

log = logging.getLogger(__name__)


class DebuggerHook:
    """The smdebug hook, or nothing: the training loop calls these either way."""

    def __init__(self, hook=None, modes=None, modules: tuple[nn.Module, ...] = ()):
        self._hook, self._modes, self._modules = hook, modes, modules

    @property
    def active(self) -> bool:
        return self._hook is not None

    def set_mode(self, mode: str) -> None:
        """TRAIN or EVAL (validation): the rules compare the two modes' losses."""
        if self._hook is not None:
            self._hook.set_mode(getattr(self._modes, mode))

    def close(self) -> None:
        """Flush the last steps, mark the trial as ended, and take smdebug's hooks off the model
        (it keeps no handles), so exporting the model neither copies nor triggers them."""
        if self._hook is None:
            return
        self._hook.close()
        for module in self._modules:
            for part in module.modules():
                part._forward_hooks.clear()
                part._forward_pre_hooks.clear()
                part._backward_hooks.clear()
            for parameter in module.parameters():
                if parameter._backward_hooks:
                    parameter._backward_hooks.clear()
        self._hook = None


def create_hook(config_file: Path | None, model: nn.Module, criterion: nn.Module) -> DebuggerHook:
    """A hook for `model` (its trainable part) and `criterion`, from SageMaker's hook config."""
    if config_file is None:
        log.info("SageMaker Debugger: no hook config in this job, tensors are not saved")
        return DebuggerHook()
    _use_pure_python_protobuf_if_needed()
    try:
        import smdebug.pytorch as smd
    except Exception as error:  # noqa: BLE001 - a broken optional dependency must not end the job
        log.warning("SageMaker Debugger: smdebug cannot be imported (%s: %s); training without the hook",
                    type(error).__name__, error)
        return DebuggerHook()
    try:
        hook = smd.Hook.create_from_json_file(str(config_file))
        watched = trainable_part(model)
        hook.register_module(watched)
        hook.register_loss(criterion)
    except Exception as error:  # noqa: BLE001
        log.warning("SageMaker Debugger: cannot create the hook from %s (%s: %s); training without it",
                    config_file, type(error).__name__, error)
        return DebuggerHook()
    log.info("SageMaker Debugger: hook created from %s, saving to %s", config_file, hook.out_dir)
    return DebuggerHook(hook, smd.modes, (watched, criterion))


def trainable_part(model: nn.Module) -> nn.Module:
    """smdebug puts a gradient hook on every parameter it sees, which fails on frozen ones: with a
    frozen backbone only the head is registered (it is all that trains)."""
    if getattr(model, "backbone_frozen", False):
        return model.head
    return model


def _use_pure_python_protobuf_if_needed() -> None:
    # smdebug's generated protobuf code predates protobuf 4; newer runtimes load it only with the
    # pure-Python implementation, which must be chosen before protobuf is first imported.
    try:
        major = int(importlib.metadata.version("protobuf").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return
    if major >= 4 and "google.protobuf" not in sys.modules:
        os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
