"""Cut the input into shards: fixed slices of input rows whose identity does not depend on the run.

A shard is a slice of one input file: ``shard_rows`` physical lines of a txt/JSONL file (found by one
pass that counts newlines and hashes each slice's bytes), or a run of whole row groups of a Parquet
file (read from its footer alone; never a partial row group, which would be read once per shard).
Its ``digest`` names its content (the slice's bytes; for Parquet the file's size, mtime and row
groups), so a rerun recognises a finished shard by name and digest, and redoes only the shards whose
input changed.

Inputs are local paths or URIs that ``pyarrow.fs`` opens (``s3://``, ``gs://``, ``hdfs://``); a
directory stands for its files with a known suffix, in name order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from koembed.corpus import detect_format
from koembed.errors import InputError

FORMATS = ("txt", "jsonl", "parquet")  # line slices need one record a line: not tsv/csv (quoted newlines)
_READ_BYTES = 16 << 20


@dataclass(frozen=True)
class InputFile:
    uri: str  # as given, or the directory's URI joined with the file name
    path: str  # the path within its filesystem
    fmt: str
    bytes: int
    mtime_ns: int | None
    id_prefix: str = ""  # "name:" for txt files among several, whose line-number ids would collide


@dataclass(frozen=True)
class Shard:
    index: int
    file: str  # the InputFile uri
    path: str
    fmt: str
    start: int  # first row: 0-based line (txt/jsonl) or row (parquet)
    stop: int
    offset: int = 0  # byte offset of line ``start`` (txt/jsonl)
    length: int = 0  # bytes of the slice (txt/jsonl)
    row_groups: tuple[int, ...] = ()  # parquet
    id_prefix: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"part-{self.index:06d}.parquet"

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"row_groups": list(self.row_groups)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Shard:
        return cls(**(d | {"row_groups": tuple(d.get("row_groups", ()))}))


def filesystem(uri: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path within it)`` for a local path or a URI."""
    import pyarrow.fs as pafs

    if "://" in uri:
        try:
            return pafs.FileSystem.from_uri(uri)
        except Exception as exc:  # pyarrow raises several types for unknown schemes
            raise InputError(f"{uri}: cannot open ({str(exc).splitlines()[0][:160]})") from None
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def list_inputs(uri: str, fmt: str | None = None) -> list[InputFile]:
    """The files of ``uri`` (a file, or a directory's files with a known suffix, in name order)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"{uri}: no such file or directory")
    if info.type == pafs.FileType.Directory:
        infos = [i for i in fs.get_file_info(pafs.FileSelector(path, recursive=False))
                 if i.type == pafs.FileType.File and not i.base_name.startswith((".", "_"))]
        files = []
        for i in sorted(infos, key=lambda i: i.base_name):
            try:
                files.append((i, _format(i.path, fmt)))
            except InputError:
                continue  # a directory may hold README, _SUCCESS and the like
        if not files:
            raise InputError(f"{uri}: a directory with no {'/'.join(FORMATS)} files")
        base = uri.rstrip("/")
    else:
        files, base = [(info, _format(path, fmt))], None
    several = len(files) > 1
    return [InputFile(uri=f"{base}/{i.base_name}" if base else uri, path=i.path, fmt=f, bytes=int(i.size),
                      mtime_ns=i.mtime_ns, id_prefix=f"{i.base_name}:" if several and f == "txt" else "")
            for i, f in files]


def _format(path: str, fmt: str | None) -> str:
    found = detect_format(path, fmt)
    if found not in FORMATS:
        raise InputError(f"{path}: {found} cannot be cut into shards (a quoted field may span lines); "
                         f"convert it to jsonl or parquet, or use `koembed encode` without --engine ray")
    return found


def plan_shards(files: list[InputFile], shard_rows: int) -> list[Shard]:
    """Shards of at most ``shard_rows`` rows (Parquet: whole row groups, at least one), numbered in input order."""
    if shard_rows < 1:
        raise InputError(f"shard_rows must be >= 1, not {shard_rows}")
    shards: list[Shard] = []
    for f in files:
        parts = _parquet_parts(f, shard_rows) if f.fmt == "parquet" else _line_parts(f, shard_rows)
        for part in parts:
            shards.append(Shard(index=len(shards), file=f.uri, path=f.path, fmt=f.fmt, id_prefix=f.id_prefix, **part))
    return shards


def _line_parts(f: InputFile, shard_rows: int) -> Iterator[dict[str, Any]]:
    """One pass over the bytes: newline positions found with numpy, each slice hashed as it streams by."""
    fs, _ = filesystem(f.uri)
    start_line, start_byte, pos, lines_in = 0, 0, 0, 0
    h = hashlib.blake2b(digest_size=16)
    last = b""
    with fs.open_input_stream(f.path) as stream:
        while True:
            chunk = stream.read(_READ_BYTES)
            if not chunk:
                break
            last = chunk[-1:]
            view = memoryview(chunk)
            newlines = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
            used = 0  # bytes of this chunk already hashed into finished slices
            while len(newlines) >= shard_rows - lines_in:
                end = int(newlines[shard_rows - lines_in - 1]) + 1
                newlines = newlines[shard_rows - lines_in:]
                h.update(view[used:end])
                stop_byte = pos + end
                yield _line_part(start_line, start_line + shard_rows, start_byte, stop_byte, h)
                start_line += shard_rows
                start_byte, used, lines_in = stop_byte, end, 0
                h = hashlib.blake2b(digest_size=16)
            h.update(view[used:])
            lines_in += len(newlines)
            pos += len(chunk)
    if last and last != b"\n":
        lines_in += 1  # a last line without a newline
    if lines_in:
        yield _line_part(start_line, start_line + lines_in, start_byte, pos, h)


def _line_part(start: int, stop: int, start_byte: int, stop_byte: int, h: Any) -> dict[str, Any]:
    return {"start": start, "stop": stop, "offset": start_byte, "length": stop_byte - start_byte,
            "digest": h.hexdigest()}


def _parquet_parts(f: InputFile, shard_rows: int) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    fs, _ = filesystem(f.uri)
    try:
        with fs.open_input_file(f.path) as fh:
            meta = pq.ParquetFile(fh).metadata
    except Exception as exc:  # pyarrow raises several types for a non-parquet file
        raise InputError(f"{f.uri}: not a readable parquet file ({str(exc).splitlines()[0][:120]})") from None
    start, groups = 0, []
    for g in range(meta.num_row_groups):
        groups.append(g)
        rows = sum(meta.row_group(i).num_rows for i in groups)
        if rows >= shard_rows or g == meta.num_row_groups - 1:
            ident = json.dumps([f.bytes, f.mtime_ns, groups, rows]).encode()
            yield {"start": start, "stop": start + rows, "row_groups": tuple(groups),
                   "digest": hashlib.blake2b(ident, digest_size=16).hexdigest()}
            start, groups = start + rows, []
