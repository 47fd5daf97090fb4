"""Text in: Unicode normalisation and line-oriented reading with precise error locations.

Korean text arrives both composed (NFC: one code point per syllable) and decomposed (NFD: conjoining
jamo, common from macOS file names and some web sources). Tokenizers trained on NFC text split NFD
input into jamo, so every path into the model goes through :func:`normalize`.
"""

from __future__ import annotations

import io
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from koembed.errors import InputError

BOM = "\ufeff"
# Control characters other than tab/newline confuse tokenizers and terminals alike.
_CONTROL = {c: " " for c in range(32) if c not in (9, 10, 13)} | {0x7F: " "}


def normalize(text: str) -> str:
    """NFC-normalise, drop a BOM and zero-width characters, replace control characters by spaces."""
    if text.startswith(BOM):
        text = text[1:]
    text = text.replace("\u200b", "").replace("\u200d", "").replace(BOM, "")
    return unicodedata.normalize("NFC", text.translate(_CONTROL)).strip()


@dataclass
class LineStats:
    """What a line reader saw: counts are filled while iterating."""

    lines: int = 0
    empty: int = 0
    replaced: int = 0  # lines that had undecodable bytes replaced (errors="replace")


def iter_lines(path: str | Path, errors: str = "strict", stats: LineStats | None = None) -> Iterator[str]:
    """Yield the lines of a UTF-8 file (or ``-`` for stdin) without their line endings, streaming.

    A BOM at the start is ignored. With ``errors="strict"`` an undecodable line raises an
    :class:`InputError` naming the file and the 1-based line number; ``errors="replace"`` carries on
    with U+FFFD and counts the line. Empty lines are yielded (so rows align with lines) and counted.
    """
    if errors not in ("strict", "replace"):
        raise InputError(f"--errors must be 'strict' or 'replace', not {errors!r}")
    name = "<stdin>" if str(path) == "-" else str(path)
    stream = sys.stdin.buffer if str(path) == "-" else _open_binary(path)
    try:
        yield from decode_lines(stream, name, errors=errors, stats=stats)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def decode_lines(raw_lines: Iterable[bytes], name: str, *, first_line: int = 1, errors: str = "strict",
                 stats: LineStats | None = None) -> Iterator[str]:
    """Decode raw lines of ``name`` numbered from ``first_line`` (a slice of a file keeps the file's numbers).

    The rules of :func:`iter_lines`: a BOM is dropped from line 1 only, undecodable bytes raise or are
    replaced and counted.
    """
    if errors not in ("strict", "replace"):
        raise InputError(f"--errors must be 'strict' or 'replace', not {errors!r}")
    stats = stats if stats is not None else LineStats()
    for lineno, raw in enumerate(raw_lines, start=first_line):
        raw = raw.rstrip(b"\r\n")
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if errors == "strict":
                raise InputError(
                    f"{name}: line {lineno} is not valid UTF-8 (byte {exc.start}); "
                    "convert the file to UTF-8 or pass --errors replace"
                ) from None
            line = raw.decode("utf-8", errors="replace")
            stats.replaced += 1
        stats.lines += 1
        if not line.strip():
            stats.empty += 1
        yield line


def _open_binary(path: str | Path) -> io.BufferedReader:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a text file with one text per line")
    try:
        return p.open("rb")
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror})") from None
