"""CUDA forward compatibility: the image's newer user-mode driver, used only on hosts whose driver is older.

torch 2.10.0 is built for CUDA 12.8. Drivers >= 525.60.13 run it by CUDA's minor-version
compatibility. Older drivers (SageMaker documents 470 on ml.g4dn, ml.g5, ml.p3 and ml.p4d) need
NVIDIA's forward-compatibility libraries (the cuda-compat package: libcuda.so from a 570 driver),
which the training image carries in COMPAT_DIR. Since NVIDIA Container Toolkit 1.17.4 the host
no longer mounts them, so the container's entry point decides, as AWS's own images do: the host's
kernel-module version below the libraries' version puts COMPAT_DIR first on LD_LIBRARY_PATH of
the training program; a newer driver is left alone (an older libcuda over a newer kernel module
fails to initialise). Nothing here imports torch: the entry point runs before CUDA is loaded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

COMPAT_DIR = Path("/usr/local/cuda/compat")
DRIVER_VERSION_FILE = Path("/proc/driver/nvidia/version")  # the kernel module's own version line

# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.256.02  Thu ...",
# "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build ..."
_KERNEL_MODULE = re.compile(r"Kernel Module\b.*?\s(\d+\.\d+(?:\.\d+)?)\s")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def host_driver_version(version_file: Path | None = None) -> str | None:
    """The host's NVIDIA kernel-module version, or None on a host without NVIDIA's driver."""
    try:
        match = _KERNEL_MODULE.search((version_file or DRIVER_VERSION_FILE).read_text())
    except OSError:
        return None
    return match.group(1) if match else None


def compat_driver_version(compat_dir: Path | None = None) -> str | None:
    """The driver version the compatibility libraries come from (libcuda.so.1 -> libcuda.so.570.124.06)."""
    link = (compat_dir or COMPAT_DIR) / "libcuda.so.1"
    try:
        target = os.readlink(link) if link.is_symlink() else None
    except OSError:
        return None
    match = re.fullmatch(r"libcuda\.so\.(\d+\.\d+(?:\.\d+)?)", Path(target).name) if target else None
    return match.group(1) if match else None


def needs_compat(host_driver: str | None, compat_driver: str | None) -> bool:
    return bool(host_driver and compat_driver and _version_key(host_driver) < _version_key(compat_driver))


def environment(environ: dict[str, str], compat_dir: Path | None = None,
                version_file: Path | None = None) -> tuple[dict[str, str], str]:
    """The environment the training program gets, and one line saying what was decided and why."""
    compat_dir = compat_dir or COMPAT_DIR
    host, compat = host_driver_version(version_file), compat_driver_version(compat_dir)
    if host is None:
        return dict(environ), "CUDA compat: no NVIDIA driver on this host"
    if compat is None:
        return dict(environ), f"CUDA compat: host driver {host}; this image has no compatibility libraries"
    if not needs_compat(host, compat):
        return dict(environ), f"CUDA compat: host driver {host} >= {compat}: the host's own libcuda"
    paths = [str(compat_dir), *filter(None, environ.get("LD_LIBRARY_PATH", "").split(":"))]
    return ({**environ, "LD_LIBRARY_PATH": ":".join(paths)},
            f"CUDA compat: host driver {host} < {compat}: using the compatibility libraries in {compat_dir}")


def in_use(environ: dict[str, str] | None = None, compat_dir: Path | None = None) -> str | None:
    """What a failure line should say when the compatibility libraries were put in front."""
    environ = os.environ if environ is None else environ
    compat_dir = compat_dir or COMPAT_DIR
    if str(compat_dir) not in environ.get("LD_LIBRARY_PATH", "").split(":"):
        return None
    return f"CUDA forward-compatibility libraries of driver {compat_driver_version(compat_dir)} in use ({compat_dir})"
