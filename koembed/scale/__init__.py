"""Past one machine: encode on a Ray cluster into a sharded vector set, and build one index from its shards.

- :func:`encode_distributed` (``koembed encode INPUT -o DIR --engine ray``): Ray Data actors encode
  fixed slices of the input into Parquet shards plus a manifest; reruns resume.
- :func:`build_index_from_vectors` (``koembed index --from-vectors DIR -o IDX``): one shared trained
  quantiser, index shards built in parallel, merged into one memory-mappable index.

See docs/scale.md. Ray is an optional extra (``pip install 'koembed[scale]'``), imported only when a
job starts.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EncodeJobConfig": "koembed.scale.job_config",
    "EncodeJobResult": "koembed.scale.encode",
    "encode_distributed": "koembed.scale.encode",
    "VectorIndexConfig": "koembed.scale.index_build",
    "VectorIndexResult": "koembed.scale.index_build",
    "build_index_from_vectors": "koembed.scale.index_build",
    "VectorSet": "koembed.scale.vector_set",
    "write_vector_set": "koembed.scale.vector_set",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'koembed.scale' has no attribute {name!r}")
