"""Read one shard's records on a worker: seek to its byte slice (txt/JSONL) or row groups (Parquet).

Parsing is :mod:`koembed.corpus`'s, given the shard's first line number, so ids, empty-line and
bad-record counts, and error locations are those of reading the whole file in one process.
"""

from __future__ import annotations

import hashlib

from koembed.corpus import PARQUET_BATCH_ROWS, CorpusStats, Record, parquet_records, parse_lines
from koembed.errors import InputError
from koembed.scale.plan import Shard, filesystem
from koembed.text import LineStats, decode_lines


def read_shard(shard: Shard, *, text_field: str = "text", id_field: str = "id", metadata_field: str = "metadata",
               errors: str = "strict", skip_bad: bool = False, stats: CorpusStats | None = None) -> list[Record]:
    """The non-empty records of ``shard``, in file order; refuses a slice whose bytes changed since planning."""
    stats = stats if stats is not None else CorpusStats()
    fields = dict(text_field=text_field, id_field=id_field, metadata_field=metadata_field, skip_bad=skip_bad,
                  stats=stats)
    fs, _ = filesystem(shard.file)
    if shard.fmt == "parquet":
        import pyarrow.parquet as pq

        with fs.open_input_file(shard.path) as fh:
            pf = pq.ParquetFile(fh)
            batches = pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=list(shard.row_groups))
            records = list(parquet_records(batches, shard.file, first_row=shard.start + 1, **fields))
    else:
        with fs.open_input_file(shard.path) as fh:
            fh.seek(shard.offset)
            data = fh.read(shard.length)
        if len(data) != shard.length or hashlib.blake2b(data, digest_size=16).hexdigest() != shard.digest:
            raise InputError(f"{shard.file}: lines {shard.start + 1}-{shard.stop} changed while being encoded; "
                             "rerun when the file no longer changes")
        raw = data.split(b"\n")
        if data.endswith(b"\n"):
            raw.pop()
        line_stats = LineStats()
        lines = decode_lines(raw, shard.file, first_line=shard.start + 1, errors=errors, stats=line_stats)
        records = list(parse_lines(lines, shard.fmt, name=shard.file, first_line=shard.start + 1, **fields))
        stats.replaced += line_stats.replaced
    if shard.id_prefix:
        records = [Record(shard.id_prefix + r.id, r.text, r.metadata, r.line) for r in records]
    return records
