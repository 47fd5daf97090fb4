"""The settings of a distributed encode, apart from the job, so that the CLI reads its defaults cheaply."""

from __future__ import annotations

from dataclasses import dataclass

from koembed.backends import AUTO, BACKEND_CHOICES
from koembed.errors import InputError

DEFAULT_SHARD_ROWS = 50_000


@dataclass
class EncodeJobConfig:
    """One distributed encode (``koembed encode INPUT -o OUT_DIR --engine ray``); saved in the manifest."""

    input: str  # a txt/JSONL/Parquet file or a folder of them; local path or pyarrow URI (s3://...)
    output: str  # the vector set folder (all workers must see it: local disk for one machine, NFS for a cluster)
    model: str | None = None
    backend: str = AUTO  # resolved by the driver, so every worker runs (and the manifest names) one backend
    device: str | None = None  # None: cpu, or cuda when gpus_per_worker > 0
    max_seq_length: int | None = None
    normalize: bool = True
    batch_size: int = 64
    fmt: str | None = None
    text_field: str = "text"
    id_field: str = "id"
    metadata_field: str = "metadata"
    skip_bad: bool = False
    errors: str = "strict"
    with_text: bool = True  # store text and metadata beside the vectors (an index built from them needs them)
    shard_rows: int = DEFAULT_SHARD_ROWS  # input rows a shard (the unit of work and of resuming)
    address: str | None = None  # a Ray cluster ("auto", "ray://head:10001"); None: a local Ray on this machine
    num_workers: int | None = None  # None: the cluster's CPUs / cpus_per_worker (GPUs / gpus_per_worker)
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0

    def validate(self) -> None:
        for name in ("batch_size", "shard_rows", "cpus_per_worker"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.num_workers is not None and self.num_workers < 1:
            raise InputError(f"num_workers must be >= 1, not {self.num_workers}")
        if self.gpus_per_worker < 0:
            raise InputError(f"gpus_per_worker must be >= 0, not {self.gpus_per_worker}")
        if self.backend not in BACKEND_CHOICES:
            raise InputError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKEND_CHOICES)}")
        if self.errors not in ("strict", "replace"):
            raise InputError(f"errors must be 'strict' or 'replace', not {self.errors!r}")

    @property
    def resolved_device(self) -> str | None:
        return self.device or ("cuda" if self.gpus_per_worker > 0 else None)
