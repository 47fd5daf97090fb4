"""Text in: validation, Unicode normalisation and line-oriented reading with precise error locations.

Text from outside (request bodies, files, command-line arguments) is checked once where it comes in
(:func:`check_text`, :func:`find_bad_text`): a lone surrogate (JSON ``"\\ud800"``, or an undecodable
byte that Python carried in as U+DC80-U+DCFF) is not text, and past the boundary it breaks the
tokenizer, SQLite and every UTF-8 writer, so it is refused there with the field or file and line named.

Korean text arrives both composed (NFC: one code point per syllable) and decomposed (NFD: conjoining
jamo, common from macOS file names and some web sources). Tokenizers trained on NFC text split NFD
input into jamo, so every path into the model goes through :func:`normalize`.
"""

from __future__ import annotations

import io
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from koembed.errors import InputError

BOM = "\ufeff"
# Control characters other than tab/newline confuse tokenizers and terminals alike.
_CONTROL = {c: " " for c in range(32) if c not in (9, 10, 13)} | {0x7F: " "}
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str, *, from_bytes: bool = False) -> str | None:
    """Why ``text`` is not valid Unicode text, or None: the first lone surrogate, with its position.

    ``from_bytes``: ``text`` was decoded by Python with ``errors="surrogateescape"`` (a command-line
    argument, a file name), where U+DC80-U+DCFF stands for an undecodable byte, and is named as that byte.
    Elsewhere (JSON) a surrogate is a ``\\uD8xx`` escape without its pair.
    """
    if text.isascii():
        return None
    m = _SURROGATE.search(text)
    if m is None:
        return None
    code = ord(m.group())
    if from_bytes and 0xDC80 <= code <= 0xDCFF:
        return (f"holds a byte that is not UTF-8 (0x{code - 0xDC00:02x} at character {m.start()}); "
                "pass UTF-8 text")
    return (f"holds a lone surrogate (U+{code:04X} at character {m.start()}), which is not a character; "
            "send valid Unicode text (a \\uD800-\\uDFFF escape needs its pair)")


def check_text(text: str, where: str, *, from_bytes: bool = False) -> str:
    """``text`` unchanged, or an :class:`InputError` ``"{where}: ..."`` when it is not valid Unicode text.

    ``where`` names the source as the user knows it: ``queries[2]``, ``docs.jsonl: line 7: field text``,
    ``argument QUERY``; ``from_bytes`` as in :func:`text_problem`.
    """
    problem = text_problem(text, from_bytes=from_bytes)
    if problem is not None:
        raise InputError(f"{safe_text(where)}: {problem}")
    return text


def check_texts(texts: Sequence[str], where: str, *, from_bytes: bool = False) -> Sequence[str]:
    """Each of ``texts`` checked as ``{where}[i]``; returns ``texts``."""
    for i, t in enumerate(texts):
        if not t.isascii():
            check_text(t, f"{where}[{i}]", from_bytes=from_bytes)
    return texts


def find_bad_text(value: object, path: str = "") -> tuple[str, str] | None:
    """The first string in a JSON-like value (keys too) that is not valid text: ``(path, problem)``, else None.

    Paths read like request fields: ``queries[0]``, ``filters.lang``; a bad key is named as
    ``filters (a key)``. Deep values are walked without recursion (no depth limit to hit).
    """
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return where or "body", problem
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                if isinstance(key, str) and text_problem(key) is not None:
                    return f"{where or 'body'} (a key)", text_problem(key) or ""
                children.append((child, f"{where}.{key}" if where else str(key)))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


def safe_text(text: str) -> str:
    """``text`` with any surrogate written as an escape (``\\udcff``), so it can be printed or sent as UTF-8."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
