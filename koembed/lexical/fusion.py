"""Fusing a query's dense and lexical scores over its candidates into one ranking.

Both functions take, for one query, the scores of the same candidates (the union of the dense and
the lexical top lists) on each side; NaN marks a score a side does not have.

``convex``: ``W * z(dense) + (1 - W) * z(lexical)``, where ``z`` standardises a side's
scores over the query's candidates (mean 0, standard deviation 1; a side whose scores are all equal
contributes 0). Cosine similarities and BM25 sums live on different scales that change from query to
query, and standardising puts them on one. A missing score is taken as the lowest score that side gave
any candidate. With ``W = 1`` the order is exactly the dense order, with ``W = 0`` the lexical one.

``coverage`` (the default): the convex combination with the lexical side scaled by how much of the query
its best match covers, ``W * z(dense) + (1 - W) * c**2 * z(lexical)``, where ``c`` is the share of the
query's idf mass (its analysed tokens; a token no document has counts at the idf of an unseen token) held by
the best lexical match. A standardised BM25 side is loudest when its evidence is thinnest: among short texts
where one document shares one word of the query, that document's z is an outlier (about the square root
of the number of candidates) whatever the word's share of the query. Scaling by ``c`` keeps a full lexical
match (a name, a code) at full strength and lets the model decide where the words matched are a small
part of the query. The square (:data:`COVERAGE_POWER`) was chosen on data no reported number uses besides
KorQuAD's tuning half (docs/search.md): with each model's weight tuned on KorQuAD paragraphs, the power 2 keeps
KorQuAD's MRR@10 (0.9445 vs 0.9453 for the power 1 and 0.9439 for ``convex``) and transfers best to short
texts (paraphrase retrieval among KorSTS *train* sentences: 0.835 vs 0.828 and 0.818).

``rrf``: reciprocal-rank fusion, ``sum 1 / (k + rank)`` over the sides that returned the candidate
(k = 60, Cormack et al. 2009). It ignores the scores' sizes, which is its appeal and, when one side is
much weaker, its flaw: on KorQuAD dev it measured far below the convex combination (docs/search.md).

Ties are broken by the lower row id, as in lexical search, so equal inputs give equal orders.
"""

from __future__ import annotations

import numpy as np

from koembed.errors import InputError

RRF_K = 60
# ``coverage``: the lexical side's say is scaled by the query coverage of its best match to this power.
COVERAGE_POWER = 2
# The fusion methods by name, and the one used when none is named (measured best, docs/search.md).
METHODS = ("coverage", "convex", "rrf")
DEFAULT = "coverage"


def check_method(method: str) -> str:
    if method not in METHODS:
        raise InputError(f"unknown fusion {method!r}; choose one of: {', '.join(METHODS)}")
    return method


def check_dense_weight(weight: float) -> float:
    """``weight`` as a float if it is a dense weight (within [0, 1]); the one range check for every caller."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
        raise InputError(f"the dense weight must be a number within [0, 1], got {weight!r}")
    return float(weight)


def zscore(scores: np.ndarray) -> np.ndarray:
    """Standardised scores (float64); missing (NaN) scores take the side's lowest; all equal -> zeros."""
    x = np.asarray(scores, dtype=np.float64)
    known = ~np.isnan(x)
    if not known.any():
        return np.zeros(len(x))
    x = np.where(known, x, x[known].min())
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros(len(x))


def convex(dense: np.ndarray, lexical: np.ndarray, dense_weight: float, lexical_scale: float = 1.0) -> np.ndarray:
    """``W * z(dense) + (1 - W) * s * z(lexical)`` (for W 0 or 1 exactly one side's z, since z + 0.0 == z).

    ``lexical_scale`` ``s``: 1 for ``convex``; the query's coverage for ``coverage``.
    """
    check_dense_weight(dense_weight)
    return dense_weight * zscore(dense) + (1.0 - dense_weight) * lexical_scale * zscore(lexical)


def ranks(scores: np.ndarray, row_ids: np.ndarray) -> np.ndarray:
    """1-based rank of each candidate by descending score (ties: lower row id first); NaN -> NaN."""
    x = np.asarray(scores, dtype=np.float64)
    known = np.flatnonzero(~np.isnan(x))
    out = np.full(len(x), np.nan)
    order = known[np.lexsort((np.asarray(row_ids)[known], -x[known]))]
    out[order] = np.arange(1, len(order) + 1)
    return out


def rrf(dense: np.ndarray, lexical: np.ndarray, row_ids: np.ndarray, k: int = RRF_K) -> np.ndarray:
    """Reciprocal-rank fusion of the two sides' rankings of the candidates (a NaN score adds nothing)."""
    total = np.zeros(len(row_ids))
    for side in (dense, lexical):
        r = ranks(side, row_ids)
        total += np.where(np.isnan(r), 0.0, 1.0 / (k + np.nan_to_num(r, nan=1.0)))
    return total


def order(fused: np.ndarray, row_ids: np.ndarray) -> np.ndarray:
    """Candidate indices, best fused score first, ties to the lower row id."""
    return np.lexsort((np.asarray(row_ids), -np.asarray(fused, dtype=np.float64)))
