"""Connect to a Ray cluster, or start a quiet local one, for the length of one job.

Without an address the job starts a local Ray with this machine's cores (no dashboard, Ray's own
progress bars and INFO logs off) and shuts it down afterwards; with one it joins that cluster and
leaves it running. A session the caller already started is used as it is and left open.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from koembed.errors import MissingExtraError
from koembed.system import cpu_count

# Worker processes inherit these; tokenizers' own thread pool would fight the actors for cores.
WORKER_ENV = {"TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error",
              "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
_FORWARDED = ("KOEMBED_CPU_BF16", "HF_HUB_OFFLINE", "HF_HOME", "KOEMBED_MODEL")


@dataclass(frozen=True)
class RaySession:
    address: str  # "local" for a cluster this job started
    cpus: float
    gpus: float
    ray_version: str


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the extra must include Ray Data, not just Ray core
    except ImportError:
        raise MissingExtraError("this needs Ray: pip install 'koembed[scale]' (or pip install 'ray[data]')") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[RaySession]:
    """Yield a connected Ray; started here (and stopped afterwards) unless one is running or ``address`` is given."""
    ray = import_ray()
    started = False
    # koembed reports progress and errors (raised in workers, they come back as exceptions) itself; Ray's
    # INFO/WARNING lines and the workers' own output (in Ray's session logs) are noise on the user's stderr.
    # Left: one line from Ray's C++ core about actor restarts (ray-project/ray#53727), not silenceable alone.
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # a failed task is raised to the caller anyway
    if not ray.is_initialized():
        env = dict(WORKER_ENV) | {k: os.environ[k] for k in _FORWARDED if k in os.environ}
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                      logging_level=logging.ERROR,
                                      runtime_env={"env_vars": env})
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus or cpu_count(), **kwargs)
        started = True
    _quiet_ray_data()
    res = ray.cluster_resources()
    try:
        yield RaySession(address or "local", float(res.get("CPU", 0)), float(res.get("GPU", 0)), ray.__version__)
    finally:
        if started:
            ray.shutdown()


def _quiet_ray_data() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    # koembed draws its own progress (per shard); Ray Data's bars and execution plans are noise on stderr.
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    ctx.log_internal_stack_trace = False
