"""A persistent, crash-safe vector index with metadata filters: build it from a document file, search it.

    from koembed.index import IndexConfig, build_index, search

    build_index(IndexConfig(input="docs.jsonl", output="my-index"))
    hits = search("my-index", ["질문"], k=5)

Modules: :mod:`~koembed.index.core` (the :class:`Index` directory), :mod:`~koembed.index.writes` and
:mod:`~koembed.index.commit` (changes and the commit protocol; shared state in :mod:`~koembed.index.state`),
:mod:`~koembed.index.build` (document file -> index), :mod:`~koembed.index.query` (the search pipeline:
queries -> hits), :mod:`~koembed.index.modes` (mode and fusion names and checks), :mod:`~koembed.index.dense`
(FAISS search, filters, exact subsets), :mod:`~koembed.index.hybrid` (lexical and fused search),
:mod:`~koembed.index.generations` (one generation's files, read and verified), :mod:`~koembed.index.layout`
(file names, the commit steps), :mod:`~koembed.index.files` (checksums, locks, the folder's life),
:mod:`~koembed.index.manifest` (the typed manifest), :mod:`~koembed.index.store` (the SQLite document
store), :mod:`~koembed.index.lexical_part` and :mod:`~koembed.index.lexical_tables` (the lexical part's
storage), :mod:`~koembed.index.spec` (index types and FAISS settings).
The query module is not named ``search``: a submodule of that name would shadow the ``search`` function
on this package once imported. Names load on first use, so importing this package costs no FAISS or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "Index": "koembed.index.core",
    "IndexConfig": "koembed.index.build",
    "BuildResult": "koembed.index.build",
    "build_index": "koembed.index.build",
    "Hit": "koembed.index.query",
    "search": "koembed.index.query",
    "search_vectors": "koembed.index.query",
    "search_ids": "koembed.index.query",
    "RankedIds": "koembed.index.query",
    "load_encoder_for": "koembed.index.query",
    "Query": "koembed.index.query",
    "answer": "koembed.index.query",
    "Manifest": "koembed.index.manifest",
    "IndexSpec": "koembed.index.spec",
    "resolve_spec": "koembed.index.spec",
}

if TYPE_CHECKING:
    from koembed.index.build import BuildResult, IndexConfig, build_index
    from koembed.index.core import Index
    from koembed.index.manifest import Manifest
    from koembed.index.query import (
        Hit,
        Query,
        RankedIds,
        answer,
        load_encoder_for,
        search,
        search_ids,
        search_vectors,
    )
    from koembed.index.spec import IndexSpec, resolve_spec

__all__ = ["BuildResult", "Hit", "Index", "IndexConfig", "IndexSpec", "Manifest", "Query", "RankedIds", "answer",
           "build_index", "load_encoder_for", "resolve_spec", "search", "search_ids", "search_vectors"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'koembed.index' has no attribute {name!r}")
