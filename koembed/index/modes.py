"""Search modes: ``dense`` (FAISS), ``lexical`` (BM25 over the index's analyser) and ``hybrid`` (both, fused).

Hybrid search takes each side's top ``max(k, CANDIDATES)`` documents, scores every candidate on both
sides exactly (the lexical score of a dense candidate from the BM25 matrix; the cosine of a lexical
candidate from its stored vector, where the FAISS type can give it back), and fuses the two with
:mod:`koembed.lexical.fusion`. The dense side's weight comes from the model: a model made by this
project records the weight tuned for it (``koembed_model.json``, key ``search.dense_weight``, written
by ``examples/benchmarks/tune_dense_weight.py``); any other model gets ``DEFAULT_DENSE_WEIGHT``.

The default mode is ``hybrid`` for an index with a lexical part and ``dense`` for one without (an
index made before lexical parts existed); lexical mode loads no model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from koembed.errors import IndexRefusedError, InputError
from koembed.index.store import distinct_sorted
from koembed.lexical import fusion
from koembed.lexical.part import add_hint

MODES = ("hybrid", "dense", "lexical")
FUSIONS = ("convex", "rrf")
# Candidates each side contributes to fusion (at least k).
CANDIDATES = 100
# The dense weight for a model that records none: an even say for both sides.
DEFAULT_DENSE_WEIGHT = 0.5
MODEL_CARD = "koembed_model.json"


def resolve_mode(idx: Any, mode: str | None) -> str:
    """The mode a search runs in: ``mode`` checked against the index, or the index's default."""
    if mode is None:
        return "hybrid" if idx.lexical is not None else "dense"
    if mode not in MODES:
        raise InputError(f"unknown search mode {mode!r}; choose one of: {', '.join(MODES)}")
    if mode != "dense" and idx.lexical is None:
        raise IndexRefusedError(f"{idx.directory}: has no lexical part (it was built before koembed had one), so "
                                f"--mode {mode} cannot run; add it without re-encoding: {add_hint(idx.directory)}")
    return mode


def model_dense_weight(model_path: str | Path | None) -> float | None:
    """The dense weight a model folder records (``koembed_model.json``: ``search.dense_weight``), else None."""
    if model_path is None:
        return None
    card = Path(model_path) / MODEL_CARD
    try:
        weight = json.loads(card.read_text(encoding="utf-8")).get("search", {}).get("dense_weight")
    except (OSError, ValueError, AttributeError):
        return None
    return float(weight) if isinstance(weight, int | float) and 0.0 <= weight <= 1.0 else None


def dense_weight_for(encoder: Any, idx: Any = None) -> float:
    """The weight ``encoder``'s model records (or, for an encoder that names no folder, the index's model,
    when that is a local folder), else :data:`DEFAULT_DENSE_WEIGHT`."""
    weight = model_dense_weight(getattr(getattr(encoder, "source", None), "path", None))
    name = idx.manifest.model.name if idx is not None else None
    if weight is None and getattr(encoder, "source", None) is None and name and Path(name).is_dir():
        weight = model_dense_weight(name)
    return DEFAULT_DENSE_WEIGHT if weight is None else weight


def _pad(rows: list[np.ndarray], values: list[list[np.ndarray]], k: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Lists of per-query arrays -> ``(row_ids (n, k) with -1 padding, [values (n, k) with NaN padding])``."""
    width = max([len(r) for r in rows] + [0])
    width = min(width, k)
    out_rows = np.full((len(rows), width), -1, dtype=np.int64)
    out_vals = [np.full((len(rows), width), np.nan, dtype=np.float32) for _ in values]
    for i, r in enumerate(rows):
        n = min(len(r), width)
        out_rows[i, :n] = r[:n]
        for arr, v in zip(out_vals, values, strict=True):
            arr[i, :n] = v[i][:n]
    return out_rows, out_vals


def _allowed(idx: Any, filter: dict[str, Any] | None) -> np.ndarray | None:
    return None if not filter else idx.store.filter_row_ids(filter)


def lexical_search(idx: Any, texts: list[str], k: int, filter: dict[str, Any] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, row_ids)`` of shape ``(n, k')`` (row id -1 where a query found fewer), best first."""
    rows, scores, _ = idx.lexical.search(idx.store.conn, texts, k, _allowed(idx, filter))
    row_ids, (vals,) = _pad(rows, [scores], k)
    return vals, row_ids


def _dense_scores_of(idx: Any, vectors: np.ndarray, wanted: list[np.ndarray]) -> list[np.ndarray]:
    """Cosine of each query with its ``wanted`` row ids' stored vectors; NaN where FAISS cannot return them."""
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
            out[i] = stored[np.searchsorted(flat, w)] @ vectors[i]
    return out


def hybrid_search(idx: Any, texts: list[str], vectors: np.ndarray, k: int, *, filter: dict[str, Any] | None = None,
                  dense_weight: float, fusion_method: str = "convex", ef_search: int | None = None,
                  nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(fused, row_ids, dense, lexical)``, each ``(n, k')``: the fused ranking with both sides' scores."""
    from koembed.index.query import search_vectors
    from koembed.vectors import l2_normalize

    if fusion_method not in FUSIONS:
        raise InputError(f"unknown fusion {fusion_method!r}; choose one of: {', '.join(FUSIONS)}")
    if not 0.0 <= dense_weight <= 1.0:
        raise InputError(f"--dense-weight must be within [0, 1], got {dense_weight}")
    n_cand = max(k, CANDIDATES)
    q = np.ascontiguousarray(l2_normalize(np.asarray(vectors, dtype=np.float32)))
    d_scores, d_rows = search_vectors(idx, q, n_cand, filter=filter, ef_search=ef_search, nprobe=nprobe)
    dense_lists = [r[r >= 0] for r in d_rows]
    dense_vals = [s[r >= 0] for s, r in zip(d_scores, d_rows, strict=True)]
    l_rows, l_scores, lex_of_dense = idx.lexical.search(idx.store.conn, texts, n_cand, _allowed(idx, filter),
                                                        score_rows=dense_lists)
    lexical_only = [np.setdiff1d(lr, dl, assume_unique=True) for lr, dl in zip(l_rows, dense_lists, strict=True)]
    dense_of_lexical = _dense_scores_of(idx, q, lexical_only)
    rows_out, fused_out, dense_out, lex_out = [], [], [], []
    for i in range(len(q)):
        cand = np.concatenate([dense_lists[i], lexical_only[i]])
        dense = np.concatenate([dense_vals[i], dense_of_lexical[i]]).astype(np.float64)
        lexical_of = dict(zip(l_rows[i].tolist(), l_scores[i].tolist(), strict=True))
        lexical = np.concatenate([lex_of_dense[i], [lexical_of[r] for r in lexical_only[i].tolist()]])
        if fusion_method == "rrf":
            in_lexical = np.isin(cand, l_rows[i])
            dense_ranked = np.where(np.arange(len(cand)) < len(dense_lists[i]), dense, np.nan)
            fused = fusion.rrf(dense_ranked, np.where(in_lexical, lexical, np.nan), cand)
        else:
            fused = fusion.convex(dense, lexical, dense_weight)
        top = fusion.order(fused, cand)
        if fusion_method == "convex" and dense_weight == 0.0:
            # W = 0 ranks the lexical matches exactly as lexical mode does. Candidates with no lexical match
            # all tie at the bottom; they follow in dense order rather than being dropped, so a query that
            # shares no token with any document (a paraphrase) still gets k hits, ranked by the model.
            matched = top[lexical[top] > 0]
            rest = np.flatnonzero(~(lexical > 0))
            rest = rest[np.lexsort((cand[rest], -np.nan_to_num(dense[rest], nan=-np.inf)))]
            top = np.concatenate([matched, rest])
        top = top[:k]
        rows_out.append(cand[top])
        fused_out.append(fused[top])
        dense_out.append(dense[top])
        lex_out.append(lexical[top])
    row_ids, (fused_v, dense_v, lex_v) = _pad(rows_out, [fused_out, dense_out, lex_out], k)
    return fused_v, row_ids, dense_v, lex_v
