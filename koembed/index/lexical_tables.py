"""The lexical part's rows in an index's SQLite store: each document's token ids, and the vocabulary.

They live in the same database as the documents, so the transaction that commits a document also
commits its tokens: the dense and lexical parts cannot disagree about which documents exist. The
BM25 matrix a search reads (:mod:`koembed.lexical.bm25`) is derived from these rows at every commit,
the way the FAISS file is written from the vectors.

``lex_vocab(token TEXT PRIMARY KEY, id)``: token ids only grow (a token whose documents are all gone
keeps its id; it costs one empty column). ``lex_docs(row_id INTEGER PRIMARY KEY, tokens BLOB)``: the
document's token ids in text order as little-endian int32, repeats kept (they are the term
frequencies). A document with no tokens (punctuation only) has an empty blob: it still counts as a
document for BM25's statistics, as it would in ``bm25s``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS lex_vocab (token TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lex_docs (row_id INTEGER PRIMARY KEY, tokens BLOB NOT NULL);
"""
_TOKEN_DTYPE = np.dtype("<i4")


def create_tables(conn: sqlite3.Connection) -> None:
    # executescript would COMMIT an open transaction; these statements run inside the caller's.
    for stmt in SCHEMA.strip().split(";"):
        if stmt.strip():
            conn.execute(stmt)


def has_tables(conn: sqlite3.Connection) -> bool:
    q = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('lex_vocab', 'lex_docs')"
    return conn.execute(q).fetchone()[0] == 2


def vocab_size(conn: sqlite3.Connection) -> int:
    """One more than the largest token id (ids start at 0)."""
    row = conn.execute("SELECT max(id) FROM lex_vocab").fetchone()
    return 0 if row[0] is None else int(row[0]) + 1


def lookup(conn: sqlite3.Connection, tokens: Iterable[str]) -> dict[str, int]:
    """``token -> id`` for the tokens the vocabulary knows."""
    wanted = json.dumps(list(dict.fromkeys(tokens)), ensure_ascii=False)
    q = "SELECT v.token, v.id FROM json_each(?) AS j JOIN lex_vocab AS v ON v.token = j.value"
    return dict(conn.execute(q, (wanted,)).fetchall())


def encode_queries(conn: sqlite3.Connection, queries: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """Token ids of each tokenised query (unknown tokens dropped: no document holds them)."""
    ids = lookup(conn, (t for q in queries for t in q))
    return [np.array([ids[t] for t in q if t in ids], dtype=np.int64) for q in queries]


def load_vocab(conn: sqlite3.Connection) -> dict[str, int]:
    """The whole vocabulary, ``token -> id``: a writer keeps it to map tokens without a query per batch."""
    return dict(conn.execute("SELECT token, id FROM lex_vocab"))


def insert(conn: sqlite3.Connection, rows: Iterable[tuple[int, Sequence[str]]],
           vocab: dict[str, int] | None = None) -> None:
    """Store the tokens of documents ``(row_id, tokens)``, adding unseen tokens to the vocabulary.

    Call inside the transaction that inserts the documents themselves. ``vocab`` (from :func:`load_vocab`,
    kept by the caller for this transaction) gains the new tokens; without it the known ones are looked up.
    """
    rows = list(rows)
    if vocab is None:
        vocab = lookup(conn, (t for _, toks in rows for t in toks))
    next_id = vocab_size(conn)
    new = []
    for _, toks in rows:
        for t in toks:
            if t not in vocab:
                vocab[t] = next_id
                new.append((t, next_id))
                next_id += 1
    new.sort()  # key order: cheaper B-tree inserts
    conn.executemany("INSERT INTO lex_vocab (token, id) VALUES (?, ?)", new)
    flat = np.fromiter((vocab[t] for _, toks in rows for t in toks), dtype=_TOKEN_DTYPE,
                       count=sum(len(toks) for _, toks in rows))
    ends = np.cumsum([len(toks) for _, toks in rows]).tolist()
    conn.executemany("INSERT OR REPLACE INTO lex_docs (row_id, tokens) VALUES (?, ?)",
                     ((int(r), flat[e - len(toks):e].tobytes()) for (r, toks), e in zip(rows, ends, strict=True)))


def delete(conn: sqlite3.Connection, row_ids: Iterable[int]) -> None:
    conn.executemany("DELETE FROM lex_docs WHERE row_id = ?", ((int(r),) for r in row_ids))


def count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM lex_docs").fetchone()[0]


def read_all(conn: sqlite3.Connection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row_ids ascending, token counts, all token ids end to end)``: the input of ``BM25Matrix.build``."""
    row_ids, lengths, blobs = [], [], []
    for row_id, blob in conn.execute("SELECT row_id, tokens FROM lex_docs ORDER BY row_id"):
        row_ids.append(row_id)
        lengths.append(len(blob) // _TOKEN_DTYPE.itemsize)
        blobs.append(blob)
    tokens = np.frombuffer(b"".join(blobs), dtype=_TOKEN_DTYPE)
    return np.array(row_ids, dtype=np.int64), np.array(lengths, dtype=np.int64), tokens
