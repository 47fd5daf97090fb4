"""Search an index: one query (texts and/or vectors) resolved once, ranked, and turned into hits.

The pipeline: a :class:`Query` (texts and/or vectors, prompt, mode, fusion, filter, k) is resolved once
by :func:`resolve` against an open index: the texts checked, the mode decided, the model checked
against the index (its fingerprint and query prompt), the texts encoded (unless the caller brought
their vectors), the vectors made unit length, the dense weight and fusion checked, the filter turned
into row ids. :func:`rank` then runs the mode (:mod:`koembed.index.dense`, :mod:`koembed.index.hybrid`)
and :func:`hits_from` reads the documents. :func:`search` and :func:`search_ids` are the two front
doors; the server (which encodes queries in shared batches) passes its vectors with the texts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np

from koembed.backends import AUTO
from koembed.backends.prompts import QUERY
from koembed.errors import InputError
from koembed.index.core import Index
from koembed.index.dense import EXACT_FILTER_MAX, MAX_EF_SEARCH, search_unit, search_vectors, unit_queries
from koembed.index.hybrid import hybrid_search, lexical_search
from koembed.index.modes import DEFAULT_FUSION, Mode, check_dense_weight, check_fusion, dense_weight_for, resolve_mode
from koembed.index.store import DOC_FIELDS

__all__ = ["DEFAULT_K", "EXACT_FILTER_MAX", "MAX_EF_SEARCH", "Answer", "Hit", "Query", "RankedIds", "Ranking",
           "Resolved", "answer", "hits_from", "load_encoder_for", "rank", "resolve", "search", "search_ids",
           "search_vectors"]

DEFAULT_K = 10


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


@dataclass(frozen=True)
class Query:
    """What a search asks, before it is checked against an index.

    ``texts`` and/or ``vectors``: query texts (lexical and hybrid need them), their vectors (dense and
    hybrid need them; made from the texts when absent), or both, row i of ``vectors`` for ``texts[i]``.
    ``prompt``: the prompt the query texts are (or were) encoded with; None means the model's query
    prompt. ``mode`` None: hybrid for texts on an index with a lexical part, else dense.
    ``dense_weight`` None: the weight the model records. ``filter`` keeps documents whose metadata
    equals every ``key: value`` (a list value matches any of its items).
    """

    texts: Sequence[str] | None = None
    vectors: np.ndarray | None = None
    k: int = DEFAULT_K
    mode: str | None = None
    fusion: str = DEFAULT_FUSION
    dense_weight: float | None = None
    filter: dict[str, Any] | None = None
    prompt: str | None = None
    ef_search: int | None = None
    nprobe: int | None = None


@dataclass(frozen=True)
class Resolved:
    """A :class:`Query` checked against one index: everything a mode needs, decided once."""

    mode: Mode
    k: int
    texts: list[str] | None  # checked non-empty; None for a vectors-only query
    vectors: np.ndarray | None  # unit float32 (n, dim); None in lexical mode
    allowed: np.ndarray | None  # row ids the filter matches; None: no filter
    fusion: str
    dense_weight: float
    ef_search: int | None = None
    nprobe: int | None = None


def load_encoder_for(index: Index, model: str | None = None, backend: str | None = None, *,
                     allow_model_mismatch: bool = False, device: str | None = None):
    """An encoder for ``index``'s model (the manifest's unless ``model`` overrides it), on ``backend`` (default: auto).

    The backend the index was built with is not reused: every backend gives the same vectors within the
    fidelity bar (cosine >= 0.9999 for onnx against torch), so a torch-built index is searched with the
    fast default, and the reverse; the fingerprint check is on the model alone (and its query prompt).
    """
    encoder = _load_encoder(index, model, backend, device)
    _check_encoder(index, encoder, encoder.prompt_for(QUERY), allow_model_mismatch)
    return encoder


def _load_encoder(index: Index, model: str | None, backend: str | None, device: str | None = None):
    from koembed.encoder import KoMiniLMEncoder

    name = model or index.manifest.model.name
    if not name:
        raise InputError(f"{index.directory}: the index was built from vectors without a model name; "
                         "name a model or search with vectors")
    return KoMiniLMEncoder(name, device=device, backend=backend or AUTO)


def _check_encoder(idx: Index, encoder: Any, prompt: str, allow_model_mismatch: bool) -> None:
    idx.check_model(encoder.fingerprint, encoder.dim, allow_mismatch=allow_model_mismatch,
                    name=getattr(encoder, "model_name", None), prompts={QUERY: prompt})


def resolve(idx: Index, query: Query, encoder: Any = None, *, allow_model_mismatch: bool = False,
            batch_size: int = 64, model: str | None = None, backend: str | None = None) -> Resolved:
    """Check ``query`` against ``idx`` once and make what its mode needs (see the module docstring).

    ``encoder`` encodes the texts (without one, the index's model is loaded, or ``model`` on ``backend``);
    with ``query.vectors`` given it encodes nothing and only vouches for the vectors' model, which must
    match the index's. Vectors without an encoder are taken as they are.
    """
    if query.k < 1:
        raise InputError(f"k must be >= 1, got {query.k}")
    texts = None if query.texts is None else _query_texts(query.texts)
    vectors = query.vectors
    if texts is None and vectors is None:
        raise InputError("no queries given; pass query texts or vectors")
    if vectors is not None:
        vectors = np.asarray(vectors)
        if vectors.size == 0:
            raise InputError("no queries given; pass at least one query")
        if texts is not None and len(vectors) != len(texts):
            raise InputError(f"{len(texts)} query texts but {len(vectors)} query vectors; give one vector per text")
    mode = resolve_mode(idx, query.mode, has_texts=texts is not None)
    fusion = check_fusion(query.fusion)
    weight = None if query.dense_weight is None else check_dense_weight(query.dense_weight)
    unit = False
    if mode != "lexical":
        if encoder is None and vectors is None:
            encoder = _load_encoder(idx, model, backend)
        if encoder is not None:
            prompt = query.prompt if query.prompt is not None else _query_prompt(encoder)
            _check_encoder(idx, encoder, prompt, allow_model_mismatch)
            if vectors is None:
                vectors = encoder.encode(texts, batch_size=batch_size, prompt=prompt)
                unit = getattr(encoder, "normalize", False) is True  # KoMiniLMEncoder's vectors are unit already
        vectors = unit_queries(idx, vectors, unit=unit)
    else:
        vectors = None
    if weight is None:
        weight = dense_weight_for(encoder)
    allowed = idx.store.filter_row_ids(query.filter) if query.filter else None
    return Resolved(mode, query.k, texts, vectors, allowed, fusion, weight, query.ef_search, query.nprobe)


def _query_prompt(encoder: Any) -> str:
    prompt_for = getattr(encoder, "prompt_for", None)  # an encoder without prompts (a test's stand-in) uses none
    return prompt_for(QUERY) if prompt_for is not None else ""


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
    fusion: str = DEFAULT_FUSION,
    fields: Collection[str] = DOC_FIELDS,
    vectors: np.ndarray | None = None,
    prompt: str | None = None,
) -> list[list[Hit]]:
    """Return, for each query, up to ``k`` hits, best first.

    ``index`` is an open :class:`Index` or a directory (opened read-only for this call). ``queries`` are
    texts or an array of query vectors; ``vectors`` gives the texts' vectors when the caller has them.
    ``mode`` is ``dense`` (cosine similarity; the only mode for query vectors alone), ``lexical`` (BM25
    over the index's analyser; loads no model) or ``hybrid`` (both, fused: :mod:`koembed.index.hybrid`);
    None means hybrid for text queries on an index with a lexical part, else dense. Text queries are
    encoded with ``encoder`` or, if None, with the model named in the index manifest, with the model's
    query prompt (or ``prompt``); its fingerprint and query prompt must match the index's unless
    ``allow_model_mismatch``. Hybrid fuses with ``fusion`` (``convex`` or ``rrf``); ``dense_weight`` (the
    convex weight of the dense side) defaults to the one the model records. ``filter`` keeps documents
    whose metadata equals every ``key: value`` (a list value matches any of its items; ``"1"`` and ``1``
    match each other, see :func:`koembed.index.store.filter_equivalents`). ``fields`` names the document
    fields to read besides the id (``text``, ``metadata``); hits leave the others empty, which saves most of
    the time a batch search spends after FAISS. :func:`search_ids` returns arrays instead of hits.
    """
    query = _as_query(queries, k=k, filter=filter, ef_search=ef_search, nprobe=nprobe, mode=mode,
                      dense_weight=dense_weight, fusion=fusion, vectors=vectors, prompt=prompt)
    return answer(index, query, encoder, allow_model_mismatch=allow_model_mismatch, batch_size=batch_size,
                  fields=fields).hits


class Answer(NamedTuple):
    """What :func:`answer` returns: the mode the query ran in, and each query's hits."""

    mode: Mode
    hits: list[list[Hit]]


def answer(index: Index | str | os.PathLike, query: Query, encoder: Any = None, *,
           allow_model_mismatch: bool = False, batch_size: int = 64, fields: Collection[str] = DOC_FIELDS,
           model: str | None = None, backend: str | None = None) -> Answer:
    """:func:`search` for a :class:`Query`, with the mode it ran in (``model``/``backend``: the encoder to load
    when none is given and the mode needs one)."""
    with _opened(index) as idx:
        resolved = resolve(idx, query, encoder, allow_model_mismatch=allow_model_mismatch, batch_size=batch_size,
                           model=model, backend=backend)
        return Answer(resolved.mode, hits_from(idx, rank(idx, resolved), fields=fields))


def search_ids(index: Index | str | os.PathLike, queries: list[str] | np.ndarray, k: int = DEFAULT_K,
               **options: Any) -> RankedIds:
    """:func:`search` for batch callers that need ids and scores only (evaluation, re-ranking, joins).

    Returns ``(n, k')`` arrays, as FAISS does, with external ids: no hit objects and no document reads,
    so a 1,000-query batch costs little more than FAISS itself (docs/benchmarks.md, "Search overhead").
    Rows with fewer hits end in None ids and NaN scores. ``options`` are :func:`search`'s (``filter``,
    ``encoder``, ``mode``, ``nprobe``, ...), all but ``fields``.
    """
    run = {key: options.pop(key) for key in ("encoder", "allow_model_mismatch", "batch_size") if key in options}
    query = _as_query(queries, k=k, **options)
    with _opened(index) as idx:
        ranking = rank(idx, resolve(idx, query, run.get("encoder"),
                                    allow_model_mismatch=run.get("allow_model_mismatch", False),
                                    batch_size=run.get("batch_size", 64)))
        ids = idx.ext_ids.lookup(ranking.row_ids)
        scores = np.where(np.equal(ids, None), np.nan, ranking.scores).astype(np.float32)
        return RankedIds(ids, scores)


def _as_query(queries: Any, *, vectors: np.ndarray | None = None, **fields: Any) -> Query:
    """The :class:`Query` of :func:`search`'s arguments: an array of queries is vectors, anything else texts."""
    if isinstance(queries, np.ndarray):
        if vectors is not None:
            raise InputError("query vectors given twice (as the queries and as vectors=)")
        return Query(vectors=queries, **fields)
    return Query(texts=[queries] if isinstance(queries, str) else list(queries), vectors=vectors, **fields)


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


def rank(idx: Index, q: Resolved) -> Ranking:
    """The ranking of a resolved query in its mode, before documents are read."""
    if q.mode == "lexical":
        scores, row_ids = lexical_search(idx, q.texts, q.k, q.allowed)
        return Ranking(scores, row_ids, lexical=scores)
    if q.mode == "dense":
        scores, row_ids = search_unit(idx, q.vectors, q.k, allowed=q.allowed, ef_search=q.ef_search, nprobe=q.nprobe)
        return Ranking(scores, row_ids, dense=scores)
    fused, row_ids, dense, lexical = hybrid_search(idx, q.texts, q.vectors, q.k, dense_weight=q.dense_weight,
                                                   fusion_method=q.fusion, allowed=q.allowed,
                                                   ef_search=q.ef_search, nprobe=q.nprobe)
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
