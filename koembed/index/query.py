"""Search an index: queries (texts or vectors) in, ranked hits (id, score, text, metadata) out.

All queries go to FAISS in one batch call. A metadata filter is resolved to the matching row ids in
SQLite and handed to FAISS as an id selector, so the k results are the best *matching* documents
rather than a post-filtered remainder. Approximate types widen their search in proportion to how
selective the filter is, and when few documents match (``EXACT_FILTER_MAX``) the search becomes
exhaustive over them (IVF probes every list; HNSW scores the matching vectors directly), so a
rare filter value never loses results to the approximation.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Collection, Iterator
from itertools import repeat
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


class Ranking(NamedTuple):
    """What a mode ranked, before documents are read: ``(n, k')`` arrays, row id -1 (score NaN) for no hit.

    ``dense``, ``lexical`` and ``fused`` are the signals (None where the mode computes none, NaN where a
    hit lacks one); ``scores`` is the one the mode ranks by.
    """

    scores: np.ndarray
    row_ids: np.ndarray
    dense: np.ndarray | None = None
    lexical: np.ndarray | None = None
    fused: np.ndarray | None = None


class RankedIds(NamedTuple):
    """:func:`search_ids`' result: external ids (object array, None for no hit) and scores (NaN for none)."""

    ids: np.ndarray
    scores: np.ndarray


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
    the time a batch search spends after FAISS. :func:`search_ids` returns arrays instead of hits.
    """
    with _opened(index) as idx:
        ranking = rank(idx, queries, k, filter, encoder, ef_search, nprobe, allow_model_mismatch=allow_model_mismatch,
                       batch_size=batch_size, mode=mode, dense_weight=dense_weight, fusion=fusion)
        return hits_from(idx, ranking, fields=fields)


def search_ids(index: Index | str | os.PathLike, queries: list[str] | np.ndarray, k: int = DEFAULT_K,
               **options: Any) -> RankedIds:
    """:func:`search` for batch callers that need ids and scores only (evaluation, re-ranking, joins).

    Returns ``(n, k')`` arrays, as FAISS does, with external ids: no hit objects and no document reads,
    so a 1,000-query batch costs little more than FAISS itself (docs/benchmarks.md, "Search overhead").
    Rows with fewer hits end in None ids and NaN scores. ``options`` are :func:`search`'s (``filter``,
    ``encoder``, ``mode``, ``nprobe``, ...), all but ``fields``.
    """
    with _opened(index) as idx:
        ranking = rank(idx, queries, k, **options)
        ids = idx.ext_ids.lookup(ranking.row_ids)
        scores = np.where(np.equal(ids, None), np.nan, ranking.scores).astype(np.float32)
        return RankedIds(ids, scores)


@contextlib.contextmanager
def _opened(index: Index | str | os.PathLike) -> Iterator[Index]:
    """``index`` itself if it is open, else the directory opened read-only for the duration."""
    if isinstance(index, Index):
        yield index
        return
    idx = Index.open(index)
    try:
        yield idx
    finally:
        idx.close()


def rank(idx: Index, queries: list[str] | np.ndarray, k: int = DEFAULT_K, filter: dict[str, Any] | None = None,
         encoder: Any = None, ef_search: int | None = None, nprobe: int | None = None, *,
         allow_model_mismatch: bool = False, batch_size: int = 64, mode: str | None = None,
         dense_weight: float | None = None, fusion: str = "convex") -> Ranking:
    """The ranking :func:`search` and :func:`search_ids` share (arguments as for :func:`search`)."""
    from koembed.index.modes import dense_weight_for, hybrid_search, lexical_search, resolve_mode

    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    is_vectors = isinstance(queries, np.ndarray)
    mode = resolve_mode(idx, "dense" if is_vectors and mode is None else mode)
    if is_vectors and mode != "dense":
        raise InputError(f"{mode} search needs query texts; query vectors can only be searched in dense mode")
    texts = None if is_vectors else _query_texts(queries)
    if mode == "lexical":
        scores, row_ids = lexical_search(idx, texts, k, filter)
        return Ranking(scores, row_ids, lexical=scores)
    if is_vectors:
        if queries.size == 0:
            raise InputError("no queries given; pass at least one query")
        vectors = queries
    else:
        encoder = _encoder(idx, encoder, allow_model_mismatch)
        vectors = encoder.encode(texts, batch_size=batch_size)
    if mode == "dense":
        scores, row_ids = search_vectors(idx, vectors, k, filter=filter, ef_search=ef_search, nprobe=nprobe)
        return Ranking(scores, row_ids, dense=scores)
    weight = dense_weight if dense_weight is not None else dense_weight_for(encoder, idx)
    fused, row_ids, dense, lexical = hybrid_search(idx, texts, vectors, k, filter=filter, dense_weight=weight,
                                                   fusion_method=fusion, ef_search=ef_search, nprobe=nprobe)
    return Ranking(fused, row_ids, dense, lexical, fused)


def hits_from(idx: Index, ranking: Ranking, *, fields: Collection[str] = DOC_FIELDS) -> list[list[Hit]]:
    """Turn a ranking into hits, dropping rows with no document (-1, or removed since).

    Without ``fields`` the external ids come from :class:`~koembed.index.ext_ids.ExtIds`; with them one
    SQLite query fetches the ids and those fields of all hits.
    """
    scores, row_ids, dense, lexical, fused = ranking
    row_ids = np.asarray(row_ids)
    n, k = row_ids.shape if row_ids.ndim == 2 else (len(row_ids), 0)
    size = n * k
    flat_scores = np.asarray(scores, dtype=np.float64).ravel().tolist()
    if fields:
        docs = idx.store.fetch(row_ids.ravel(), fields)
        get = docs.get
        found = [get(r) for r in row_ids.ravel().tolist()]
        ext = [None if d is None else d[0] for d in found]
        texts: Any = [None if d is None else d[1] for d in found]
        metas: Any = [None if d is None else d[2] for d in found]
    else:
        ext = idx.ext_ids.lookup(row_ids).ravel().tolist()
        texts, metas = repeat("", size), repeat(NOT_READ, size)
    signals = [repeat(None, size) if a is None else flat_scores if a is scores else
               [None if v != v else v for v in np.asarray(a, dtype=np.float64).ravel().tolist()]  # NaN: not computed
               for a in (dense, lexical, fused)]
    # One pass over all hits, then a slice per query: per-query set-up cost as much as building the hits.
    hits = list(map(_new_tuple, repeat(Hit), zip(ext, flat_scores, texts, metas, *signals, strict=True)))
    out = [hits[i * k:(i + 1) * k] for i in range(n)]
    if None in ext:  # a -1 from FAISS, or a document removed since: no hit
        out = [[h for h in row if h.id is not None] for row in out]
    return out


# Building hits through tuple.__new__ over zipped columns costs a third of calling Hit(...) per hit
# (0.33 vs 0.75 us on the benchmark machine); a batch search builds 10,000 of them.
_new_tuple = tuple.__new__


class _NotRead(dict):
    """The metadata of a hit whose search did not read it: an empty dict that refuses changes, so that one
    instance serves every such hit (a fresh dict per hit was a fifth of a batch search's time after FAISS)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("this hit's metadata was not read (search with fields including 'metadata'); "
                        "copy it with dict(hit.metadata) to change it")

    __setitem__ = __delitem__ = __ior__ = update = setdefault = pop = popitem = clear = _refuse  # type: ignore


NOT_READ: dict[str, Any] = _NotRead()


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
