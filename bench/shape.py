"""`--endpoint-shape`: run a benchmark on the CPUs an ml.m5.large endpoint has, not on the whole host.

ml.m5.large (and ml.c5.large) is 2 vCPUs: one physical core with its two hyperthreads (EC2 runs two
threads per core by default). The benchmark pins itself, and so every server it starts, to one core of
this host: both its SMT threads where the host has them, the core alone where it has not (then the
figures are one thread short of the endpoint: the report says which).
"""

from __future__ import annotations

import os
from pathlib import Path

from contract.cpus import cpu_model, instruction_set_level

ENDPOINT_SHAPE = "ml.m5.large"


def core_of(cpu: int, sysfs: Path = Path("/sys/devices/system/cpu")) -> set[int]:
    """The logical CPUs sharing `cpu`'s physical core (itself only when the kernel does not say)."""
    try:
        return parse_cpu_list((sysfs / f"cpu{cpu}" / "topology" / "thread_siblings_list").read_text())
    except OSError:
        return {cpu}


def parse_cpu_list(text: str) -> set[int]:
    """'0-1,4' -> {0, 1, 4} (the kernel's cpu list format)."""
    cpus: set[int] = set()
    for part in filter(None, text.strip().split(",")):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def pin_to_one_core() -> set[int]:
    """Pin this process (and what it starts later) to one physical core; the CPUs it now runs on."""
    allowed = os.sched_getaffinity(0)
    cpus = core_of(min(allowed)) & allowed or {min(allowed)}
    os.sched_setaffinity(0, cpus)
    return cpus


def describe(cpus: set[int] | None = None) -> str:
    """The CPUs a benchmark ran on, for its heading: count, cores, SMT, model and int8 level."""
    cpus = cpus if cpus is not None else os.sched_getaffinity(0)
    cores = {frozenset(core_of(cpu)) for cpu in cpus}
    smt = "with its hyperthreads" if len(cpus) > len(cores) else "no SMT"
    return (f"{len(cpus)} CPU(s) on {len(cores)} physical core(s), {smt}, {cpu_model()}, "
            f"{instruction_set_level()}")


def apply(endpoint_shape: bool) -> str:
    """Pin when asked; the shape line every table heading of the run carries."""
    if not endpoint_shape:
        return describe()
    cpus = pin_to_one_core()
    note = "" if len(cpus) == 2 else f" (this host has no SMT: {len(cpus)} CPU where the endpoint has 2)"
    return f"{ENDPOINT_SHAPE}'s shape, one core: {describe(cpus)}{note}"
