"""Facts about the process and machine that several entry points need."""

from __future__ import annotations

import os


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def is_main_process() -> bool:
    """True on rank 0 (or outside torchrun/accelerate): under a launcher every rank runs, only rank 0 writes."""
    return int(os.environ.get("RANK", "0")) == 0
