"""Which CPUs an int8 model was checked on: ONNX Runtime's integer kernels differ by instruction set.

MLAS (ONNX Runtime's CPU kernels) multiplies uint8 activations by int8 weights in one of two ways on
x86-64. With VNNI (AVX-512 VNNI, AVX-VNNI) vpdpbusd adds the products in int32: exact. Without it
(AVX2, and AVX-512BW without VNNI, as the Skylake 8175M under ml.m5 and ml.c5) vpmaddubsw adds each
pair of products in int16 first, saturating, then vpmaddwd widens: the same arithmetic at two widths
(MLAS's U8S8 kernels for AVX2 and for AVX-512 core both use this pair), and so the same answers.
One check of each arithmetic covers both of its levels. The training host runs its own natively;
the other x86-64 one runs under QEMU's user mode as a Haswell (AVX2, no AVX-512: QEMU 7.2's TCG has
none), which reproduces the saturating kernels on a VNNI host. arm64 (Graviton) is not reachable
from an x86-64 training job: recorded unchecked, so a Graviton endpoint serves the float model.
"""

from __future__ import annotations

from contract.cpus import ISA_LEVELS

EXACT = ("AVX-512 VNNI", "AVX-VNNI")  # vpdpbusd: int32 sums
SATURATING = ("AVX-512 without VNNI", "AVX2")  # vpmaddubsw: int16 pair sums, then vpmaddwd
EMULATED_CPU = "Haswell"
LEVELS = (*[name for name, _ in ISA_LEVELS], "arm64")


def arithmetic_of(level: str) -> tuple[str, ...] | None:
    return EXACT if level in EXACT else SATURATING if level in SATURATING else None


def checked(answer: dict, how: str) -> dict:
    return {"checked": True, "how": how, "images": answer["images"], "agreement": answer["agreement"],
            "accuracy_fp32": answer["accuracy_fp32"], "accuracy_int8": answer["accuracy_int8"],
            "max_abs_probability_difference": answer["max_abs_probability_difference"]}


def unchecked(reason: str) -> dict:
    return {"checked": False, "reason": reason}


def record(native_level: str, native: dict, emulated: dict | None, emulated_reason: str | None,
           emulated_problems: list[str] | None = None) -> dict[str, dict]:
    """model.json's int8 "levels": every level, checked natively, by emulation, by sharing a checked level's
    arithmetic, or not (with the reason). `emulated`: the answer under the emulated Haswell, if it ran;
    `emulated_problems`: its breaches of the limits, which leave its levels unchecked, numbers kept."""
    levels = {level: unchecked(f"no check ran for {level}") for level in LEVELS}
    own = arithmetic_of(native_level)
    levels[native_level] = checked(native, "native, on the training host")
    if own is None:  # arm64, or an x86-64 without AVX2: only itself
        return levels
    for level in own:
        if level != native_level:
            levels[level] = checked(native, f"the same arithmetic as {native_level}, checked natively")
    if own == EXACT:
        if emulated is not None and emulated_problems:  # the model ships for the VNNI levels only
            for level in SATURATING:
                levels[level] = {**checked(emulated, f"emulated: qemu-x86_64-static -cpu {EMULATED_CPU}"),
                                 "checked": False,
                                 "reason": "answers outside the limits: " + "; ".join(emulated_problems)}
        elif emulated is not None:
            levels["AVX2"] = checked(emulated, f"emulated: qemu-x86_64-static -cpu {EMULATED_CPU}")
            levels["AVX-512 without VNNI"] = checked(emulated, "the same arithmetic as AVX2, checked by emulation")
        else:
            for level in SATURATING:
                levels[level] = unchecked(emulated_reason or "no emulated check")
    else:
        for level in EXACT:
            levels[level] = unchecked(f"this host ({native_level}) has no VNNI, and QEMU does not emulate it")
    levels["arm64"] = unchecked("not reachable from an x86-64 training host (ONNX Runtime's arm64 kernels differ)")
    return levels
