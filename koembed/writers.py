"""Streaming output writers for sentence vectors, chosen by the output file's suffix.

Rows arrive chunk by chunk (their total may be unknown, e.g. from stdin), so every writer appends
as it goes and never holds all vectors. Files are written to a temporary file beside the target
and renamed into place only when complete (:mod:`koembed.atomic`); ``-`` streams JSONL to stdout.

- ``.npy``: a normal NumPy array file (float32, ``(rows, dim)``) that ``np.load`` and
  ``np.load(mmap_mode="r")`` read. The header is written with a fixed size first and rewritten with
  the final row count at the end, so the data never has to be copied.
- ``.jsonl``: one ``{"line": n, "text": ..., "embedding": [...]}`` per input line (``line`` 1-based).
- ``.parquet``: columns ``line`` (int64), ``text`` (string), ``embedding`` (fixed-size list of
  float32), one row group per chunk.

For records (``records=True``: an input read for its fields, :mod:`koembed.corpus`) the JSONL rows are
``{"id", "line", "text", "metadata", "embedding"}`` and the Parquet columns ``id`` (string), ``line``,
``text``, ``metadata`` (a JSON object as a string: records need not share keys) and ``embedding``;
``line`` is where the record is in its file (row or item for Parquet and JSON arrays). ``.npy`` holds
the vectors alone, one row per record read.
"""

from __future__ import annotations

import contextlib
import json
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

import numpy as np

from koembed.atomic import atomic_path
from koembed.corpus import Record
from koembed.errors import InputError, WriteError

STDOUT = "-"
RecordRows = list[Record] | None  # the records behind a chunk of rows, when the input was read as records
FORMATS = {".npy": "npy", ".jsonl": "jsonl", ".parquet": "parquet"}


class VectorWriter(Protocol):
    rows: int

    def write(self, first_line: int, texts: list[str], vectors: np.ndarray, records: RecordRows = None) -> None:
        """Append rows for input lines ``first_line, first_line + 1, ...`` (1-based), or for ``records``."""

    def finish(self) -> None:
        """Complete the file (headers, footers); called once, only after the last row."""

    def close(self) -> None:
        """Release the file handle; called on success and on failure."""


def output_format(output: str | Path) -> str:
    """The format name for ``output`` (``-`` is JSONL on stdout); unknown suffixes raise :class:`InputError`."""
    if str(output) == STDOUT:
        return "jsonl"
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        shown = f"suffix {suffix!r}" if suffix else "no suffix"
        raise InputError(
            f"{output}: unknown output format ({shown}); use one of {', '.join(FORMATS)} (or '-' for JSONL on stdout)"
        )
    return FORMATS[suffix]


@contextlib.contextmanager
def open_writer(output: str | Path, dim: int, records: bool = False) -> Iterator[VectorWriter]:
    """Yield a writer for ``output``; the file appears (atomically) only if the block completes.

    ``records``: rows come with their :class:`~koembed.corpus.Record` (id, line, metadata kept).
    """
    fmt = output_format(output)
    if str(output) == STDOUT:
        writer = JsonlWriter(sys.stdout, dim)
        yield writer
        sys.stdout.flush()
        return
    with atomic_path(output) as tmp:
        try:
            writer = ParquetWriter(tmp, dim, records) if fmt == "parquet" else _WRITERS[fmt](tmp, dim)
        except OSError as exc:
            raise WriteError(f"{output}: cannot write ({exc.strerror or exc}); nothing was written; choose another -o "
                             "or make the folder writable") from None
        try:
            yield writer
            writer.finish()
        except OSError as exc:  # disk full, quota, I/O error: report the file, not a traceback
            raise WriteError(f"{output}: write failed ({exc.strerror or exc}); nothing was written (a full disk? free "
                             "some space or choose another -o)") from None
        finally:
            writer.close()


def _check(vectors: np.ndarray, texts: list[str], dim: int) -> np.ndarray:
    if vectors.ndim != 2 or vectors.shape != (len(texts), dim):
        raise ValueError(f"expected vectors of shape ({len(texts)}, {dim}), got {vectors.shape}")
    return np.ascontiguousarray(vectors, dtype="<f4")


class NpyWriter:
    # Version 1.0 header of a fixed 128 bytes (a multiple of numpy's 64-byte alignment): room for any
    # shape, so the final header overwrites the placeholder in place.
    HEADER_BYTES = 128
    _PREFIX = b"\x93NUMPY\x01\x00"

    def __init__(self, path: Path, dim: int) -> None:
        self.dim, self.rows = dim, 0
        self._fh = open(path, "wb")  # closed by close()
        self._fh.write(self._header(0))

    def _header(self, rows: int) -> bytes:
        body_len = self.HEADER_BYTES - len(self._PREFIX) - 2
        body = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {self.dim}), }}"
        return self._PREFIX + struct.pack("<H", body_len) + (body.ljust(body_len - 1) + "\n").encode("latin1")

    def write(self, first_line: int, texts: list[str], vectors: np.ndarray, records: RecordRows = None) -> None:
        data = _check(vectors, texts, self.dim)
        if data.size:  # a zero-length view cannot be cast to bytes
            self._fh.write(memoryview(data).cast("B"))
        self.rows += len(texts)

    def finish(self) -> None:
        self._fh.seek(0)
        self._fh.write(self._header(self.rows))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class JsonlWriter:
    def __init__(self, target: Path | IO[str], dim: int) -> None:
        self.dim, self.rows = dim, 0
        self._owned = isinstance(target, Path)
        self._fh: IO[str] = open(target, "w", encoding="utf-8", newline="\n") if self._owned else target

    def write(self, first_line: int, texts: list[str], vectors: np.ndarray, records: RecordRows = None) -> None:
        vectors = _check(vectors, texts, self.dim)
        # float32 -> Python float is exact, and json writes the shortest repr that reads back to it.
        if records is not None:
            rows = (json.dumps({"id": r.id, "line": r.line, "text": r.text, "metadata": r.metadata, "embedding": v},
                               ensure_ascii=False, default=str)
                    for r, v in zip(records, vectors.tolist(), strict=True))
        else:
            rows = (
                json.dumps({"line": first_line + i, "text": t, "embedding": v}, ensure_ascii=False)
                for i, (t, v) in enumerate(zip(texts, vectors.tolist(), strict=True))
            )
        self._fh.write("".join(r + "\n" for r in rows))
        self.rows += len(texts)

    def finish(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        if self._owned:
            self._fh.close()


class ParquetWriter:
    def __init__(self, path: Path, dim: int, records: bool = False) -> None:
        from koembed.extras import require

        require("pyarrow")
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.dim, self.rows = dim, 0
        self._pa = pa
        head = [("id", pa.string())] if records else []
        tail = [("metadata", pa.string())] if records else []
        self.schema = pa.schema(
            [*head, ("line", pa.int64()), ("text", pa.string()), *tail, ("embedding", pa.list_(pa.float32(), dim))]
        )
        self._writer = pq.ParquetWriter(str(path), self.schema)

    def write(self, first_line: int, texts: list[str], vectors: np.ndarray, records: RecordRows = None) -> None:
        pa = self._pa
        vectors = _check(vectors, texts, self.dim)
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), self.dim)
        text = pa.array(texts, type=pa.string())
        if records is not None:
            ids = pa.array([r.id for r in records], type=pa.string())
            lines = pa.array([r.line for r in records], type=pa.int64())
            meta = pa.array([json.dumps(r.metadata, ensure_ascii=False, default=str) for r in records], pa.string())
            columns = [ids, lines, text, meta, embedding]
        else:
            columns = [pa.array(np.arange(first_line, first_line + len(texts), dtype=np.int64)), text, embedding]
        table = pa.Table.from_arrays(columns, schema=self.schema)
        self._writer.write_table(table, row_group_size=max(1, len(texts)))
        self.rows += len(texts)

    def finish(self) -> None:
        self._writer.close()

    def close(self) -> None:
        if self._writer.is_open:
            self._writer.close()


_WRITERS = {"npy": NpyWriter, "jsonl": JsonlWriter, "parquet": ParquetWriter}
