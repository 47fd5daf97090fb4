"""The document store of an index: a SQLite file mapping external string ids to FAISS int64 row ids.

Each document row holds the row id (the id its vector has in FAISS), the user's string id, the text
and the metadata as a JSON object. A ``state`` table holds the index manifest as of the last commit,
so that one SQLite transaction commits the documents and the description of the FAISS file they go
with: SQLite is the commit point of an index (see :mod:`koembed.index.core`).

The database is in WAL mode (``synchronous=FULL``: a commit is durable when COMMIT returns). Readers
never block the writer, and a reader's transaction is a snapshot: :meth:`DocStore.snapshot` starts one,
and every read until the next ``snapshot()`` (or ``close()``) sees the same commit, the manifest in the
``state`` table included, whatever the writer commits meanwhile. A read-only store refuses every SQL
write (see :func:`_connect_readonly`); in a folder it may not write, with no WAL content pending, it
opens ``immutable``, which is right unless another user who may write there changes the index meanwhile.

Row ids are never reused: ``next_row_id`` only grows, so a stale vector can never be mistaken for a
newer document. Tombstones record row ids removed from the store whose vectors are still in a FAISS
index that cannot delete (HNSW); search skips them and ``compact`` drops them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from koembed.errors import IndexRefusedError, InputError
from koembed.index.failures import refused_store
from koembed.index.manifest import Manifest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    row_id INTEGER PRIMARY KEY,
    ext_id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tombstones (row_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Readers and the writer wait this long for a lock (WAL recovery, the writer lock) before giving up.
BUSY_TIMEOUT_MS = 10_000
# The document fields a search may read besides the id (see DocStore.fetch).
DOC_FIELDS = ("text", "metadata")
# SQLite's limit on bound parameters is 32766 in modern builds; stay well below it.
_BATCH = 900


def distinct_sorted(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` for a 1-D array, without it: its first call imports numpy.ma (25 ms a process)."""
    values = np.sort(np.ravel(values))
    first = np.ones(len(values), dtype=bool)
    first[1:] = values[1:] != values[:-1]
    return values[first]


def metadata_json(metadata: dict[str, Any] | None) -> str:
    """Canonical JSON for metadata (sorted keys, UTF-8 kept), so equal metadata compares equal as text."""
    return json.dumps(metadata or {}, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {type(value).__name__}")
    return value


def _json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


# The tables every store has (the lexical part adds its own, koembed.index.lexical_tables).
TABLES = ("docs", "tombstones", "state")


class DocStore:
    """A SQLite document store; writes happen inside :meth:`begin` ... :meth:`commit`.

    ``create``: a new store (its tables are made). Otherwise the file must already be a store: one that
    is empty or lacks a table is refused before anything is written to it, by readers and writers alike
    (a writer recreating a dropped ``docs`` table would make a damaged index look empty but healthy).
    """

    def __init__(self, path: str | Path, readonly: bool = False, *, create: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.conn: sqlite3.Connection | None = None
        try:
            if not create:
                _require_store_file(self.path)
            if readonly:
                self.conn = _connect_readonly(self.path)
            else:
                self.conn = sqlite3.connect(str(self.path), isolation_level=None, factory=_Connection)
                self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if not create:
                self.require_tables(TABLES)  # a read: nothing is written into a file about to be refused
            if not readonly:
                if self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                    raise sqlite3.OperationalError("cannot switch to WAL mode")
                self.conn.execute("PRAGMA synchronous=FULL")
                if create:
                    self.conn.executescript(_SCHEMA)
            self.conn.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages: search fetches are random reads
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except (sqlite3.Error, IndexRefusedError) as exc:
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    self.conn.close()
            if isinstance(exc, IndexRefusedError):
                raise
            raise refused_store(self.path, exc) from None
        self.conn.path = self.path

    def require_tables(self, names: Iterable[str]) -> None:
        """Refuse the store when any of the tables ``names`` is missing (dropped, or never made)."""
        present = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [n for n in names if n not in present]
        if missing:
            raise IndexRefusedError(f"{self.path}: not a readable document store (no table {', '.join(missing)}); "
                                    "the index is corrupt, rebuild it")

    def check_against(self, manifest: Manifest, *, full: bool) -> None:
        """Refuse a store that does not hold what the committed ``manifest`` says it does.

        Always (a cheap probe): the lexical part's tables exist when the manifest has one, and a table the
        manifest counts rows in is empty exactly when that count is 0 (a table emptied by hand). ``full``
        (writers, before they change anything): the row counts themselves, so that no commit turns a
        damaged store into a manifest that agrees with it.
        """
        lexical = manifest.lexical
        if lexical is not None:
            self.require_tables(("lex_vocab", "lex_docs"))
        counts = [("docs", manifest.count), ("tombstones", manifest.tombstones)]
        if lexical is not None and lexical.get("file"):
            counts += [("lex_docs", int(lexical.get("documents") or 0)),
                       ("lex_vocab", int(lexical.get("vocabulary") or 0))]
        top = self.conn.execute("SELECT max(row_id) FROM docs").fetchone()[0]  # one B-tree probe
        if top is not None and not (isinstance(top, int) and top < manifest.next_row_id):
            raise IndexRefusedError(f"{self.path}: table docs holds row id {top}, but the committed manifest has given "
                                    f"out row ids below {manifest.next_row_id} only; the store was changed outside "
                                    "koembed, the index is corrupt, rebuild it")
        for table, expected in counts:
            if full:
                found = self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                wrong = found != expected
            else:
                found = "some" if self.conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0] else 0
                wrong = (found == 0) != (expected == 0)
            if wrong:
                raise IndexRefusedError(f"{self.path}: table {table} holds {found} rows, the committed manifest says "
                                        f"{expected}; the store was changed outside koembed, the index is corrupt, "
                                        "rebuild it")

    def close(self) -> None:
        self.conn.close()

    # -- transactions -------------------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        # SQLite's own flag: after "database or disk is full" it may have rolled back by itself.
        return self.conn.in_transaction

    def snapshot(self) -> None:
        """Start a read transaction (ending any before it): reads see one commit until the next call."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK" if not self.readonly else "COMMIT")
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT 1 FROM state LIMIT 1").fetchall()  # WAL takes the snapshot at the first read

    def begin(self) -> None:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    # -- state ---------------------------------------------------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_state(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def committed_manifest(self) -> Manifest:
        """The manifest as of the last commit (the store is the commit point of an index)."""
        try:
            data = self.get_state("manifest")
        except (sqlite3.Error, ValueError) as exc:  # no state table (an empty file), undecodable JSON
            raise refused_store(self.path, exc) from None
        if not isinstance(data, dict):
            raise IndexRefusedError(f"{self.path}: holds no committed manifest; the index is corrupt, rebuild it")
        return Manifest.from_dict(data, self.path)

    # -- documents -----------------------------------------------------------------------------------
    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM docs").fetchone()[0]

    def lookup(self, ext_ids: Iterable[str]) -> dict[str, tuple[int, str, str]]:
        """``ext_id -> (row_id, text, metadata_json)`` for the ids that exist."""
        out: dict[str, tuple[int, str, str]] = {}
        ids = list(dict.fromkeys(ext_ids))
        for s in range(0, len(ids), _BATCH):
            part = ids[s : s + _BATCH]
            q = f"SELECT ext_id, row_id, text, metadata FROM docs WHERE ext_id IN ({','.join('?' * len(part))})"
            for ext_id, row_id, text, meta in self.conn.execute(q, part):
                out[ext_id] = (row_id, text, meta)
        return out

    def fetch(self, row_ids: Iterable[int] | np.ndarray,
              fields: Collection[str] = DOC_FIELDS) -> dict[int, tuple[str, str, Any]]:
        """``row_id -> (ext_id, text, metadata)`` for the row ids that exist, reading only the ``fields`` asked for.

        ``fields`` names which of ``text`` and ``metadata`` to read; the others come back empty (``""``,
        ``{}``): most of a fetch's time is turning the text column into Python strings.
        """
        unknown = set(fields) - set(DOC_FIELDS)
        if unknown:
            raise InputError(f"unknown document field(s) {sorted(unknown)}; choose from {list(DOC_FIELDS)}")
        # One statement joining a JSON array of ids: the fastest of the batched forms measured (hits of a
        # batch search are spread over the whole table, so this is one B-tree probe per hit).
        if isinstance(row_ids, np.ndarray):  # a search's result ids, -1 for none: unique and sorted in C
            ids = json.dumps(distinct_sorted(row_ids[row_ids >= 0]).tolist())
        else:
            ids = json.dumps(sorted({int(r) for r in row_ids}))
        text, meta = "text" in fields, "metadata" in fields
        cols = ", ".join(["d.row_id", "d.ext_id"] + ["d.text"] * text + ["d.metadata"] * meta)
        rows = self.conn.execute(f"SELECT {cols} FROM json_each(?) AS j JOIN docs AS d ON d.row_id = j.value",
                                 (ids,)).fetchall()
        # Columns SQLite would let a hand edit turn into a blob or a number: refused, not passed on to crash later.
        if not all(type(v) is str for row in rows for v in row[1:]):
            raise self._damaged_row(next(row[0] for row in rows if not all(type(v) is str for v in row[1:])),
                                    "a field that is not text")
        try:
            if text and meta:
                return {r: (e, t, {} if m == "{}" else _object(m)) for r, e, t, m in rows}
            if text:
                return {r: (e, t, {}) for r, e, t in rows}
            if meta:
                return {r: (e, "", {} if m == "{}" else _object(m)) for r, e, m in rows}
            return {r: (e, "", {}) for r, e in rows}
        except ValueError as exc:
            raise self._damaged_row(None, f"metadata that is not a JSON object ({exc})") from None

    def _damaged_row(self, row_id: int | None, what: str) -> IndexRefusedError:
        which = f"document row {row_id}" if row_id is not None else "a document row"
        return IndexRefusedError(f"{self.path}: {which} holds {what}; the store was changed outside koembed, the "
                                 "index is corrupt, rebuild it")

    def insert(self, rows: Iterable[tuple[int, str, str, str]]) -> None:
        """Insert ``(row_id, ext_id, text, metadata_json)`` rows (the caller deleted older versions)."""
        self.conn.executemany("INSERT INTO docs (row_id, ext_id, text, metadata) VALUES (?, ?, ?, ?)", rows)

    def delete_rows(self, row_ids: Iterable[int]) -> None:
        self.conn.executemany("DELETE FROM docs WHERE row_id = ?", ((int(r),) for r in row_ids))

    def iter_docs(self) -> Iterator[tuple[int, str, str, dict[str, Any]]]:
        for row_id, ext_id, text, meta in self.conn.execute("SELECT row_id, ext_id, text, metadata FROM docs "
                                                            "ORDER BY row_id"):
            yield row_id, ext_id, text, json.loads(meta)

    def row_ids(self) -> np.ndarray:
        rows = self.conn.execute("SELECT row_id FROM docs ORDER BY row_id").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    # -- tombstones ----------------------------------------------------------------------------------
    def add_tombstones(self, row_ids: Iterable[int]) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO tombstones (row_id) VALUES (?)", ((int(r),) for r in row_ids))

    def tombstones(self) -> np.ndarray:
        rows = self.conn.execute("SELECT row_id FROM tombstones ORDER BY row_id").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def clear_tombstones(self) -> None:
        self.conn.execute("DELETE FROM tombstones")

    # -- metadata filters ----------------------------------------------------------------------------
    def filter_row_ids(self, filter: dict[str, Any]) -> np.ndarray:
        """Row ids whose metadata matches every ``key: value`` (a list or tuple value matches any of it).

        Matching is typed the lenient way (see :func:`filter_equivalents`): ``"1"`` also matches 1 and
        ``1`` also matches ``"1"``, so a filter typed on the command line finds numbers and booleans.
        """
        clauses, params = [], []
        for key, value in filter.items():
            options = list(value) if isinstance(value, list | tuple | set) else [value]
            if not options:
                return np.zeros(0, dtype=np.int64)
            parts, listed = [], []
            path = _sql_str(_json_path(key))
            for v in options:
                if v is None:
                    parts.append(f"json_type(metadata, '{path}') = 'null'")
                    continue
                if isinstance(v, dict | list):
                    raise InputError(f"filter {key!r}: only scalar values can be matched, got {type(v).__name__}")
                for form in filter_equivalents(v):
                    if isinstance(form, float) and not math.isfinite(form):  # JSON has no NaN: bound on its own
                        parts.append(f"json_extract(metadata, '{path}') = ?")
                        params.append(form)
                    else:
                        listed.append(form)
            if listed:
                # One IN over a JSON array, however many values: an OR per value hit SQLite's expression depth
                # limit (1000) at about 500 values.
                parts.append(f"json_extract(metadata, '{path}') IN (SELECT value FROM json_each(?))")
                params.append(json.dumps(listed, ensure_ascii=False))
            clauses.append("(" + " OR ".join(parts) + ")")
        q = "SELECT row_id FROM docs" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        rows = self.conn.execute(q, params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


class _Connection(sqlite3.Connection):
    """A connection whose failures (a damaged page, a full disk, a lock held too long) are one clear error.

    Raw ``sqlite3`` errors until ``path`` is set (the store sets it once the connection is set up).
    """

    path: Path | None = None

    def execute(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        return self._clear(super().execute, args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        return self._clear(super().executemany, args)

    def executescript(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        return self._clear(super().executescript, args)

    def _clear(self, call: Any, args: tuple) -> sqlite3.Cursor:
        try:
            return call(*args)
        except sqlite3.Error as exc:
            if self.path is None:
                raise
            raise refused_store(self.path, exc) from None


def _require_store_file(path: Path) -> None:
    """Refuse a missing or empty file before SQLite opens it (opening a writer would give it a header)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise IndexRefusedError(f"{path}: missing; the index is incomplete, rebuild it") from None
    if size == 0:
        raise IndexRefusedError(f"{path}: not a readable document store (an empty file); the index is corrupt, "
                                "rebuild it")


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that makes no change to the database.

    In a folder this user may write, it is a read-write connection with ``query_only`` set: SQL writes
    are refused, yet SQLite can tidy its WAL files away when the last connection closes (``mode=ro``
    would leave them behind). Elsewhere ``mode=ro``. When either cannot open a WAL database (it needs a
    ``-shm`` file it could not create: a folder it may not write, a full disk) and no WAL content is
    pending, ``immutable``.
    """
    if not path.is_file():
        raise sqlite3.OperationalError("no such file")
    if os.access(path.parent, os.W_OK):
        conn = sqlite3.connect(str(path), isolation_level=None, factory=_Connection)
        conn.execute("PRAGMA query_only=1")
    else:
        conn = sqlite3.connect(f"file:{_uri_path(path)}?mode=ro", uri=True, isolation_level=None,
                               factory=_Connection)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        # No -shm file could be made (a folder it may not write, a full disk): with no WAL content pending
        # the main file is the whole database.
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise
        conn.close()
    conn = sqlite3.connect(f"file:{_uri_path(path)}?mode=ro&immutable=1", uri=True, isolation_level=None,
                           factory=_Connection)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.absolute()))


def filter_equivalents(value: Any) -> list[Any]:
    """A scalar filter value and the other forms it matches: a string that reads as a JSON number or
    boolean also matches that typed value ("1" -> 1, "true" -> true), and a number or boolean also matches
    its JSON text (1 -> "1"). Command-line filters are always strings; stored metadata often is not."""
    if isinstance(value, str):
        try:
            typed = json.loads(value)
        except ValueError:
            return [value]
        ok = isinstance(typed, bool | int) or (isinstance(typed, float) and math.isfinite(typed))
        return [value, typed] if ok else [value]
    if isinstance(value, bool | int | float):
        return [value, json.dumps(value)]
    return [value]


def _sql_str(s: str) -> str:
    return s.replace("'", "''")
