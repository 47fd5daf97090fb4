"""Dense search: query vectors against the FAISS index of one generation, with metadata filters.

A metadata filter is resolved to the matching row ids in SQLite and handed to FAISS as an id selector,
so the k results are the best *matching* documents rather than a post-filtered remainder. Approximate
types widen their search in proportion to how selective the filter is, and when few documents match
(``EXACT_FILTER_MAX``) the search becomes exhaustive over them (IVF probes every list; HNSW scores the
matching vectors directly), so a rare filter value never loses results to the approximation.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from koembed.errors import IndexRefusedError
from koembed.index.spec import search_params
from koembed.index.store import distinct_sorted
from koembed.vectors import l2_normalize

if TYPE_CHECKING:
    from koembed.index.core import Index

EXACT_FILTER_MAX = 10_000
MAX_EF_SEARCH = 4096


def unit_queries(idx: Index, queries: np.ndarray, *, unit: bool = False) -> np.ndarray:
    """``queries`` as a C-contiguous float32 ``(n, dim)`` array of unit vectors; a dimension mismatch is refused.

    ``unit``: they are unit vectors already (an encoder that normalises made them), so they are not
    normalised again.
    """
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != idx.dim:
        raise IndexRefusedError(f"{idx.directory}: query vectors of dimension {q.shape[-1]} do not match the "
                                f"index's {idx.dim}; use the index's model")
    return np.ascontiguousarray(q if unit else l2_normalize(q))


def search_vectors(idx: Index, queries: np.ndarray, k: int, *, filter: dict[str, Any] | None = None,
                   ef_search: int | None = None, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FAISS-level search: ``(scores, row_ids)`` arrays of shape ``(n, k')``, row id -1 for no hit."""
    allowed = idx.store.filter_row_ids(filter) if filter else None
    return search_unit(idx, unit_queries(idx, queries), k, allowed=allowed, ef_search=ef_search, nprobe=nprobe)


def search_unit(idx: Index, q: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
                ef_search: int | None = None, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`search_vectors` for queries made unit vectors by :func:`unit_queries`, the filter resolved to
    the row ids it matches (``allowed``; None: no filter)."""
    import faiss

    empty = (np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64))
    n_live = idx.count if (allowed is not None or len(idx.tombstones())) else int(idx.faiss.ntotal)
    if n_live == 0:
        return empty
    nlist = idx.spec.nlist
    base_nprobe = nprobe or idx.spec.search_defaults.get("nprobe")
    base_ef = ef_search or idx.spec.search_defaults.get("efSearch")
    keep: list[Any] = []  # SWIG selectors must outlive the search call
    sel = None
    if allowed is not None:
        match = allowed
        if len(match) == 0:
            return empty
        n_live = len(match)
        if idx.spec.is_hnsw and len(match) <= EXACT_FILTER_MAX:
            return _exact_subset(idx, q, match, min(k, n_live))
        sel = faiss.IDSelectorBatch(match)
        keep.append(sel)
        widen = int(idx.faiss.ntotal) / len(match)  # how much rarer matching documents are
        if nlist and base_nprobe:
            base_nprobe = nlist if len(match) <= EXACT_FILTER_MAX else min(nlist, math.ceil(base_nprobe * widen))
        if base_ef:
            base_ef = min(MAX_EF_SEARCH, math.ceil(base_ef * widen))
    elif len(idx.tombstones()):
        inner = faiss.IDSelectorBatch(idx.tombstones())
        sel = faiss.IDSelectorNot(inner)
        keep += [inner, sel]
    params = search_params(idx.faiss, nprobe=base_nprobe, ef_search=base_ef, sel=sel)
    kk = min(k, n_live)
    if params is None:
        scores, ids = idx.faiss.search(q, kk)
    else:
        scores, ids = idx.faiss.search(q, kk, params=params)
    return scores, ids


def _exact_subset(idx: Index, q: np.ndarray, row_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Score ``q`` against the stored vectors of ``row_ids`` exactly (HNSW keeps the full vectors)."""
    vecs = idx.faiss.reconstruct_batch(row_ids)
    sims = q @ vecs.T
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else np.tile(np.arange(sims.shape[1]),
                                                                                           (len(q), 1))
    top_s = np.take_along_axis(sims, top, axis=1)
    order = np.argsort(-top_s, axis=1, kind="stable")
    return np.take_along_axis(top_s, order, axis=1), row_ids[np.take_along_axis(top, order, axis=1)]


def dense_scores_of(idx: Index, q: np.ndarray, wanted: list[np.ndarray]) -> list[np.ndarray]:
    """Cosine of each unit query with its ``wanted`` row ids' stored vectors; NaN where FAISS cannot return them."""
    flat = distinct_sorted(np.concatenate(wanted)) if wanted and sum(len(w) for w in wanted) else np.zeros(0, np.int64)
    out = [np.full(len(w), np.nan, dtype=np.float32) for w in wanted]
    if not len(flat):
        return out
    try:
        stored = idx.faiss.reconstruct_batch(flat)
    except RuntimeError:  # IVF without a direct map, and other types that keep no id -> vector map
        return out
    for i, w in enumerate(wanted):
        if len(w):
            out[i] = stored[np.searchsorted(flat, w)] @ q[i]
    return out
