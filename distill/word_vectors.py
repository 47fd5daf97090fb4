"""Count-based word vectors (PPMI + truncated SVD) over a tokenizer's vocabulary, to start a teacher's embeddings.

Why: a small masked-LM teacher trained for an hour on a few million tokens of short Korean text
stays on BERT's early plateau, where it predicts the unigram distribution and barely uses the
context (docs/recipe.md). Co-occurrence statistics of the same raw text give each token a vector
that already places related words near each other, at the cost of one pass over the corpus and
one truncated SVD (a minute on two cores). Masked-LM training then starts from those vectors
instead of noise; the knowledge still comes only from the raw corpus.

The recipe: symmetric co-occurrence counts within ``window`` tokens of the same line, weighted
1/distance; positive PMI with the context distribution smoothed by ``alpha`` (Levy, Goldberg &
Dagan, 2015); the top ``dim`` singular vectors scaled by the square root of their singular values.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np

_CHUNK = 20_000  # lines per tokenise-and-count batch: bounds the memory of the pair arrays


def cooccurrence(lines: Iterable[str], tokenizer: Any, window: int = 5):
    """A ``vocab x vocab`` sparse matrix of co-occurrence weights (1/distance) within each line."""
    from scipy import sparse

    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    vocab = len(tokenizer)
    backend = tokenizer.backend_tokenizer
    total = sparse.csr_matrix((vocab, vocab), dtype=np.float64)
    it = iter(lines)
    while batch := list(itertools.islice(it, _CHUNK)):
        encs = backend.encode_batch(batch, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
        if not lengths.sum():
            continue
        flat = np.fromiter(itertools.chain.from_iterable(e.ids for e in encs), dtype=np.int64, count=lengths.sum())
        line = np.repeat(np.arange(len(encs)), lengths)
        rows, cols, weights = [], [], []
        for k in range(1, window + 1):
            same = line[:-k] == line[k:]
            a, b = flat[:-k][same], flat[k:][same]
            rows += [a, b]
            cols += [b, a]
            weights.append(np.full(2 * len(a), 1.0 / k))
        total = total + sparse.coo_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                                          shape=(vocab, vocab)).tocsr()
    return total


def ppmi(counts, alpha: float = 0.75):
    """Positive pointwise mutual information of a co-occurrence matrix, context counts raised to ``alpha``."""
    from scipy import sparse

    counts = sparse.csr_matrix(counts, dtype=np.float64)
    counts.eliminate_zeros()
    row = np.asarray(counts.sum(axis=1)).ravel()
    col = np.asarray(counts.sum(axis=0)).ravel() ** alpha
    col_total = col.sum()
    r = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    # log p(w,c) / (p(w) p_alpha(c)): the corpus total cancels, leaving n(w,c) * sum(col) / (row(w) col(c))
    pmi = np.log(counts.data * col_total / (row[r] * col[counts.indices]))
    keep = pmi > 0
    return sparse.csr_matrix((pmi[keep], (r[keep], counts.indices[keep])), shape=counts.shape)


def word_vectors(lines: Iterable[str], tokenizer: Any, dim: int, window: int = 5, alpha: float = 0.75,
                 seed: int = 0, std: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors, seen)``: a ``len(tokenizer) x dim`` float32 table and a mask of the tokens the corpus has.

    The vectors are centred and scaled to standard deviation ``std`` (BERT's ``initializer_range``),
    so that they enter the embedding sum at the scale the position embeddings were built for. Rows of
    tokens the corpus never shows are zero; keep their random initialisation (see ``seen``).
    """
    from sklearn.utils.extmath import randomized_svd

    matrix = ppmi(cooccurrence(lines, tokenizer, window), alpha)
    seen = np.asarray(matrix.getnnz(axis=1) > 0)
    k = min(dim, min(matrix.shape) - 1)
    u, s, _ = randomized_svd(matrix, n_components=k, n_iter=5, random_state=seed)
    vectors = np.zeros((matrix.shape[0], dim), dtype=np.float64)
    vectors[:, :k] = u * np.sqrt(s)
    used = vectors[seen]
    used -= used.mean(axis=0)
    used *= std / max(used.std(), 1e-12)
    vectors[seen] = used
    vectors[~seen] = 0.0
    return vectors.astype(np.float32), seen
