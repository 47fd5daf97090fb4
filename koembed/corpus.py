"""Streaming document readers: one :class:`Record` (id, text, metadata) at a time, in constant memory.

Formats, chosen by suffix or ``fmt=``:

- ``txt``: a line a document; id = the 1-based line number; empty lines are skipped and counted. Refused
  when its first lines all hold the same number of tabs (a table; :mod:`koembed.input_files`) unless
  ``fmt="txt"`` is given explicitly.
- ``jsonl``: one JSON object a line with ``id``, ``text`` and an optional ``metadata`` object (field
  names configurable); its other top-level fields join the metadata (as a table's other columns do). A
  missing id becomes the line number. A text field missing from the first record is refused outright
  (naming ``--text-field`` and the fields the record has): the field name is wrong, not the record.
- ``json``: one JSON array of such objects (or of strings), read whole; "line" is the item's 1-based number.
- ``tsv`` / ``csv``: a header row, then one document a row. The text and id columns are chosen by name;
  a ``metadata`` column holding a JSON object is parsed, and the remaining columns join it (as strings).
  A missing id column gives the 1-based data-row number. TSV is read with ``QUOTE_NONE`` because Korean
  TSVs (NSMC, KorSTS) contain unbalanced quotes.
- ``parquet``: read one record batch at a time (never the whole file); columns as for tables, with
  their native types.

A folder or a glob pattern reads each file it names in its own format (:mod:`koembed.input_files`); records
without an id are numbered ``FILE:LINE`` (the file relative to the folder, or as matched).

Every text goes through :func:`koembed.text.normalize`. A bad record (malformed JSON, missing or non-string
text, non-object metadata, an unusable id, a JSON string that is not valid Unicode: a lone surrogate) raises
an :class:`InputError` naming the file and line, or with ``skip_bad=True`` is skipped and counted in
:class:`CorpusStats`.

Ids, metadata and the counts follow the rules of :mod:`koembed.records`.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from koembed import input_files
from koembed.errors import InputError
from koembed.records import (
    MAX_BAD_LOCATIONS,
    MISSING,
    Bad,
    CorpusStats,
    Fields,
    Record,
    check_strings,
    emit,
    handle_bad,
    id_value,
    merged,
    metadata_object,
    text_value,
)
from koembed.text import LineStats, find_bad_text, iter_lines, normalize

__all__ = ["FORMATS", "MAX_BAD_LOCATIONS", "PARQUET_BATCH_ROWS", "CorpusStats", "Record", "detect_format",
           "iter_records", "parquet_records", "parse_lines"]

FORMATS = ("txt", "jsonl", "json", "tsv", "csv", "parquet")
_SUFFIXES = {".txt": "txt", ".text": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".tsv": "tsv",
             ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# Bad locations kept for the report; the count keeps going.
PARQUET_BATCH_ROWS = 4096


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    """``fmt`` if given, else the format named by the file suffix; stdin (``-``) defaults to txt.

    A folder or pattern (:mod:`koembed.input_files`) is checked file by file; its format is ``fmt``, the one
    format its files share, or ``"mixed"``.
    """
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown input format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if input_files.is_many(path):
        found = {detect_format(f, fmt) for f in input_files.expand(path, tuple(_SUFFIXES))}
        return found.pop() if len(found) == 1 else "mixed"
    if fmt is not None:
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
    """Yield the non-empty documents of ``path`` in file order; see the module docstring for formats.

    ``path`` is a file, ``-`` (stdin), a folder or a glob pattern (each file read in its own format).
    """
    stats = stats if stats is not None else CorpusStats()
    fields = Fields(text_field, id_field, metadata_field)
    if input_files.is_many(path):
        files = input_files.expand(path, tuple(_SUFFIXES))
        root = Path(path) if Path(path).is_dir() else None
        for f in files:
            prefix = f"{f.relative_to(root).as_posix() if root else f}:"
            yield from _one_file(f, fields, fmt, errors, skip_bad, stats, prefix)
        stats.finish_ids(str(path))
        return
    unit = {"parquet": "row", "json": "item"}.get(detect_format(path, fmt), "line")
    yield from _one_file(path, fields, fmt, errors, skip_bad, stats, "")
    stats.finish_ids("<stdin>" if str(path) == "-" else str(path), unit)


def _one_file(path: str | Path, fields: Fields, fmt: str | None, errors: str, skip_bad: bool, stats: CorpusStats,
              prefix: str) -> Iterator[Record]:
    explicit = fmt is not None
    fmt = detect_format(path, fmt)
    name = "<stdin>" if str(path) == "-" else str(path)
    if fmt == "parquet":
        if str(path) == "-":
            raise InputError("parquet input cannot be read from stdin; pass a file path")
        yield from _parquet(Path(path), fields, skip_bad, stats, prefix)
        return
    line_stats = LineStats()
    lines = iter_lines(path, errors=errors, stats=line_stats)
    try:
        if fmt == "txt":
            if not explicit:
                head = list(itertools.islice(lines, input_files.TABLE_PROBE_LINES))
                input_files.refuse_table(name, head)
                lines = itertools.chain(head, lines)
            gen = _txt(lines, stats, prefix=prefix)
        elif fmt == "jsonl":
            gen = _jsonl(lines, name, fields.text, fields.id, fields.metadata, skip_bad, stats, prefix=prefix)
        elif fmt == "json":
            gen = _json_array(lines, name, fields, skip_bad, stats, prefix)
        else:
            gen = _table(lines, name, fmt, fields, skip_bad, stats, prefix)
        yield from gen
    finally:
        stats.replaced += line_stats.replaced


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


def _txt(lines: Iterator[str], stats: CorpusStats, first_line: int = 1, prefix: str = "") -> Iterator[Record]:
    for lineno, line in enumerate(lines, start=first_line):
        rec = emit(stats, f"{prefix}{lineno}", line, {}, lineno)
        if rec is not None:
            yield rec


def _jsonl(lines: Iterator[str], name: str, text_field: str, id_field: str, metadata_field: str,
           skip_bad: bool, stats: CorpusStats, first_line: int = 1, prefix: str = "") -> Iterator[Record]:
    fields = Fields(text_field, id_field, metadata_field)
    first = True
    for lineno, line in enumerate(lines, start=first_line):
        if not line.strip():
            stats.empty += 1
            continue
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise Bad(f"malformed JSON ({exc.msg} at column {exc.colno})") from None
            rec = _object_record(obj, fields, lineno, prefix, f"{name}: line {lineno}", first and first_line == 1)
        except Bad as exc:
            handle_bad(exc, f"{name}: line {lineno}", skip_bad, stats)
            continue
        finally:
            first = False
        rec = emit(stats, *rec)
        if rec is not None:
            yield rec


def _object_record(obj: Any, fields: Fields, number: int, prefix: str, where: str, first: bool,
                   strings: bool = False) -> tuple[str, Any, dict[str, Any], int]:
    """``(id, text, metadata, number)`` of one JSON record: an object, or with ``strings`` a bare string (an item of
    a .json array)."""
    if strings and isinstance(obj, str):
        check_strings(obj, "the item")
        return f"{prefix}{number}", obj, {}, number
    if not isinstance(obj, dict):
        raise Bad(f"expected a JSON object, got {type(obj).__name__}")
    if fields.text not in obj:
        seen = ", ".join(list(obj)[:12]) + (", ..." if len(obj) > 12 else "") or "none"
        message = (f"no text field {fields.text!r} (its fields: {seen}); name the field holding the text with "
                   "--text-field")
        if first:  # the field name is wrong for the whole file, not this record: skipping would skip every one
            raise InputError(f"{where}: {message}")
        raise Bad(message)
    text = text_value(obj.get(fields.text), f"text field {fields.text!r}")
    metadata = metadata_object(obj.get(fields.metadata), fields.metadata)
    others = {k: v for k, v in obj.items() if k not in (fields.text, fields.id, fields.metadata)}
    metadata = merged(others, metadata, fields.metadata)
    id_ = id_value(obj.get(fields.id, MISSING), fields.id, number, prefix)
    check_strings(text, f"field {fields.text}")
    check_strings(id_, f"field {fields.id}")
    bad = find_bad_text(metadata, "metadata")
    if bad is not None:
        raise Bad(f"{bad[0]} {bad[1]}")
    return id_, text, metadata, number


def _json_array(lines: Iterator[str], name: str, fields: Fields, skip_bad: bool, stats: CorpusStats,
                prefix: str) -> Iterator[Record]:
    """A ``.json`` file: one array of records, read whole (JSON has no streaming boundary to cut at)."""
    try:
        data = json.loads("\n".join(lines))
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: line {exc.lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, list):
        raise InputError(f"{name}: a .json input must hold one array of records ([{{\"id\": ..., \"text\": ...}}, "
                         f"...]), not a JSON {type(data).__name__}; for one object a line use a .jsonl file")
    for number, obj in enumerate(data, start=1):
        where = f"{name}: item {number}"
        try:
            rec = _object_record(obj, fields, number, prefix, where, number == 1, strings=True)
        except Bad as exc:
            handle_bad(exc, where, skip_bad, stats)
            continue
        rec = emit(stats, *rec)
        if rec is not None:
            yield rec


def _table(lines: Iterator[str], name: str, fmt: str, fields: Fields, skip_bad: bool, stats: CorpusStats,
           prefix: str = "") -> Iterator[Record]:
    text_field, id_field, metadata_field = fields.text, fields.id, fields.metadata
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
                raise Bad(f"{len(row)} columns, the header has {len(header)}")
            metadata = metadata_object(row[meta_i], metadata_field) if meta_i is not None else {}
            metadata = merged({h: row[i] for i, h in rest}, metadata, metadata_field)
            id_ = id_value(row[id_i] if id_i is not None else MISSING, id_field, row_no, prefix)
        except Bad as exc:
            handle_bad(exc, f"{name}: line {lineno}", skip_bad, stats)
            continue
        rec = emit(stats, id_, row[text_i], metadata, lineno)
        if rec is not None:
            yield rec


def _columns(header: list[str], name: str, text_field: str, id_field: str,
             metadata_field: str) -> tuple[int, int | None, int | None]:
    if text_field not in header:
        raise InputError(f"{name}: no text column {text_field!r} in the header (columns: {', '.join(header)}); "
                         "name the column holding the text with --text-field")
    idx = {h: i for i, h in enumerate(header)}
    return idx[text_field], idx.get(id_field), idx.get(metadata_field)


def _parquet(path: Path, fields: Fields, skip_bad: bool, stats: CorpusStats, prefix: str) -> Iterator[Record]:
    from koembed.extras import require

    require("pyarrow")
    import pyarrow.parquet as pq

    text_field, id_field, metadata_field = fields.text, fields.id, fields.metadata
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a non-parquet file
        raise InputError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0][:120]})") from None
    _columns(list(pf.schema_arrow.names), str(path), text_field, id_field, metadata_field)
    yield from parquet_records(pf.iter_batches(batch_size=PARQUET_BATCH_ROWS), str(path), text_field=text_field,
                               id_field=id_field, metadata_field=metadata_field, skip_bad=skip_bad, stats=stats,
                               id_prefix=prefix)


def parquet_records(batches: Iterable[Any], name: str, *, first_row: int = 1, text_field: str = "text",
                    id_field: str = "id", metadata_field: str = "metadata", skip_bad: bool = False,
                    stats: CorpusStats | None = None, id_prefix: str = "") -> Iterator[Record]:
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
                text = text_value(columns[text_field][j], f"text column {text_field!r}")
                metadata = metadata_object(columns[metadata_field][j], metadata_field) if meta_i is not None else {}
                metadata = merged({h: columns[h][j] for h in rest}, metadata, metadata_field)
                id_ = id_value(columns[id_field][j] if id_i is not None else MISSING, id_field, row_no, id_prefix)
            except Bad as exc:
                handle_bad(exc, f"{name}: row {row_no}", skip_bad, stats)
                continue
            rec = emit(stats, id_, text, metadata, row_no)
            if rec is not None:
                yield rec
        del columns
