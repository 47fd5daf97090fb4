"""Search an index: queries (texts or vectors) in, ranked hits (id, score, text, metadata) out.

All queries go to FAISS in one batch call. A metadata filter is resolved to the matching row ids in
SQLite and handed to FAISS as an id selector, so the k results are the best *matching* documents
rather than a post-filtered remainder. Approximate types widen their search in proportion to how
selective the filter is, and when few documents match (``EXACT_FILTER_MAX``) the search becomes
exhaustive over them (IVF probes every list; HNSW scores the matching vectors directly), so a
rare filter value never loses results to the approximation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection
from typing import Any, NamedTuple

import numpy as np

from koembed.backends import AUTO
from koembed.errors import IndexRefusedError, InputError
from koembed.index.core import Index
from koembed.index.spec import search_params
from koembed.index.store import DOC_FIELDS
from koembed.vectors import l2_normalize

EXACT_FILTER_MAX = 10_000
DEFAULT_K = 10
MAX_EF_SEARCH = 4096


class Hit(NamedTuple):
    """One search result. A named tuple: a batch search builds many, and tuples are the cheapest to build.

    ``score`` is what the mode ranks by: the cosine similarity (dense), the BM25 score (lexical) or the
    fused score (hybrid). ``dense``, ``lexical`` and ``fused`` are the signals behind it, None where the
    mode did not compute one (a dense hit has ``dense == score`` and no lexical score).
    """

    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    dense: float | None = None
    lexical: float | None = None
    fused: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "text": self.text, "metadata": self.metadata,
                "scores": {"dense": self.dense, "lexical": self.lexical, "fused": self.fused}}


def load_encoder_for(index: Index, model: str | None = None, backend: str | None = None, *,
                     allow_model_mismatch: bool = False, device: str | None = None):
    """An encoder for ``index``'s model (the manifest's unless ``model`` overrides it), on ``backend`` (default: auto).

    The backend the index was built with is not reused: every backend gives the same vectors within the
    fidelity bar (cosine >= 0.9999 for onnx against torch), so a torch-built index is searched with the
    fast default, and the reverse; the fingerprint check is on the model alone.
    """
    from koembed.encoder import KoMiniLMEncoder

    info = index.manifest.model
    name = model or info.name
    if not name:
        raise InputError(f"{index.directory}: the index was built from vectors without a model name; "
                         "pass a model (--model) or search with vectors")
    encoder = KoMiniLMEncoder(name, device=device, backend=backend or AUTO)
    index.check_model(encoder.fingerprint, encoder.dim, allow_mismatch=allow_model_mismatch, name=encoder.model_name)
    return encoder


def search(
    index: Index | str | os.PathLike,
    queries: list[str] | np.ndarray,
    k: int = DEFAULT_K,
    filter: dict[str, Any] | None = None,
    encoder: Any = None,
    ef_search: int | None = None,
    nprobe: int | None = None,
    *,
    allow_model_mismatch: bool = False,
    batch_size: int = 64,
    mode: str | None = None,
    dense_weight: float | None = None,
    fusion: str = "convex",
    fields: Collection[str] = DOC_FIELDS,
) -> list[list[Hit]]:
    """Return, for each query, up to ``k`` hits, best first.

    ``index`` is an open :class:`Index` or a directory (opened read-only for this call). ``mode`` is
    ``dense`` (cosine similarity; the only mode for query vectors), ``lexical`` (BM25 over the index's
    analyser; loads no model) or ``hybrid`` (both, fused: :mod:`koembed.index.modes`); None means hybrid
    for text queries on an index with a lexical part, else dense. Text queries are encoded with ``encoder``
    or, if None, with the model named in the index manifest; its fingerprint must match the index's unless
    ``allow_model_mismatch``. Hybrid fuses with ``fusion`` (``convex`` or ``rrf``); ``dense_weight`` (the
    convex weight of the dense side) defaults to the one the model records. ``filter`` keeps documents
    whose metadata equals every ``key: value`` (a list value matches any of its items; ``"1"`` and ``1``
    match each other, see :func:`koembed.index.store.filter_equivalents`). ``fields`` names the document
    fields to read besides the id (``text``, ``metadata``); hits leave the others empty, which saves most of
    the time a batch search spends after FAISS.
    """
    from koembed.index.modes import dense_weight_for, hybrid_search, lexical_search, resolve_mode

    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    owned = not isinstance(index, Index)
    idx = Index.open(index) if owned else index
    try:
        is_vectors = isinstance(queries, np.ndarray)
        mode = resolve_mode(idx, "dense" if is_vectors and mode is None else mode)
        if is_vectors and mode != "dense":
            raise InputError(f"{mode} search needs query texts; query vectors can only be searched in dense mode")
        texts = None if is_vectors else _query_texts(queries)
        if mode == "lexical":
            scores, row_ids = lexical_search(idx, texts, k, filter)
            return hits_from(idx, scores, row_ids, lexical=scores, fields=fields)
        if is_vectors:
            if queries.size == 0:
                raise InputError("no queries given; pass at least one query")
            vectors = queries
        else:
            encoder = _encoder(idx, encoder, allow_model_mismatch)
            vectors = encoder.encode(texts, batch_size=batch_size)
        if mode == "dense":
            scores, row_ids = search_vectors(idx, vectors, k, filter=filter, ef_search=ef_search, nprobe=nprobe)
            return hits_from(idx, scores, row_ids, dense=scores, fields=fields)
        weight = dense_weight if dense_weight is not None else dense_weight_for(encoder, idx)
        fused, row_ids, dense, lexical = hybrid_search(idx, texts, vectors, k, filter=filter, dense_weight=weight,
                                                       fusion_method=fusion, ef_search=ef_search, nprobe=nprobe)
        return hits_from(idx, fused, row_ids, dense=dense, lexical=lexical, fused=fused, fields=fields)
    finally:
        if owned:
            idx.close()


def hits_from(idx: Index, scores: np.ndarray, row_ids: np.ndarray, *, dense: np.ndarray | None = None,
              lexical: np.ndarray | None = None, fused: np.ndarray | None = None,
              fields: Collection[str] = DOC_FIELDS) -> list[list[Hit]]:
    """Turn result arrays into hits: one SQLite query fetches the ids (and the ``fields``) of all of them.

    ``dense``, ``lexical`` and ``fused`` (same shape as ``scores``, NaN for none) fill the hits' signals.
    """
    docs = idx.store.fetch(np.asarray(row_ids).ravel(), fields)
    get = docs.get
    if dense is scores and lexical is None and fused is None:  # dense mode, the batch path: no per-hit signals
        return [[Hit(d[0], s, d[1], d[2], s) for s, r in zip(srow, rrow, strict=True) if (d := get(r)) is not None]
                for srow, rrow in zip(scores.tolist(), row_ids.tolist(), strict=True)]
    lists = [None if a is None else np.asarray(a, dtype=np.float64).tolist() for a in (dense, lexical, fused)]
    out = []
    for qi, (srow, rrow) in enumerate(zip(scores.tolist(), row_ids.tolist(), strict=True)):
        sig = [None if a is None else a[qi] for a in lists]
        hits = []
        for j, (s, r) in enumerate(zip(srow, rrow, strict=True)):
            doc = get(r)
            if doc is not None:
                d, lx, f = (None if a is None or a[j] != a[j] else a[j] for a in sig)  # NaN: not computed
                hits.append(Hit(doc[0], s, doc[1], doc[2], d, lx, f))
        out.append(hits)
    return out


def _query_texts(queries: Any) -> list[str]:
    if isinstance(queries, str):
        queries = [queries]
    queries = list(queries)
    from koembed.text import normalize

    if not queries or not any(normalize(q) for q in queries):
        raise InputError("no queries given (all empty); pass at least one non-empty query")
    empty = [i + 1 for i, q in enumerate(queries) if not normalize(q)]
    if empty:
        raise InputError(f"query {empty[0]} is empty; remove empty queries")
    return queries


def _encoder(idx: Index, encoder: Any, allow_model_mismatch: bool) -> Any:
    if encoder is None:
        return load_encoder_for(idx, allow_model_mismatch=allow_model_mismatch)
    idx.check_model(encoder.fingerprint, encoder.dim, allow_mismatch=allow_model_mismatch,
                    name=getattr(encoder, "model_name", None))
    return encoder


def search_vectors(idx: Index, queries: np.ndarray, k: int, *, filter: dict[str, Any] | None = None,
                   ef_search: int | None = None, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FAISS-level search: ``(scores, row_ids)`` arrays of shape ``(n, k')``, row id -1 for no hit."""
    import faiss

    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != idx.dim:
        raise IndexRefusedError(f"{idx.directory}: query vectors of dimension {q.shape[-1]} do not match the "
                                f"index's {idx.dim}; use the index's model")
    q = np.ascontiguousarray(l2_normalize(q))
    n_live = idx.count if (filter or len(idx.tombstones())) else int(idx.faiss.ntotal)
    empty = (np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64))
    if n_live == 0:
        return empty
    nlist = idx.spec.nlist
    base_nprobe = nprobe or idx.spec.search_defaults.get("nprobe")
    base_ef = ef_search or idx.spec.search_defaults.get("efSearch")
    keep: list[Any] = []  # SWIG selectors must outlive the search call
    sel = None
    if filter:
        match = idx.store.filter_row_ids(filter)
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
