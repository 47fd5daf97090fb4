"""The bookkeeping every data reader shares: rows read, kept and malformed per file (:class:`RowReport`),
and the checked reading of tab-separated rows that counts into it.

A reader never crashes on one bad row and never drops one silently: it records the file, line and
reason here, and the caller prints ``report.summary()`` or calls ``report.raise_if_empty()``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from koembed.errors import InputError
from koembed.text import LineStats, iter_lines, normalize


@dataclass
class BadRow:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class FileCounts:
    read: int = 0
    kept: int = 0
    bad: int = 0


@dataclass
class RowReport:
    """Per-file row counts and the malformed rows that were skipped (shared across readers)."""

    files: dict[str, FileCounts] = field(default_factory=dict)
    bad_rows: list[BadRow] = field(default_factory=list)
    max_kept_examples: int = 1000  # bad rows beyond this are counted but not listed

    def _counts(self, file: str) -> FileCounts:
        return self.files.setdefault(file, FileCounts())

    def read(self, file: str) -> None:
        self._counts(file).read += 1

    def kept(self, file: str) -> None:
        self._counts(file).kept += 1

    def bad(self, file: str, line: int, reason: str) -> None:
        self._counts(file).bad += 1
        if len(self.bad_rows) < self.max_kept_examples:
            self.bad_rows.append(BadRow(file, line, reason))

    @property
    def total_bad(self) -> int:
        return sum(c.bad for c in self.files.values())

    def summary(self) -> str:
        """One line per file: rows read/kept/bad, and the first bad rows of that file."""
        lines = []
        for name, c in self.files.items():
            line = f"{name}: {c.read} rows read, {c.kept} kept, {c.bad} malformed"
            examples = [b for b in self.bad_rows if b.file == name][:3]
            if examples:
                line += " (e.g. " + "; ".join(f"line {b.line}: {b.reason}" for b in examples) + ")"
            lines.append(line)
        return "\n".join(lines)

    def raise_if_empty(self, file: str | Path) -> None:
        c = self.files.get(str(file))
        if c is not None and c.read and not c.kept:
            raise InputError(f"{file}: none of its {c.read} rows could be used; {self.summary().splitlines()[-1]}")


def report_or_new(report: RowReport | None) -> RowReport:
    return report if report is not None else RowReport()


def check_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file" + (" (it is a directory)" if p.is_dir() else ""))
    return p


def tsv_rows(path: Path, skip_header: bool, report: RowReport) -> Iterator[tuple[int, list[str]]]:
    """(line number, columns) of a tab-separated file read with quoting disabled; blank lines skipped.

    A line with bytes that are not UTF-8 is counted as read and malformed here, and not yielded.
    """
    stats = LineStats()
    for lineno, line in enumerate(iter_lines(path, errors="replace", stats=stats), start=1):
        replaced, stats.replaced = stats.replaced, 0
        if (skip_header and lineno == 1) or not line.strip():
            continue
        if replaced:
            report.read(str(path))
            report.bad(str(path), lineno, "not valid UTF-8")
            continue
        yield lineno, next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))


def tsv_table(p: Path, report: RowReport, ncols: int, skip_header: bool, columns: str = "") -> Iterator[
        tuple[int, list[str]]]:
    """The rows of a TSV that have exactly ``ncols`` columns, each counted as read; other rows reported."""
    name = str(p)
    for lineno, cols in tsv_rows(p, skip_header, report):
        report.read(name)
        if len(cols) != ncols:
            report.bad(name, lineno, f"expected {ncols} tab-separated columns{columns}, found {len(cols)}")
            continue
        yield lineno, cols


def checked_pair(report: RowReport, name: str, lineno: int, s1: str, s2: str) -> tuple[str, str] | None:
    a, b = normalize(s1), normalize(s2)
    if not a or not b:
        report.bad(name, lineno, f"empty sentence{'1' if not a else '2'}")
        return None
    return a, b


def parse_score(report: RowReport, name: str, lineno: int, raw: Any, lo: float = 0.0, hi: float = 5.0) -> float | None:
    try:
        score = float(raw)
    except (TypeError, ValueError):
        report.bad(name, lineno, f"score {raw!r} is not a number")
        return None
    if math.isnan(score) or not lo <= score <= hi:
        report.bad(name, lineno, f"score {raw!r} outside [{lo:g}, {hi:g}]")
        return None
    return score
