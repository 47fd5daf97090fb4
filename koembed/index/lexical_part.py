"""The lexical part of an index: what the manifest records, the tokens in the store, the BM25 file.

An index with a lexical part has, in its manifest, ``"lexical": {"analyser", "k1", "b", "file",
"documents", "vocabulary", "postings"}``; in its SQLite store the tables of :mod:`koembed.index.lexical_tables`;
and beside the FAISS file a ``lexical.{generation}.safetensors`` BM25 matrix (:mod:`koembed.lexical.bm25`).

It follows the index's commit protocol (koembed/index/core.py): a document's tokens are inserted and
deleted in the same SQLite transaction as the document row, and the BM25 file is written, like the
FAISS file, before the transaction that names it (with its checksum) commits. So after a crash at any
point the two parts hold the same documents: either both of generation g or both of g+1. The file is
rewritten only in commits that changed documents; it is derived from the tables, so it can always be
rebuilt from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from koembed.atomic import atomic_path
from koembed.errors import IndexRefusedError
from koembed.index.layout import lexical_file_name
from koembed.index.lexical_tables import delete, encode_queries, insert, load_vocab, lookup, read_all, vocab_size
from koembed.index.manifest import LexicalInfo
from koembed.lexical.analysers import DEFAULT_ANALYSER, Analyser, get_analyser
from koembed.lexical.bm25 import K1, B, BM25Matrix

# Documents tokenised and inserted at a time when a lexical part is added to an existing index.
ADD_BATCH = 20_000
# Characters of one document the analyser reads (the default of Elasticsearch's max_analyzed_offset).
# Tokenising a 50 MB one-line "document" whole took 117 s and 4.4 GB; longer texts are cut here and
# counted (LexicalPart.add returns how many). The stored text and its vector are not affected.
MAX_CHARS = 1_000_000


def new_info(analyser: str = DEFAULT_ANALYSER) -> LexicalInfo:
    """The manifest entry of a lexical part that holds nothing yet (the analyser name is checked here)."""
    get_analyser(analyser)
    return LexicalInfo(analyser=analyser, k1=K1, b=B, file=None, documents=0, vocabulary=0, postings=0)


class LexicalPart:
    """An index's lexical part as of one generation, plus the uncommitted changes of a writer."""

    def __init__(self, info: LexicalInfo, matrix: BM25Matrix | None) -> None:
        self.info = dict(info)
        self._matrix = matrix
        self.dirty = matrix is None  # a part without a file yet must write one at the next commit
        # A writer's token -> id map, loaded at its first insert and grown with it. An aborted transaction
        # replaces this object (Index._abort reloads the part), so the map never outlives a rollback.
        self._vocab: dict[str, int] | None = None

    @classmethod
    def load(cls, directory: Path, info: LexicalInfo) -> LexicalPart:
        """The part the manifest entry ``info`` describes (its file memory-mapped; checksums are the caller's)."""
        name = info.get("file")
        if not name:
            return cls(info, None)
        path = directory / name
        try:
            matrix = BM25Matrix.load(path)
        except FileNotFoundError:
            raise
        except (ValueError, KeyError, OSError) as exc:
            raise IndexRefusedError(f"{path}: unreadable lexical index ({exc}); rebuild the index") from None
        if matrix.n_docs != info.get("documents"):
            raise IndexRefusedError(f"{path}: holds {matrix.n_docs} documents, the manifest says "
                                    f"{info.get('documents')}; rebuild the index")
        return cls(info, matrix)

    @property
    def analyser(self) -> Analyser:
        return get_analyser(self.info["analyser"])

    def check_analyser(self, requested: str | None, where: object) -> None:
        """Refuse a write or query asking for another analyser than the one the index was built with."""
        if requested is not None and requested != self.info["analyser"]:
            raise IndexRefusedError(f"{where}: the index's lexical part uses the analyser {self.info['analyser']!r}, "
                                    f"not {requested!r}; use {self.info['analyser']!r} (tokens of different "
                                    "analysers do not match) or build a new index")

    # -- writes (inside the caller's SQLite transaction) ------------------------------------------------
    def add(self, conn: Any, row_ids: Sequence[int], texts: Sequence[str]) -> int:
        """Tokenise and store documents; returns how many were cut to :data:`MAX_CHARS` characters."""
        if self._vocab is None:
            self._vocab = load_vocab(conn)
        cut = sum(len(t) > MAX_CHARS for t in texts)
        if cut:
            texts = [t[:MAX_CHARS] for t in texts]
        insert(conn, zip((int(r) for r in row_ids), self.analyser.many(texts), strict=True), self._vocab)
        self.dirty = True
        return cut

    def remove(self, conn: Any, row_ids: Sequence[int]) -> None:
        delete(conn, row_ids)
        self.dirty = True

    def matrix(self, conn: Any) -> BM25Matrix:
        """The matrix searches use: the committed file's, or rebuilt in memory while changes are uncommitted."""
        if self._matrix is None or self.dirty:
            row_ids, lengths, ids = read_all(conn)
            self._matrix = BM25Matrix.build(row_ids, lengths, ids, vocab_size(conn),
                                            k1=float(self.info["k1"]), b=float(self.info["b"]))
        return self._matrix

    def write(self, conn: Any, directory: Path, generation: int) -> str:
        """Write this generation's BM25 file (atomically) from the tables; returns its name. Before the commit point."""
        matrix = self.matrix(conn)
        name = lexical_file_name(generation)
        with atomic_path(directory / name) as tmp:
            matrix.save(tmp)
        self.info.update(file=name, documents=matrix.n_docs, vocabulary=matrix.n_tokens, postings=matrix.nnz)
        return name

    def committed(self) -> None:
        self.dirty = False

    # -- search -------------------------------------------------------------------------------------------
    def search(self, conn: Any, texts: Sequence[str], k: int, allowed_row_ids: np.ndarray | None = None,
               score_rows: Sequence[np.ndarray] | None = None):
        """BM25 top ``k`` of each text: ``(row_ids, scores, extra_scores)`` as :meth:`BM25Matrix.search`."""
        matrix = self.matrix(conn)
        allowed = None if allowed_row_ids is None else np.isin(matrix.row_ids, allowed_row_ids)
        queries = encode_queries(conn, self.analyser.many(texts))
        if any(len(q) and int(q.max()) >= matrix.n_tokens for q in queries):  # the vocabulary table was edited
            raise IndexRefusedError(f"{conn.path}: the lexical vocabulary holds token ids the BM25 file does not "
                                    "know; the store was changed outside koembed, the index is corrupt, rebuild it")
        return matrix.search(queries, k, allowed=allowed, score_rows=score_rows)


    def coverage(self, conn: Any, texts: Sequence[str], row_ids: Sequence[int]) -> np.ndarray:
        """For each text, the share of its idf mass that document ``row_ids[i]`` holds (:meth:`BM25Matrix.coverage`);
        0 where the row id is -1 or not in the matrix."""
        matrix = self.matrix(conn)
        analysed = self.analyser.many(texts)
        ids = lookup(conn, (t for q in analysed for t in q))
        positions = matrix.positions(np.asarray(row_ids, dtype=np.int64))
        out = np.zeros(len(texts))
        for i, (tokens, pos) in enumerate(zip(analysed, positions, strict=True)):
            if pos >= 0:
                known = np.array([ids[t] for t in tokens if t in ids], dtype=np.int64)
                out[i] = matrix.coverage(known, len(tokens) - len(known), int(pos))
        return out


class Filled(NamedTuple):
    """What :func:`fill_from_store` did: documents tokenised, and how many of them were cut to MAX_CHARS."""

    documents: int
    cut: int


def fill_from_store(conn: Any, part: LexicalPart, progress: Any = None, batch: int = ADD_BATCH) -> Filled:
    """Tokenise every stored document into ``part`` (in the caller's transaction), ``batch`` at a time."""
    done, cut, last = 0, 0, -1
    while True:
        rows = conn.execute("SELECT row_id, text FROM docs WHERE row_id > ? ORDER BY row_id LIMIT ?",
                            (last, batch)).fetchall()
        if not rows:
            return Filled(done, cut)
        cut += part.add(conn, [r for r, _ in rows], [t for _, t in rows])
        done, last = done + len(rows), rows[-1][0]
        if progress is not None:
            progress(len(rows))
