"""One record of an input: its fields, the rules that make its id, text and metadata, and what a reader counts.

Ids are kept exactly as written: no trimming, no Unicode normalisation, so ids that only look alike
(``"a"`` and ``"a "``, NFC and NFD forms) are different documents and nothing merges silently. A number
is written in decimal: ``123`` and ``"123"`` are the same id, and ``2.0`` is ``"2"``. A blank id, an
explicit ``null``, a boolean, an object or a non-finite number is a bad record; a missing id field
(or no id column) numbers the records by line or row instead. With ``CorpusStats(track_ids=True)`` an
id that repeats within one input is counted and located (the last record wins when indexing).

A record's other fields (JSON) or columns (tables) join its metadata; a name that is both a field and a
key of its metadata object is a bad record, since keeping either value would drop the other silently.
"""

from __future__ import annotations

import json
import math
from array import array
from dataclasses import dataclass, field
from typing import Any

from koembed.errors import InputError
from koembed.text import normalize, text_problem

MAX_BAD_LOCATIONS = 5


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


@dataclass(frozen=True)
class Fields:
    text: str
    id: str
    metadata: str


class Bad(Exception):
    """A record-level problem: fatal, or skipped and counted with skip_bad."""


def emit(stats: CorpusStats, id_: str, text: Any, metadata: dict[str, Any], line: int) -> Record | None:
    clean = normalize(text)
    if not clean:
        stats.empty += 1
        return None
    stats.read += 1
    stats.note_id(id_, line)
    return Record(id=id_, text=clean, metadata=metadata, line=line)


def handle_bad(exc: Bad, where: str, skip_bad: bool, stats: CorpusStats) -> None:
    if not skip_bad:
        raise InputError(f"{where}: {exc}; fix the record or pass --skip-bad to skip and count such records") from None
    stats.note_bad(where)


def check_strings(value: str, where: str) -> None:
    problem = text_problem(value)
    if problem is not None:
        raise Bad(f"{where} {problem}")


def merged(others: dict[str, Any], metadata: dict[str, Any], metadata_field: str) -> dict[str, Any]:
    """A record's other fields (or columns) joined to its metadata object; a name in both is a bad record, since
    keeping either value would drop the other silently."""
    if not others:
        return metadata
    both = sorted(set(others) & set(metadata))
    if both:
        raise Bad(f"{both[0]!r} is both a field of the record and a key of its {metadata_field!r} object; rename "
                   "one")
    return others | metadata


def text_value(value: Any, where: str) -> str:
    if not isinstance(value, str):
        what = "missing" if value is None else f"not a string ({type(value).__name__})"
        raise Bad(f"{where} is {what}")
    return value


MISSING = object()  # no id field at all (unlike an explicit null)


def id_value(value: Any, id_field: str, fallback: int, prefix: str = "") -> str:
    """The id by the rule in the module docstring: strings exactly, numbers in decimal, the line if absent."""
    if value is MISSING:
        return f"{prefix}{fallback}"
    if value is None:
        raise Bad(f"id field {id_field!r} is null; give the record an id, or leave the field out of every "
                   "record to number them by line")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Bad(f"id field {id_field!r} must be a string or number, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Bad(f"id field {id_field!r} is {value}, not a usable id")
        value = int(value) if value.is_integer() else value
    id_ = str(value)
    if not id_.strip():
        raise Bad(f"id field {id_field!r} is blank")
    return id_


def metadata_object(value: Any, metadata_field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            raise Bad(f"metadata field {metadata_field!r} is not a JSON object") from None
    if not isinstance(value, dict):
        raise Bad(f"metadata field {metadata_field!r} must be an object, got {type(value).__name__}")
    return value
