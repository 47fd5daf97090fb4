"""Readers for the Korean named-entity formats; each returns ``[{"tokens": [word, ...], "tags": [BIO tag, ...]}]``.

Tags come out as ``B-PER`` / ``I-PER`` / ``O`` whatever the file writes; character- or morpheme-level
annotation is merged into words. Malformed lines are counted in the :class:`~koembed.row_report.RowReport`.

- Naver NLP Challenge 2018: ``index<TAB>token<TAB>tag`` lines (``PER_B``, ``-``), a blank line between sentences.
- KLUE NER v1.1 TSV: one ``character<TAB>tag`` row per character, ``##`` header lines.
- KMOU NER (2016 KLP): ``; raw`` / ``$tagged`` lines, then ``word-index morph POS tag`` rows.
"""

from __future__ import annotations

from pathlib import Path

from koembed.row_report import RowReport, check_file, report_or_new
from koembed.text import iter_lines, normalize


def _naver_tag(tag: str) -> str:
    # Naver NLP Challenge tags: PER_B / PER_I, and '-' for outside.
    if tag in ("-", "O"):
        return "O"
    kind, _, pos = tag.rpartition("_")
    return f"{pos}-{kind}" if pos in ("B", "I") and kind else tag


def read_naver_ner(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """Naver NER: ``index<TAB>token<TAB>tag`` lines (tags ``PER_B``, ``-``), a blank line between sentences."""
    p, report = check_file(path), report_or_new(report)
    name, out, tokens, tags, start = str(p), [], [], [], 0

    def flush() -> None:
        if tokens:
            out.append({"tokens": list(tokens), "tags": list(tags)})
            report.kept(name)
            tokens.clear()
            tags.clear()

    for lineno, line in enumerate(iter_lines(p, errors="replace"), start=1):
        cols = line.split()
        if not cols:
            flush()
            continue
        if not tokens:
            report.read(name)
            start = lineno
        if len(cols) != 3 or not cols[0].isdigit():
            report.bad(name, lineno, f"expected 'index token tag', found {len(cols)} fields (sentence at line {start})")
            continue
        tokens.append(normalize(cols[1]) or cols[1])
        tags.append(_naver_tag(cols[2]))
    flush()
    return out


def _words_from_units(units: list[tuple[object, str, str]]) -> tuple[list[str], list[str]]:
    """Merge (word id, piece, BIO tag) units (characters or morphemes) into words and word-level tags.

    A word takes the first B- tag among its pieces (an entity starting inside it, e.g. ``경찰은``),
    else the I- tag of its first piece (an entity continuing from the previous word), else O.
    """
    words: list[str] = []
    tags: list[str] = []
    piece_tags: list[list[str]] = []
    last = object()
    for wid, piece, tag in units:
        if wid != last:
            words.append("")
            piece_tags.append([])
            last = wid
        words[-1] += piece
        piece_tags[-1].append(tag)
    for pt in piece_tags:
        b = next((t for t in pt if t.startswith("B-")), None)
        tags.append(b or (pt[0] if pt[0].startswith("I-") else "O"))
    return words, tags


def _sentence_sink(name: str, out: list[dict], report: RowReport):
    """``(units, flush)``: collect (word id, unit, tag) rows; ``flush()`` turns them into one sentence."""
    units: list = []

    def flush() -> None:
        if units:
            words, tags = _words_from_units(units)
            out.append({"tokens": words, "tags": tags})
            report.kept(name)
            units.clear()

    return units, flush


def read_klue_ner(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """KLUE NER TSV: ``## id<TAB>annotated sentence`` header, one ``char<TAB>tag`` row per character
    (spaces included), blank line between sentences; characters are merged into words."""
    p, report = check_file(path), report_or_new(report)
    name, out, wid = str(p), [], 0
    units, flush = _sentence_sink(name, out, report)

    for lineno, line in enumerate(iter_lines(p, errors="replace"), start=1):
        if line.startswith("##"):
            continue
        if not line.strip("\n\r"):
            flush()
            continue
        if not units:
            report.read(name)
        char, sep, tag = line.rstrip("\r\n").rpartition("\t")
        if not sep or len(char) != 1:
            report.bad(name, lineno, "expected 'character<TAB>tag'")
            continue
        if char.isspace():
            wid += 1
            continue
        units.append((wid, char, tag.strip()))
    flush()
    return out


def read_kmou_ner(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """KMOU NER (2016 KLP): ``; raw`` and ``$tagged`` lines, then ``word-index morph POS tag`` rows (``B_PS``);
    morphemes are merged into words by their index."""
    p, report = check_file(path), report_or_new(report)
    name, out = str(p), []
    units, flush = _sentence_sink(name, out, report)

    for lineno, line in enumerate(iter_lines(p, errors="replace"), start=1):
        if line.startswith(";") or not line.strip():
            flush()
            continue
        if line.startswith("$"):
            report.read(name)
            continue
        cols = line.split("\t")
        if len(cols) != 4:
            report.bad(name, lineno, f"expected 4 tab-separated columns, found {len(cols)}")
            continue
        units.append((cols[0], cols[1], cols[3].strip().replace("_", "-")))
    flush()
    return out
