"""What an input argument names, before any record is read: one file, a folder of files, or a glob pattern;
and whether a ``.txt`` file is really a table.

- A folder stands for every file under it (recursively, sorted, hidden ones skipped) whose suffix names a
  format koembed reads; a pattern (``docs/*.jsonl``, ``data/**/*.csv``; quote it so the shell passes it
  on) for the files it matches. Each file is read in its own format.
- A ``.txt`` file whose first lines all hold the same number of tabs (NSMC's ``ratings_test.txt``:
  ``id<TAB>document<TAB>label``) is a table: reading each whole line as one text would embed
  ``"9976970<TAB>아 더빙.. 진짜 짜증나네요<TAB>0"``. It is refused with the ``--format tsv`` hint; an
  explicit ``--format txt`` reads it line by line anyway.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from koembed.errors import InputError

GLOB_CHARS = frozenset("*?[")
# Lines looked at to decide that a .txt is a table: enough to be sure, few enough to cost nothing.
TABLE_PROBE_LINES = 200


def is_pattern(path: str) -> bool:
    return any(c in GLOB_CHARS for c in path) and not Path(path).exists()


def is_many(path: str | Path) -> bool:
    """Whether ``path`` names several files (a folder or a glob pattern) rather than one file or stdin."""
    text = str(path)
    return text != "-" and (Path(text).is_dir() or is_pattern(text))


def expand(path: str | Path, suffixes: Sequence[str]) -> list[Path]:
    """The files a folder or pattern names, sorted; a folder keeps those whose suffix is in ``suffixes``.

    Refuses a folder or pattern that matches nothing, naming what it looked for.
    """
    text = str(path)
    if Path(text).is_dir():
        root = Path(text)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
        if not files:
            raise InputError(f"{text}: a folder with no file koembed reads (looked for {', '.join(suffixes)}); "
                             "name the files with a pattern such as 'DIR/*.jsonl'")
        return files
    files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
    if not files:
        raise InputError(f"{text}: no file matches this pattern")
    return files


def table_columns(lines: Sequence[str]) -> list[str] | None:
    """The first line's tab-separated cells when every non-empty line of ``lines`` (two at least) holds the same
    number (>= 1) of tabs, else None."""
    counts = {line.count("\t") for line in lines if line.strip()}
    rows = sum(1 for line in lines if line.strip())
    if rows < 2 or len(counts) != 1 or counts == {0}:
        return None
    first = next(line for line in lines if line.strip())
    return first.split("\t")


def refuse_table(name: str, lines: Sequence[str]) -> None:
    """Refuse a text file (one text a line) whose first lines say it is a tab-separated table."""
    columns = table_columns(lines)
    if columns is None:
        return
    shown = ", ".join(c.strip()[:20] or "''" for c in columns[:8]) + (", ..." if len(columns) > 8 else "")
    rows = sum(1 for line in lines if line.strip())
    raise InputError(
        f"{name}: each of its first {rows} lines holds {len(columns) - 1} tab(s), so it looks like a table, not one "
        f"text a line (first line: {shown}); read it as one with --format tsv --text-field COLUMN (the first line "
        "is the header), or pass --format txt to take each whole line as a text")
