"""Correlation scores (x100) used by koembed's evaluation and distill's benchmark suite alike."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from koembed.errors import InputError


def _pair(predictions: Sequence[float], labels: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    x, y = np.asarray(predictions, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if x.shape != y.shape:
        raise InputError(f"{x.shape[0] if x.ndim else 0} predictions for {y.shape[0] if y.ndim else 0} labels")
    if len(x) < 2:
        # A correlation over 0 or 1 pair is no score at all: an empty evaluation set must not read as 0.
        raise InputError(f"a correlation needs at least 2 pairs, got {len(x)}; check the evaluation data")
    # A constant vector has no defined correlation; a model that predicts one value ranks nothing.
    if np.all(x == x[0]) or np.all(y == y[0]):
        return None
    return x, y


def spearman(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """Spearman rank correlation x100 (0.0 when either side is constant)."""
    from scipy.stats import spearmanr

    xy = _pair(predictions, labels)
    return 0.0 if xy is None else 100.0 * float(spearmanr(*xy).statistic)


def pearson(predictions: Sequence[float], labels: Sequence[float]) -> float:
    """Pearson correlation x100 (0.0 when either side is constant)."""
    from scipy.stats import pearsonr

    xy = _pair(predictions, labels)
    return 0.0 if xy is None else 100.0 * float(pearsonr(*xy).statistic)
