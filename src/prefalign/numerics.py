"""The processor's numeric code paths, pinned: the same bytes on any x86-64 CPU.

torch, MKL, oneDNN, NumPy and glibc's libm each pick their kernels from the CPU they run on
(CPUID: AVX-512 or not, Intel or AMD), and different kernels round differently: on an AMD EPYC
with AVX-512 the default run's SFT weights differed from an Intel Xeon's, and generation turned
that into other answers (FACTS.md, 2026-12-06). Every prefalign process therefore pins those
choices before any of the libraries loads (they read these variables once, at load), whatever
the user's shell says:

    avx2      torch's AVX2 kernels (ATEN_CPU_CAPABILITY), MKL's conditional numerical
              reproducibility branch for Intel and non-Intel CPUs alike (MKL_CBWR=COMPATIBLE),
              oneDNN up to AVX2, NumPy without its AVX-512 loops, no dynamic thread counts.
              Every x86-64 CPU with AVX2 and FMA (Intel since Haswell, 2013; AMD since 2015).
    portable  the same with torch's baseline kernels, oneDNN up to SSE4.1, NumPy's baseline
              and glibc's libm without its AVX2/FMA variants: for x86-64 CPUs with AVX but not
              AVX2. Taken where the CPU lacks AVX2 or FMA. (Without AVX, torch's stack does not run at all: SIGILL
              under QEMU's Nehalem, at every level.)
    native    nothing pinned (each library's own choice): the bytes depend on the CPU. Only when
              PREFALIGN_CPU_NUMERICS=native asks for it (to measure what the pinning costs:
              bench/workflow_wall.py --baseline-env PREFALIGN_CPU_NUMERICS=native).

The evidence: the same digests of the SFT and DPO weights, generations and metrics natively on an
AMD EPYC with AVX-512 and under QEMU as an Intel Haswell and an AMD EPYC-Rome
(bench/cpu_numerics.py, bench/results/cpu_numerics.json; tests/kernel/test_numerics.py in CI).
A run records the level and the values in every environment.json (`cpu_numerics`); the CPU's own
flags go to its hardware record.
Threads are pinned apart, by each step's `threads` setting (prefalign.runtime.setup).
"""

from __future__ import annotations

import os
import platform

LEVEL_VAR = "PREFALIGN_CPU_NUMERICS"  # native | avx2 | portable; unset: avx2 where the CPU has it

_COMMON = {
    "MKL_CBWR": "COMPATIBLE",  # MKL's code path that gives the same results on Intel and non-Intel CPUs
    "MKL_DYNAMIC": "FALSE",  # MKL never changes the thread count it was given
    "OMP_DYNAMIC": "FALSE",
}
PINS = {
    "avx2": {
        **_COMMON,
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
        "OPENBLAS_CORETYPE": "Haswell",
    },
    "portable": {
        **_COMMON,
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
        "OPENBLAS_CORETYPE": "Nehalem",
        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4",
    },
}
LEVELS = ("native", *PINS)
AVX2_NEEDS = {"avx2", "fma"}


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (Linux), empty where they cannot be read."""
    try:
        with open(cpuinfo, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_level(environ=os.environ, flags: set[str] | None = None, machine: str | None = None) -> str:
    """The level this process runs at: PREFALIGN_CPU_NUMERICS when set, else avx2 where the CPU has AVX2
    and FMA, else portable; native on a CPU that is not x86-64 (its libraries have no such switches)."""
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return "native"
    flags = cpu_flags() if flags is None else flags
    asked = environ.get(LEVEL_VAR)
    if asked:
        if asked not in LEVELS:
            raise ValueError(f"{LEVEL_VAR}={asked!r}: expected one of {', '.join(LEVELS)}")
        if asked == "avx2" and not AVX2_NEEDS <= flags:
            raise ValueError(f"{LEVEL_VAR}=avx2: this CPU lacks {', '.join(sorted(AVX2_NEEDS - flags))} "
                             "(use portable, or leave it unset)")
        return asked
    return "avx2" if AVX2_NEEDS <= flags else "portable"


def pin(environ=os.environ) -> str:
    """Set this process's pins (overriding the shell's values) and return the level. Call before
    torch, NumPy or anything that loads MKL or oneDNN is imported; child processes inherit them."""
    level = choose_level(environ)
    environ[LEVEL_VAR] = level  # what the process ran at, for its record and its children
    environ.update(PINS.get(level, {}))
    return level


def record(environ=os.environ) -> dict:
    """What this process pinned (for environment.json): the level, each variable's value, and the
    kernel level torch really took. The same on every CPU that ran the same level, so the report
    can show it; the CPU's own flags are in the hardware record."""
    level = environ.get(LEVEL_VAR, "not pinned")
    names = sorted({name for values in PINS.values() for name in values})
    numerics = {"level": level, "pinned": {name: environ.get(name) for name in names if environ.get(name) is not None}}
    import sys

    if "torch" in sys.modules:
        numerics["torch_capability"] = sys.modules["torch"].backends.cpu.get_cpu_capability()
    return numerics
