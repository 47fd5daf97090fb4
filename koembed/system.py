"""Facts about the process and machine that several entry points need."""

from __future__ import annotations

import os
from typing import NamedTuple


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def is_main_process() -> bool:
    """True on rank 0 (or outside torchrun/accelerate): under a launcher every rank runs, only rank 0 writes."""
    return int(os.environ.get("RANK", "0")) == 0


class CpuInfo(NamedTuple):
    model: str
    flags: frozenset[str]


def cpu_info(path: str = "/proc/cpuinfo") -> CpuInfo:
    """The CPU model and flags of the first processor in ``path`` (int8 and bf16 speed depend on the flags).

    Where there is no such file (macOS, Windows), the model is ``platform.processor()`` and no flag is known.
    """
    import platform

    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = frozenset(value.split())
                    break
    except OSError:
        pass
    return CpuInfo(model, flags)


def machine_summary() -> str:
    """One line for benchmark reports: CPU model, the SIMD flags that matter, CPUs usable and the load average."""
    model, flags = cpu_info()
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_bf16") if f in flags]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model} [{' '.join(simd) or 'no avx2'}], {cpu_count()} CPUs usable, load average {load:.1f}"
