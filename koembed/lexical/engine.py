"""A BM25 search engine over texts in memory: analyser -> vocabulary -> :class:`~koembed.lexical.bm25.BM25Matrix`.

The lexical engine without an index around it (as ``bm25s`` is): evaluation and scripts that only rank
texts lexically build one of these instead of an index. An index keeps the same pieces on disk
(:mod:`koembed.index.lexical_part`): the tokens in its SQLite store, the matrix in a file per generation.
Both score with the same :class:`BM25Matrix`, so their scores are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from koembed.lexical.analysers import DEFAULT_ANALYSER, Analyser, get_analyser
from koembed.lexical.bm25 import K1, B, BM25Matrix


@dataclass
class BM25:
    """Texts ``0..n-1`` tokenised by ``analyser`` and scored by BM25; :meth:`search` returns their positions."""

    analyser: Analyser
    vocab: dict[str, int]
    matrix: BM25Matrix

    @classmethod
    def from_texts(cls, texts: Sequence[str], analyser: str = DEFAULT_ANALYSER, k1: float = K1,
                   b: float = B) -> BM25:
        tokenise = get_analyser(analyser)
        vocab: dict[str, int] = {}
        ids: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        for i, tokens in enumerate(tokenise.many(texts)):
            lengths[i] = len(tokens)
            ids.extend(vocab.setdefault(t, len(vocab)) for t in tokens)
        matrix = BM25Matrix.build(np.arange(len(texts), dtype=np.int64), lengths, np.asarray(ids, dtype=np.int64),
                                  len(vocab), k1=k1, b=b)
        return cls(tokenise, vocab, matrix)

    def search(self, queries: Sequence[str], k: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per query, the positions of its top ``k`` texts and their scores, best first (ties: lower position).

        Texts that share no token with a query are not returned, so a list can be shorter than ``k``.
        """
        get = self.vocab.get
        tokenised = [np.array([i for t in q if (i := get(t)) is not None], dtype=np.int64)
                     for q in self.analyser.many(queries)]
        rows, scores, _ = self.matrix.search(tokenised, k)
        return rows, scores
