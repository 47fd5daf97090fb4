"""BM25 over token ids: the eager score matrix of ``bm25s``, built vectorised, stored memory-mappable.

The matrix is the one ``bm25s`` builds (Lucene BM25: ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``,
``tf / (tf + k1 (1 - b + b dl / avgdl))``; k1 1.2 and b 0.75 here): one precomputed weight per
(document, token) pair, stored by token (CSC), so that a query's score for every document is a sum of
a few columns. ``tests/test_lexical.py`` checks that the scores equal ``bm25s``'s on the same tokens.
What differs is how it is made and read (measured in ``docs/search.md``):

- built in a few vectorised passes from the token ids of all documents (``bm25s`` counts tokens with
  a Python loop per document, which is too slow to redo at every commit of an index);
- written as one safetensors file (a standard, memory-mappable format) per index generation, next to
  the FAISS file, and read back with ``np.memmap``: a search touches only the columns of its tokens;
- queried a batch at a time as one sparse product (queries x tokens) @ (tokens x documents), which
  beats ``bm25s``'s per-query ``np.add.at`` loop.

Rows of the matrix are positions 0..N-1 of the documents in row-id order; ``row_ids`` maps them back.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# k1 1.2 (Lucene's and FTS5's default) measured above bm25s's 1.5 on KorQuAD dev's tuning half, every analyser.
K1 = 1.2
B = 0.75
# Queries are scored in chunks whose summed posting lists stay under this many entries, which bounds the
# memory of the sparse product (12 bytes an entry) whatever the batch size.
CHUNK_POSTINGS = 4_000_000
_DTYPES = {"F32": np.float32, "I32": np.int32, "I64": np.int64}


def _index_dtype(n: int) -> type:
    # scipy wants one dtype for indices and indptr; int32 halves the file while it can hold every offset.
    return np.int32 if n < 2**31 - 1 else np.int64


@dataclass
class BM25Matrix:
    """Eager BM25 weights, token-major: column ``t`` lists the documents holding token ``t`` and their weights."""

    data: np.ndarray  # float32 weight per (token, document) pair, grouped by token
    indices: np.ndarray  # document position of each pair, ascending within a token
    indptr: np.ndarray  # token t's pairs are [indptr[t], indptr[t + 1])
    row_ids: np.ndarray  # int64, ascending: the store row id of each document position
    k1: float = K1
    b: float = B

    @property
    def n_docs(self) -> int:
        return len(self.row_ids)

    @property
    def n_tokens(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    # -- building ---------------------------------------------------------------------------------------
    @classmethod
    def build(cls, row_ids: np.ndarray, lengths: np.ndarray, token_ids: np.ndarray, n_tokens: int,
              k1: float = K1, b: float = B) -> BM25Matrix:
        """From every document's token ids: ``token_ids`` is all documents' ids end to end, ``lengths[i]`` how many
        belong to document ``i`` (whose row id is ``row_ids[i]``, ascending). ``n_tokens``: the vocabulary size."""
        import scipy.sparse as sp

        row_ids = np.asarray(row_ids, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        n = len(row_ids)
        if n and np.any(np.diff(row_ids) <= 0):
            raise ValueError("row ids must be strictly ascending")
        # 32-bit indices and float32 arithmetic where they suffice: the build's memory is a few times the
        # number of postings, so every byte per posting counts (docs/search.md, memory for 1M documents).
        itype = _index_dtype(max(len(token_ids), n, n_tokens))
        docs = np.repeat(np.arange(n, dtype=itype), lengths)
        # (document, token) -> term frequency; converting to CSC sums repeated pairs.
        tf = sp.coo_matrix((np.ones(len(token_ids), dtype=np.float32), (docs, np.asarray(token_ids, dtype=itype))),
                           shape=(n, n_tokens)).tocsc()
        del docs
        tf.sum_duplicates()
        tf.sort_indices()
        counts = np.diff(tf.indptr)
        df = counts.astype(np.float64)
        idf = _idf(n, df).astype(np.float32)
        avg = lengths.mean() if n else 1.0
        norm = (k1 * (1.0 - b + b * lengths / (avg if avg > 0 else 1.0))).astype(np.float32)
        weight = tf.data / (tf.data + norm[tf.indices])
        weight *= np.repeat(idf, counts)
        return cls(weight, tf.indices.astype(itype, copy=False), tf.indptr.astype(itype, copy=False), row_ids,
                   k1, b)

    # -- file -------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write a safetensors file (``path`` should be a temporary name that the caller renames)."""
        from safetensors.numpy import save_file

        save_file({"data": self.data, "indices": self.indices, "indptr": self.indptr, "row_ids": self.row_ids},
                  str(path), metadata={"format": "koembed-bm25", "k1": repr(self.k1), "b": repr(self.b)})

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> BM25Matrix:
        """Read a file written by :meth:`save`; with ``mmap`` the arrays stay on disk until touched."""
        path = Path(path)
        with path.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        meta = header.pop("__metadata__", {})
        if meta.get("format") != "koembed-bm25" or set(header) != {"data", "indices", "indptr", "row_ids"}:
            raise ValueError(f"{path}: not a koembed BM25 file")
        arrays = {}
        for name, t in header.items():
            dtype, (start, end) = np.dtype(_DTYPES[t["dtype"]]), t["data_offsets"]
            count = (end - start) // dtype.itemsize
            if mmap and count:
                arrays[name] = np.memmap(path, dtype=dtype, mode="r", offset=8 + size + start, shape=(count,))
            else:
                with path.open("rb") as fh:
                    fh.seek(8 + size + start)
                    arrays[name] = np.frombuffer(fh.read(end - start), dtype=dtype)
        return cls(arrays["data"], arrays["indices"], arrays["indptr"], arrays["row_ids"], float(meta["k1"]),
                   float(meta["b"]))

    # -- search -----------------------------------------------------------------------------------------
    def _one(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(document positions, scores) of one query, with the sparse product's arithmetic but in numpy.

        As scipy computes ``q @ mat``: the query's distinct tokens in ascending order, each column's weights
        times the token's count, added into each document's float32 sum in token order.
        """
        q = np.sort(np.asarray(query, dtype=np.int64))
        if not len(q):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        sums = np.zeros(self.n_docs, dtype=np.float32)
        touched = np.zeros(self.n_docs, dtype=bool)
        indptr = np.asarray(self.indptr)
        for i in np.flatnonzero(np.append(q[1:] != q[:-1], True)):  # the last of each run of a token
            t, count = q[i], np.float32(i + 1 - np.searchsorted(q, q[i]))
            docs = np.asarray(self.indices[indptr[t] : indptr[t + 1]])
            sums[docs] += np.asarray(self.data[indptr[t] : indptr[t + 1]]) * count  # a column's documents differ
            touched[docs] = True
        docs = np.flatnonzero(touched)
        return docs, sums[docs]

    def idf(self, tokens: np.ndarray) -> np.ndarray:
        """The idf of each token id (the matrix's own formula, from each column's document count)."""
        indptr = np.asarray(self.indptr)
        t = np.asarray(tokens, dtype=np.int64)
        return _idf(self.n_docs, (indptr[t + 1] - indptr[t]).astype(np.float64))

    def unseen_idf(self) -> float:
        """The idf a token no document holds would have (a query token that is not in the vocabulary)."""
        return float(_idf(self.n_docs, np.zeros(1))[0])

    def coverage(self, query: np.ndarray, unseen: int, position: int) -> float:
        """The share of a query's idf mass that the document at ``position`` holds, in [0, 1].

        ``query``: its known token ids (repeats count, as in scoring); ``unseen``: how many of its tokens the
        vocabulary lacks (each at :meth:`unseen_idf`: a query word no document has is a part of the query that
        lexical search cannot match). 0 for a query with no tokens.
        """
        q = np.asarray(query, dtype=np.int64)
        weights = self.idf(q)
        total = float(weights.sum()) + unseen * self.unseen_idf()
        if total <= 0:
            return 0.0
        indptr = np.asarray(self.indptr)
        held = np.zeros(len(q), dtype=bool)
        for i, t in enumerate(q):
            docs = self.indices[indptr[t] : indptr[t + 1]]  # ascending within a token
            at = int(np.searchsorted(docs, position))
            held[i] = at < len(docs) and int(docs[at]) == position
        return float(weights[held].sum()) / total

    def _matrix(self):
        import scipy.sparse as sp

        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=(self.n_tokens, self.n_docs), copy=False)

    def positions(self, row_ids: np.ndarray) -> np.ndarray:
        """Document positions of ``row_ids``; -1 for a row id that is not in the matrix."""
        return _find(np.asarray(self.row_ids), np.asarray(row_ids, dtype=np.int64))

    def search(self, queries: Sequence[np.ndarray], k: int, allowed: np.ndarray | None = None,
               score_rows: Sequence[np.ndarray] | None = None,
               ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray] | None]:
        """Top ``k`` documents for each query (an array of token ids, repeats counting twice, as in bm25s).

        ``allowed``: a boolean mask over document positions (filters); others are never returned.
        ``score_rows[i]``: row ids whose scores query ``i`` also wants (0 where they share no token).
        Returns ``(row_ids, scores, extra_scores)`` per query, best first; ties go to the lower row id.
        Documents sharing no token with a query are not returned, so a list can be shorter than ``k``.
        """
        out_rows: list[np.ndarray] = [np.zeros(0, np.int64)] * len(queries)
        out_scores: list[np.ndarray] = [np.zeros(0, np.float32)] * len(queries)
        extra: list[np.ndarray] | None = None
        if score_rows is not None:
            extra = [np.zeros(len(r), np.float32) for r in score_rows]
        if not len(queries) or self.n_docs == 0 or k <= 0:
            return out_rows, out_scores, extra
        mat = None
        indptr = np.asarray(self.indptr)
        buf = np.zeros(self.n_docs, np.float32) if score_rows is not None else None
        postings = [int((indptr[q + 1] - indptr[q]).sum()) if len(q) else 0 for q in queries]
        start = 0
        while start < len(queries):
            end, total = start + 1, postings[start]
            while end < len(queries) and total + postings[end] <= CHUNK_POSTINGS:
                total += postings[end]
                end += 1
            chunk = queries[start:end]
            if len(chunk) == 1:  # one query (a command line search): importing scipy would cost more than it
                results = [self._one(chunk[0])]
            else:
                import scipy.sparse as sp

                mat = self._matrix() if mat is None else mat
                lens = [len(q) for q in chunk]
                rows = np.repeat(np.arange(len(chunk)), lens)
                cols = np.concatenate(chunk).astype(np.int64) if sum(lens) else np.zeros(0, np.int64)
                q = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(len(chunk), self.n_tokens))
                res = (q @ mat).tocsr()
                results = [(res.indices[res.indptr[i] : res.indptr[i + 1]], res.data[res.indptr[i] : res.indptr[i + 1]])
                           for i in range(len(chunk))]
            for i, (docs, scores) in enumerate(results):
                if allowed is not None:
                    keep = allowed[docs]
                    docs, scores = docs[keep], scores[keep]
                qi = start + i
                if extra is not None and len(score_rows[qi]):  # via a dense buffer: O(documents touched)
                    pos = self.positions(score_rows[qi])
                    buf[docs] = scores
                    extra[qi][pos >= 0] = buf[pos[pos >= 0]]
                    buf[docs] = 0
                if not len(docs):
                    continue
                top = _top_k(docs, scores, k)
                out_rows[qi] = np.asarray(self.row_ids[docs[top]], dtype=np.int64)
                out_scores[qi] = scores[top]
            start = end
        return out_rows, out_scores, extra

def _idf(n: int, df: np.ndarray) -> np.ndarray:
    """Lucene's BM25 idf, as :meth:`BM25Matrix.build` weights with it."""
    return np.log1p((n - df + 0.5) / (df + 0.5))


def _find(sorted_values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of each ``wanted`` value in ``sorted_values`` (ascending, distinct), -1 where absent."""
    if not len(sorted_values):
        return np.full(len(wanted), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_values, wanted), len(sorted_values) - 1)
    return np.where(sorted_values[at] == wanted, at, -1)


def _top_k(docs: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best scores, best first, ties to the lower document position (= row id)."""
    if len(scores) > k:
        # Everything strictly above the k-th best score, plus enough of the ties at it (lowest positions).
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        cand = np.flatnonzero(scores >= kth)
    else:
        cand = np.arange(len(scores))
    order = np.lexsort((docs[cand], -scores[cand]))
    return cand[order[:k]]
