"""Lexical and hybrid search over one generation: BM25 top lists, and their fusion with the dense side.

Hybrid search takes each side's top ``max(k, CANDIDATES)`` documents, scores every candidate on both
sides exactly (the lexical score of a dense candidate from the BM25 matrix; the cosine of a lexical
candidate from its stored vector, where the FAISS type can give it back), and fuses the two with
:mod:`koembed.lexical.fusion`. Queries arrive resolved (:mod:`koembed.index.query`): texts checked, the
mode chosen, vectors unit length, the dense weight and fusion checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from koembed.index.dense import dense_scores_of, search_unit
from koembed.lexical import fusion

if TYPE_CHECKING:
    from koembed.index.core import Index

# Candidates each side contributes to fusion (at least k).
CANDIDATES = 100


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


def lexical_search(idx: Index, texts: list[str], k: int, allowed: np.ndarray | None = None,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, row_ids)`` of shape ``(n, k')`` (row id -1 where a query found fewer), best first.

    ``allowed``: the row ids a filter matched (None: no filter).
    """
    rows, scores, _ = idx.lexical.search(idx.store.conn, texts, k, allowed)
    row_ids, (vals,) = _pad(rows, [scores], k)
    return vals, row_ids


def hybrid_search(idx: Index, texts: list[str], q: np.ndarray, k: int, *, dense_weight: float,
                  fusion_method: str = fusion.DEFAULT, allowed: np.ndarray | None = None, ef_search: int | None = None,
                  nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(fused, row_ids, dense, lexical)``, each ``(n, k')``: the fused ranking with both sides' scores.

    ``q``: the unit query vectors of ``texts``; ``allowed``: the row ids a filter matched (None: no
    filter), resolved once for both sides.
    """
    n_cand = max(k, CANDIDATES)
    d_scores, d_rows = search_unit(idx, q, n_cand, allowed=allowed, ef_search=ef_search, nprobe=nprobe)
    dense_lists = [r[r >= 0] for r in d_rows]
    dense_vals = [s[r >= 0] for s, r in zip(d_scores, d_rows, strict=True)]
    l_rows, l_scores, lex_of_dense = idx.lexical.search(idx.store.conn, texts, n_cand, allowed,
                                                        score_rows=dense_lists)
    lexical_only = [np.setdiff1d(lr, dl, assume_unique=True) for lr, dl in zip(l_rows, dense_lists, strict=True)]
    dense_of_lexical = dense_scores_of(idx, q, lexical_only)
    scale = np.ones(len(q))
    if fusion_method == "coverage":  # how much of each query its best lexical match holds
        best = [int(r[0]) if len(r) else -1 for r in l_rows]
        scale = idx.lexical.coverage(idx.store.conn, texts, best) ** fusion.COVERAGE_POWER
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
            fused = fusion.convex(dense, lexical, dense_weight, scale[i])
        top = fusion.order(fused, cand)
        if fusion_method != "rrf" and dense_weight == 0.0:
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
