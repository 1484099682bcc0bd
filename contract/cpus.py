"""How many CPUs this process may use: what training sizes its loader workers and threads by, and serving
its workers and ONNX Runtime threads. os.cpu_count() counts the machine's; a container sees fewer through
its affinity mask (docker --cpuset-cpus) or its cgroup's CPU quota (docker --cpus, Kubernetes limits)."""

from __future__ import annotations

import math
import os
from pathlib import Path


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:  # rounded up, as the JVM that runs multi-model-server counts it
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def cgroup_cpu_quota(cgroup_root: Path, proc_cgroup: Path) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (cgroup v2's cpu.max, else v1's cfs files); None: none."""
    try:
        if (cgroup_root / "cgroup.controllers").is_file():  # v2: "QUOTA PERIOD" or "max PERIOD"
            line = (cgroup_root / _v2_path(proc_cgroup) / "cpu.max").read_text().split()
            return None if line[0] == "max" else int(line[0]) / int(line[1])
        quota = int((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        return None


def _v2_path(proc_cgroup: Path) -> str:
    """This process's cgroup below the root ("0::/path"); "" inside a container's own cgroup namespace."""
    try:
        for line in proc_cgroup.read_text().splitlines():
            if line.startswith("0::"):
                relative = line[3:].strip().lstrip("/")
                return relative if ".." not in relative.split("/") else ""
    except OSError:
        pass
    return ""


# x86-64 levels that change ONNX Runtime's integer kernels, fastest first, by the /proc/cpuinfo flags
# that select them (ORT picks VNNI's dot-product instructions, else AVX-512BW, else AVX2).
ISA_LEVELS = (("AVX-512 VNNI", ("avx512_vnni",)), ("AVX-VNNI", ("avx_vnni",)), ("AVX-512 without VNNI", ("avx512bw",)),
              ("AVX2", ("avx2",)))


def instruction_set_level(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This CPU's level for int8 inference: one of ISA_LEVELS' names, "arm64" or the machine's name."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines()
                      if line.startswith(("flags", "Features"))), [])
    except OSError:
        flags = []
    for name, needed in ISA_LEVELS:
        if all(flag in flags for flag in needed):
            return name
    machine = os.uname().machine
    return "arm64" if machine in ("aarch64", "arm64") else machine


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        return next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                     if line.startswith("model name")), os.uname().machine)
    except OSError:
        return os.uname().machine
