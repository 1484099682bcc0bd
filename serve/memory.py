"""Is there room to load one more model? Asked by each worker before it loads (multi-model endpoints).

SageMaker's multi-model contract: a container that cannot load a model for want of memory answers
POST /models with 507, and SageMaker unloads models it has not used lately and tries again.
multi-model-server answers 507 when the worker's load raises MemoryError; left to the kernel, the
OOM killer would end some process of the container instead (the Java frontend, as likely as not).
So the worker checks first and raises MemoryError, saying what it needs and what is free.
"""

from __future__ import annotations

from pathlib import Path

MIB = 1 << 20
# Room kept free beside the model for requests in flight (decoded images, ONNX Runtime's buffers).
DEFAULT_HEADROOM_MB = 256
# ONNX Runtime holds the weights and its optimised copy of the graph: about twice the file's size.
MODEL_FILE_FACTOR = 2


def available_mb(cgroup: Path = Path("/sys/fs/cgroup"), meminfo: Path = Path("/proc/meminfo")) -> float:
    """Free memory as the container's limit sees it (cgroup v2, then v1), else the machine's MemAvailable.
    Page cache the kernel can drop (inactive files) counts as free, as `docker stats` counts it."""
    for limit_file, usage_file, stat_file, inactive in (
            ("memory.max", "memory.current", "memory.stat", "inactive_file"),
            ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes", "memory/memory.stat",
             "total_inactive_file")):
        limit, usage = _read(cgroup / limit_file), _read(cgroup / usage_file)
        if limit is None or usage is None or limit >= 1 << 60:  # "max" or v1's "no limit"
            continue
        return (limit - usage + _stat(cgroup / stat_file, inactive)) / MIB
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no MemAvailable in {meminfo}")


def needed_mb(model_file: Path, headroom_mb: int = DEFAULT_HEADROOM_MB) -> float:
    return model_file.stat().st_size * MODEL_FILE_FACTOR / MIB + headroom_mb


def require_room(model_file: Path, headroom_mb: int = DEFAULT_HEADROOM_MB) -> None:
    """MemoryError (multi-model-server's 507) when loading `model_file` would not fit."""
    need, free = needed_mb(model_file, headroom_mb), available_mb()
    if free < need:
        raise MemoryError(f"not enough memory to load {model_file}: about {need:.0f} MB needed "
                          f"({model_file.stat().st_size / MIB:.0f} MB model x {MODEL_FILE_FACTOR} + {headroom_mb} MB "
                          f"headroom), {free:.0f} MB free")


def _read(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return 1 << 62 if text == "max" else int(text)


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except OSError:
        pass
    return 0
