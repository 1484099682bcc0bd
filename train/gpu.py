"""How many GPUs a job uses, decided once at start, and why not when the GPUs it was given are unusable.

A job never falls back to the CPU on its own: when SageMaker says the host has GPUs
(SM_NUM_GPUS) or `--device cuda` asks for one, and CUDA cannot use them (a host driver older
than the CUDA torch was built for, say), the job ends within seconds with a one-line reason:
what was asked for, what CUDA sees, torch's CUDA and the driver it needs, the driver found.
"""

from __future__ import annotations

import torch

from train import cuda_compat
from train.errors import TrainingError

# The oldest driver branch each CUDA major release runs on (NVIDIA's CUDA release notes; within a
# major release, minor-version compatibility lets a newer toolkit run on that branch's drivers).
MIN_DRIVER_FOR_CUDA = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
DEVICES = ("auto", "cuda", "cpu")


def usable_gpus(device: str, sm_num_gpus: int | None) -> int:
    """GPUs this host's processes train on: 0 means the CPU, by choice (`--device cpu`, SM_NUM_GPUS=0)
    or because there is none and none was asked for."""
    if device == "cpu":
        return 0
    visible = torch.cuda.device_count()
    expected = visible if sm_num_gpus is None else sm_num_gpus
    if device == "cuda":
        expected = max(expected, 1)
    if visible < expected:
        asked = f"SM_NUM_GPUS={sm_num_gpus}" if sm_num_gpus else "--device cuda"
        compat = cuda_compat.in_use()
        raise TrainingError(f"{asked} asks for {expected} GPU(s) but CUDA sees {visible}: {cuda_stack()}; "
                            f"{host_driver()}{f'; {compat}' if compat else ''}. Run an image whose CUDA this "
                            "driver supports (docs/training.md, \"GPUs and several hosts\"), or train on the CPU on "
                            "purpose with --device cpu")
    return expected


def cuda_stack() -> str:
    """torch's CUDA build and the oldest driver that runs it."""
    version = torch.version.cuda
    if version is None:
        return f"torch {torch.__version__} is a CPU-only build"
    needed = MIN_DRIVER_FOR_CUDA.get(int(version.split(".")[0]))
    return f"torch {torch.__version__} is built for CUDA {version}" + (f", which needs an NVIDIA driver >= {needed}"
                                                                     if needed else "")


def host_driver() -> str:
    """The NVIDIA driver and GPUs NVML reports, or why there is no answer."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as error:  # noqa: BLE001 - no library, no driver, no device: all mean "none usable"
        return f"no NVIDIA driver answers on this host (NVML: {error})"
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        count = pynvml.nvmlDeviceGetCount()
        names = sorted({pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)})
        return f"this host has driver {_text(driver)} with {count} GPU(s) ({', '.join(map(_text, names)) or 'none'})"
    finally:
        pynvml.nvmlShutdown()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
