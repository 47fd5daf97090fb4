"""Clustered random unit vectors: the stand-in corpus for index tests and benchmarks.

Real sentence embeddings are clustered by topic, and approximate indexes behave very differently on
clustered data than on uniform noise (where nearest neighbours are barely nearer than anything
else). Each vector is a random cluster centre plus isotropic noise of the same expected norm, then
L2-normalised: members of a cluster have cosine about 0.5 with each other and about 0 with others.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def clustered_vectors(n: int, dim: int, *, n_clusters: int | None = None, noise: float = 1.0, seed: int = 0,
                      chunk: int = 65536) -> Iterator[np.ndarray]:
    """Yield float32 unit vectors in chunks of ``chunk`` rows, ``n`` in all (deterministic for a seed)."""
    n_clusters = n_clusters or max(10, n // 1000)
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = centres[rng.integers(0, n_clusters, m)]
        x = x + rng.standard_normal((m, dim), dtype=np.float32) * np.float32(noise / np.sqrt(dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield x


def clustered_matrix(n: int, dim: int, **kwargs) -> np.ndarray:
    """All of :func:`clustered_vectors` as one matrix (for small ``n``)."""
    return np.vstack(list(clustered_vectors(n, dim, **kwargs)))


def queries_like(n: int, dim: int, *, n_corpus: int, n_clusters: int | None = None, noise: float = 1.0,
                 seed: int = 0) -> np.ndarray:
    """``n`` query vectors from the same clusters as ``clustered_vectors(n_corpus, dim, seed=seed)``."""
    n_clusters = n_clusters or max(10, n_corpus // 1000)
    centres = np.random.default_rng(seed).standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed + 1_000_003)
    q = centres[rng.integers(0, n_clusters, n)] + rng.standard_normal((n, dim), dtype=np.float32) * np.float32(
        noise / np.sqrt(dim))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
