"""Helpers shared by the index tests: small clustered vector sets and indexes built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from koembed.index import Index
from koembed.synthetic import clustered_matrix, queries_like

DIM = 32
# One small type per FAISS family: exact, graph (tombstones), IVF flat / scalar / product quantised.
EVERY_TYPE = ["Flat", "HNSW16", "IVF16,Flat", "IVF16,SQ8", "IVF16,PQ8"]


def vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return clustered_matrix(n, dim, n_clusters=max(10, n // 100), seed=seed)


def queries(n: int, n_corpus: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return queries_like(n, dim, n_corpus=n_corpus, n_clusters=max(10, n_corpus // 100), seed=seed)


def build(directory: Path, x: np.ndarray, index_type: str = "Flat", **kwargs) -> Index:
    """A writable index of ``x`` with ids ``d0..``, texts ``문서 i`` and metadata ``{"group": i % 5, "even": ...}``."""
    index = Index.create(directory, x.shape[1], index_type=index_type, expected_count=len(x),
                         model_name="test-vectors", model_fingerprint="f" * 32, **kwargs)
    n = len(x)
    index.add_vectors([f"d{i}" for i in range(n)], x, [f"문서 {i}" for i in range(n)],
                      [{"group": i % 5, "even": i % 2 == 0, "name": f"n{i}"} for i in range(n)])
    return index


def exact_top(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    sims = q @ x.T
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def recall_at(found_ids: list[list[str]], truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len({f"d{j}" for j in t} & set(f[:k])) / k for f, t in zip(found_ids, truth, strict=True)]))
