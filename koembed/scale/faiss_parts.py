"""The FAISS half of a sharded build: one trained empty index, parts built from it in parallel, one merge.

Every part starts from the same trained file, so all parts share the coarse quantiser (and PQ/SQ
codebooks): their inverted lists line up list for list, and merging them is concatenation, which is
exactly what one index given all the vectors would hold. IVF parts are merged with
``faiss.contrib.ondisk.merge_ondisk`` into one ``.ivfdata`` file that searches memory-map; flat-code
types (Flat, SQ, PQ without IVF) are merged in memory with ``merge_from``. HNSW graphs cannot be merged.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from koembed.atomic import atomic_path
from koembed.errors import IndexRefusedError
from koembed.scale.vector_set import READ_ROWS, iter_shard
from koembed.vectors import l2_normalize

# A training sample is drawn from at most this many shards (one random row group each): reading every
# shard of a billion vectors to train on 100k of them would cost more than the training.
SAMPLE_SHARDS = 256


def is_ivf(index: Any) -> bool:
    import faiss

    try:
        faiss.extract_index_ivf(index)
        return True
    except RuntimeError:
        return False


def check_mergeable(factory: str) -> None:
    if factory.startswith("HNSW") or ",HNSW" in factory:
        raise IndexRefusedError(f"index type {factory}: HNSW graphs cannot be built in parts and merged; use "
                                "--index-type flat, ivf, ivfsq or ivfpq with --from-vectors")


def training_sample(shards: list[Path], need: int, *, seed: int = 0) -> np.ndarray:
    """About ``need`` L2-normalised vectors: random rows of one random row group of up to SAMPLE_SHARDS shards."""
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(shards), min(len(shards), SAMPLE_SHARDS), replace=False))
    per_shard = -(-need // len(chosen))
    parts = []
    for i in chosen:
        pf = pq.ParquetFile(str(shards[i]))
        if pf.metadata.num_rows == 0:
            continue
        groups = [g for g in range(pf.metadata.num_row_groups) if pf.metadata.row_group(g).num_rows]
        table = pf.read_row_group(int(rng.choice(groups)), columns=["vector"])
        col = table.column("vector").combine_chunks()
        x = col.values.to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
        take = rng.choice(len(x), min(per_shard, len(x)), replace=False)
        parts.append(x[np.sort(take)])
    if not parts:
        return np.zeros((0, 0), np.float32)
    return np.ascontiguousarray(l2_normalize(np.vstack(parts)))


def build_part(trained: str, shards: list[str], first_row_id: int, out: str, threads: int = 1) -> dict[str, Any]:
    """Add the vectors of ``shards`` (row ids from ``first_row_id`` on, in order) to a copy of ``trained``.

    Runs in a worker process or Ray task; writes ``out`` atomically, so a part file is complete or absent.
    """
    import faiss

    t0 = time.perf_counter()
    faiss.omp_set_num_threads(threads)
    index = faiss.read_index(trained)
    row = first_row_id
    for shard in shards:
        for batch in iter_shard(Path(shard), columns=("vector",), rows=READ_ROWS):
            n = len(batch.vectors)
            index.add_with_ids(np.ascontiguousarray(l2_normalize(batch.vectors)), np.arange(row, row + n,
                                                                                          dtype=np.int64))
            row += n
    with atomic_path(out) as tmp:
        faiss.write_index(index, str(tmp))
    return {"part": Path(out).name, "ntotal": int(index.ntotal), "seconds": round(time.perf_counter() - t0, 3)}


def merge_parts(index: Any, parts: list[Path], lists_file: Path) -> Any:
    """Merge the part files into the empty trained ``index``: IVF lists go to ``lists_file`` (memory-mapped)."""
    import faiss

    if index.ntotal:
        raise ValueError("merge_parts needs an empty index")
    if is_ivf(index):
        from faiss.contrib.ondisk import merge_ondisk

        with _stdout_to_stderr():  # FAISS printf()s "resizing ..." while it grows the file
            merge_ondisk(index, [str(p) for p in parts], str(lists_file))
        return index
    for p in parts:  # merge_from empties its source, so a part is read into memory (one at a time), not mapped
        index.merge_from(faiss.read_index(str(p)), 0)
    return index


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what C code prints to file descriptor 1 to stderr: stdout is for results."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
