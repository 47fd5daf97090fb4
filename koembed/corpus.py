"""Streaming document readers: one :class:`Record` (id, text, metadata) at a time, in constant memory.

Formats, chosen by suffix or ``fmt=``:

- ``txt``: a line a document; id = the 1-based line number; empty lines are skipped and counted.
- ``jsonl``: one JSON object a line with ``id``, ``text`` and an optional ``metadata`` object (field
  names configurable). A missing id becomes the line number.
- ``tsv`` / ``csv``: a header row, then one document a row. The text and id columns are chosen by name;
  a ``metadata`` column holding a JSON object is parsed, otherwise the remaining columns become the
  metadata (as strings). A missing id column gives the 1-based data-row number. TSV is read with
  ``QUOTE_NONE`` because Korean TSVs (NSMC, KorSTS) contain unbalanced quotes.
- ``parquet``: read one record batch at a time (never the whole file); columns as for tables, with
  their native types.

Every text goes through :func:`koembed.text.normalize`. A bad record (malformed JSON, missing or
non-string text, non-object metadata, an unusable id) raises an :class:`InputError` naming the file and
line, or with ``skip_bad=True`` is skipped and counted in :class:`CorpusStats`.

Ids are kept exactly as written: no trimming, no Unicode normalisation, so ids that only look alike
(``"a"`` and ``"a "``, NFC and NFD forms) are different documents and nothing merges silently. A number
is written in decimal: ``123`` and ``"123"`` are the same id, and ``2.0`` is ``"2"``. A blank id, an
explicit ``null``, a boolean, an object or a non-finite number is a bad record; a missing id field
(or no id column) numbers the records by line or row instead. With ``CorpusStats(track_ids=True)`` an
id that repeats within one input is counted and located (the last record wins when indexing).
"""

from __future__ import annotations

import csv
import json
import math
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from koembed.errors import InputError
from koembed.text import LineStats, iter_lines, normalize

FORMATS = ("txt", "jsonl", "tsv", "csv", "parquet")
_SUFFIXES = {".txt": "txt", ".text": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".tsv": "tsv", ".csv": "csv",
             ".parquet": "parquet", ".pq": "parquet"}
# Bad locations kept for the report; the count keeps going.
MAX_BAD_LOCATIONS = 5
PARQUET_BATCH_ROWS = 4096


@dataclass(frozen=True)
class Record:
    id: str
    text: str
    metadata: dict[str, Any]
    line: int  # 1-based line (txt/jsonl/tsv/csv: physical line where the record ends) or row (parquet)


@dataclass
class CorpusStats:
    """What a reader saw; filled while iterating."""

    read: int = 0  # records yielded
    empty: int = 0  # records skipped because their text was empty after normalisation
    bad: int = 0  # records skipped with skip_bad=True
    replaced: int = 0  # lines with undecodable bytes replaced (errors="replace")
    bad_locations: list[str] = field(default_factory=list)
    track_ids: bool = False  # find ids that repeat within the input (12 bytes of memory a record)
    duplicates: int = 0  # records whose id an earlier record already had (set when reading ends)
    duplicate_locations: list[str] = field(default_factory=list)
    _ids: IdRepeats | None = field(default=None, repr=False, compare=False)

    def note_bad(self, where: str) -> None:
        self.bad += 1
        if len(self.bad_locations) < MAX_BAD_LOCATIONS:
            self.bad_locations.append(where)

    def note_id(self, id_: str, line: int) -> None:
        if self.track_ids:
            if self._ids is None:
                self._ids = IdRepeats()
            self._ids.note(id_, line)

    def finish_ids(self, name: str, unit: str = "line") -> None:
        """Count and locate the repeated ids seen so far (called when a reader reaches the end)."""
        if self._ids is not None:
            self.duplicates, pairs = self._ids.repeats(MAX_BAD_LOCATIONS)
            self.duplicate_locations = [f"{name}: {unit} {later} repeats the id of {unit} {first}"
                                        for first, later in pairs]

    def summary(self) -> str:
        parts = [f"{self.read} documents read", f"{self.empty} empty skipped"]
        if self.bad:
            parts.append(f"{self.bad} bad skipped (first: {'; '.join(self.bad_locations)})")
        if self.duplicates:
            parts.append(f"{self.duplicates} repeated ids, the last record wins (first: "
                         f"{'; '.join(self.duplicate_locations)})")
        if self.replaced:
            parts.append(f"{self.replaced} lines with undecodable bytes replaced")
        return ", ".join(parts)


class IdRepeats:
    """Which ids repeat in one input, in bounded memory: a 64-bit hash and the line of each record.

    Python's string hash is random per process but fixed within it, which is all a count needs; two
    different ids share a hash with probability about n²/2⁶⁵ (1 in 90,000 for 20 million records).
    """

    def __init__(self) -> None:
        self._hashes = array("q")
        self._lines = array("q")

    def note(self, id_: str, line: int) -> None:
        self._hashes.append(hash(id_))
        self._lines.append(line)

    def repeats(self, limit: int) -> tuple[int, list[tuple[int, int]]]:
        """How many records repeat an earlier id, and ``(first line, later line)`` of the first few."""
        import numpy as np

        if not self._hashes:
            return 0, []
        hashes = np.frombuffer(self._hashes, dtype=np.int64)
        lines = np.frombuffer(self._lines, dtype=np.int64)
        order = np.lexsort((lines, hashes))  # by hash, then by line: each run starts with the first record
        h = hashes[order]
        later = np.flatnonzero(h[1:] == h[:-1]) + 1
        if not len(later):
            return 0, []
        run_start = np.maximum.accumulate(np.where(np.r_[True, h[1:] != h[:-1]], np.arange(len(h)), 0))
        pairs = sorted((int(lines[order[j]]), int(lines[order[run_start[j]]])) for j in later)[:limit]
        return len(later), [(first, line) for line, first in pairs]


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    """``fmt`` if given, else the format named by the file suffix; stdin (``-``) defaults to txt."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(f"unknown input format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        return fmt
    if str(path) == "-":
        return "txt"
    found = _SUFFIXES.get(Path(path).suffix.lower())
    if found is None:
        raise InputError(f"{path}: cannot tell the format from the suffix {Path(path).suffix!r}; "
                         f"use one of {', '.join(sorted(_SUFFIXES))} or pass the format explicitly")
    return found


def iter_records(
    path: str | Path,
    *,
    text_field: str = "text",
    id_field: str = "id",
    metadata_field: str = "metadata",
    fmt: str | None = None,
    errors: str = "strict",
    skip_bad: bool = False,
    stats: CorpusStats | None = None,
) -> Iterator[Record]:
    """Yield the non-empty documents of ``path`` in file order; see the module docstring for formats."""
    fmt = detect_format(path, fmt)
    stats = stats if stats is not None else CorpusStats()
    name = "<stdin>" if str(path) == "-" else str(path)
    if fmt == "parquet":
        if str(path) == "-":
            raise InputError("parquet input cannot be read from stdin; pass a file path")
        yield from _parquet(Path(path), text_field, id_field, metadata_field, skip_bad, stats)
        stats.finish_ids(name, "row")
        return
    line_stats = LineStats()
    lines = iter_lines(path, errors=errors, stats=line_stats)
    try:
        if fmt == "txt":
            gen = _txt(lines, stats)
        elif fmt == "jsonl":
            gen = _jsonl(lines, name, text_field, id_field, metadata_field, skip_bad, stats)
        else:
            gen = _table(lines, name, fmt, text_field, id_field, metadata_field, skip_bad, stats)
        yield from gen
        stats.finish_ids(name)
    finally:
        stats.replaced = line_stats.replaced


class _Bad(Exception):
    """A record-level problem: fatal, or skipped and counted with skip_bad."""


def _emit(stats: CorpusStats, id_: str, text: Any, metadata: dict[str, Any], line: int) -> Record | None:
    clean = normalize(text)
    if not clean:
        stats.empty += 1
        return None
    stats.read += 1
    stats.note_id(id_, line)
    return Record(id=id_, text=clean, metadata=metadata, line=line)


def parse_lines(lines: Iterable[str], fmt: str, *, name: str, first_line: int = 1, text_field: str = "text",
                id_field: str = "id", metadata_field: str = "metadata", skip_bad: bool = False,
                stats: CorpusStats | None = None) -> Iterator[Record]:
    """Records from decoded lines of a ``txt`` or ``jsonl`` file numbered from ``first_line``.

    A worker that reads a slice of a file (:mod:`koembed.scale`) gets the ids and error locations
    that reading the whole file would give.
    """
    stats = stats if stats is not None else CorpusStats()
    if fmt == "txt":
        return _txt(iter(lines), stats, first_line)
    if fmt == "jsonl":
        return _jsonl(iter(lines), name, text_field, id_field, metadata_field, skip_bad, stats, first_line)
    raise InputError(f"{name}: {fmt} cannot be read in slices of lines; use txt, jsonl or parquet")


def _txt(lines: Iterator[str], stats: CorpusStats, first_line: int = 1) -> Iterator[Record]:
    for lineno, line in enumerate(lines, start=first_line):
        rec = _emit(stats, str(lineno), line, {}, lineno)
        if rec is not None:
            yield rec


def _handle_bad(exc: _Bad, where: str, skip_bad: bool, stats: CorpusStats) -> None:
    if not skip_bad:
        raise InputError(f"{where}: {exc}; fix the record or pass --skip-bad to skip and count such records") from None
    stats.note_bad(where)


def _jsonl(lines: Iterator[str], name: str, text_field: str, id_field: str, metadata_field: str,
           skip_bad: bool, stats: CorpusStats, first_line: int = 1) -> Iterator[Record]:
    for lineno, line in enumerate(lines, start=first_line):
        if not line.strip():
            stats.empty += 1
            continue
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _Bad(f"malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise _Bad(f"expected a JSON object, got {type(obj).__name__}")
            text = _text_value(obj.get(text_field), f"text field {text_field!r}")
            metadata = _metadata_object(obj.get(metadata_field), metadata_field)
            id_ = _id_value(obj.get(id_field, _MISSING), id_field, lineno)
        except _Bad as exc:
            _handle_bad(exc, f"{name}: line {lineno}", skip_bad, stats)
            continue
        rec = _emit(stats, id_, text, metadata, lineno)
        if rec is not None:
            yield rec


def _text_value(value: Any, where: str) -> str:
    if not isinstance(value, str):
        what = "missing" if value is None else f"not a string ({type(value).__name__})"
        raise _Bad(f"{where} is {what}")
    return value


_MISSING = object()  # no id field at all (unlike an explicit null)


def _id_value(value: Any, id_field: str, fallback: int) -> str:
    """The id by the rule in the module docstring: strings exactly, numbers in decimal, the line if absent."""
    if value is _MISSING:
        return str(fallback)
    if value is None:
        raise _Bad(f"id field {id_field!r} is null; give the record an id, or leave the field out of every "
                   "record to number them by line")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Bad(f"id field {id_field!r} must be a string or number, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Bad(f"id field {id_field!r} is {value}, not a usable id")
        value = int(value) if value.is_integer() else value
    id_ = str(value)
    if not id_.strip():
        raise _Bad(f"id field {id_field!r} is blank")
    return id_


def _metadata_object(value: Any, metadata_field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            raise _Bad(f"metadata field {metadata_field!r} is not a JSON object") from None
    if not isinstance(value, dict):
        raise _Bad(f"metadata field {metadata_field!r} must be an object, got {type(value).__name__}")
    return value


def _table(lines: Iterator[str], name: str, fmt: str, text_field: str, id_field: str, metadata_field: str,
           skip_bad: bool, stats: CorpusStats) -> Iterator[Record]:
    if fmt == "tsv":
        reader = csv.reader((line + "\n" for line in lines), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(line + "\n" for line in lines)
    header = next(reader, None)
    if header is None:
        return
    header = [normalize(h) for h in header]
    cols = _columns(header, name, text_field, id_field, metadata_field)
    text_i, id_i, meta_i = cols
    rest = [(i, h) for i, h in enumerate(header) if i not in cols]
    for row_no, row in enumerate(reader, start=1):
        lineno = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            stats.empty += 1
            continue
        try:
            if len(row) != len(header):
                raise _Bad(f"{len(row)} columns, the header has {len(header)}")
            metadata = (_metadata_object(row[meta_i], metadata_field) if meta_i is not None
                        else {h: row[i] for i, h in rest})
            id_ = _id_value(row[id_i] if id_i is not None else _MISSING, id_field, row_no)
        except _Bad as exc:
            _handle_bad(exc, f"{name}: line {lineno}", skip_bad, stats)
            continue
        rec = _emit(stats, id_, row[text_i], metadata, lineno)
        if rec is not None:
            yield rec


def _columns(header: list[str], name: str, text_field: str, id_field: str,
             metadata_field: str) -> tuple[int, int | None, int | None]:
    if text_field not in header:
        raise InputError(f"{name}: no text column {text_field!r} in the header (columns: {', '.join(header)}); "
                         "choose one with --text-field")
    idx = {h: i for i, h in enumerate(header)}
    return idx[text_field], idx.get(id_field), idx.get(metadata_field)


def _parquet(path: Path, text_field: str, id_field: str, metadata_field: str, skip_bad: bool,
             stats: CorpusStats) -> Iterator[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a core dependency
        from koembed.errors import MissingExtraError

        raise MissingExtraError("reading .parquet needs pyarrow: pip install pyarrow") from None
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a non-parquet file
        raise InputError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0][:120]})") from None
    _columns(list(pf.schema_arrow.names), str(path), text_field, id_field, metadata_field)
    yield from parquet_records(pf.iter_batches(batch_size=PARQUET_BATCH_ROWS), str(path), text_field=text_field,
                               id_field=id_field, metadata_field=metadata_field, skip_bad=skip_bad, stats=stats)


def parquet_records(batches: Iterable[Any], name: str, *, first_row: int = 1, text_field: str = "text",
                    id_field: str = "id", metadata_field: str = "metadata", skip_bad: bool = False,
                    stats: CorpusStats | None = None) -> Iterator[Record]:
    """Records from pyarrow record batches of the parquet file ``name``, rows numbered from ``first_row``.

    A slice of a file (its row groups, :mod:`koembed.scale`) gives the ids and locations of the whole file.
    """
    stats = stats if stats is not None else CorpusStats()
    row_no = first_row - 1
    for batch in batches:
        header = list(batch.schema.names)
        text_i, id_i, meta_i = _columns(header, name, text_field, id_field, metadata_field)
        rest = [h for i, h in enumerate(header) if i not in (text_i, id_i, meta_i)]
        columns = {h: batch.column(h).to_pylist() for h in header}
        for j in range(batch.num_rows):
            row_no += 1
            try:
                text = _text_value(columns[text_field][j], f"text column {text_field!r}")
                metadata = (_metadata_object(columns[metadata_field][j], metadata_field) if meta_i is not None
                            else {h: columns[h][j] for h in rest})
                id_ = _id_value(columns[id_field][j] if id_i is not None else _MISSING, id_field, row_no)
            except _Bad as exc:
                _handle_bad(exc, f"{name}: row {row_no}", skip_bad, stats)
                continue
            rec = _emit(stats, id_, text, metadata, row_no)
            if rec is not None:
                yield rec
        del columns
