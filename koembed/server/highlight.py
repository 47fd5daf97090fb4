"""Where a hit's text holds the query's words: character spans from the lexical side's tokens, for the page.

The spans come from the index's analyser (:mod:`koembed.lexical.analysers`; the default ``bigram`` for an
index without a lexical part), so what is marked is what the lexical score counted:

- ``bigram*`` analysers: two letters or digits next to each other once spaces and punctuation are
  dropped, exactly as the analyser pairs them; each pair that is also a pair of the query is marked
  (so ``서울특별시`` marks ``서울`` for the query ``서울 날씨``, and a pair split by a space counts, as in BM25);
- other analysers (``kiwi``): each query token of two or more characters, found as it is written.

Spans are ``[start, end)`` in Python characters (code points) of the text, sorted and merged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from koembed.lexical.analysers import DEFAULT_ANALYSER, get_analyser

_NOT_ALNUM = re.compile(r"[\W_]")


def spans(text: str, query: str, analyser: str | None) -> list[list[int]]:
    """The merged ``[start, end)`` spans of ``text`` that match ``query``'s lexical tokens."""
    name = analyser or DEFAULT_ANALYSER
    tokens = set(get_analyser(name)(query))
    if not tokens:
        return []
    found = _pair_spans(text, tokens) if name.startswith("bigram") else _word_spans(text, tokens)
    return _merge(found)


def _lower(ch: str) -> str:
    return unicodedata.normalize("NFC", ch).lower()[:1] or ch


def _pair_spans(text: str, tokens: set[str]) -> Iterable[tuple[int, int]]:
    kept = [(i, _lower(c)) for i, c in enumerate(text) if not _NOT_ALNUM.match(c)]
    for (i, a), (j, b) in zip(kept, kept[1:], strict=False):
        if a + b in tokens:
            yield i, i + 1
            yield j, j + 1
    singles = {t for t in tokens if len(t) == 1}  # a one-letter query is its own token
    for i, c in kept if singles else ():
        if c in singles:
            yield i, i + 1


def _word_spans(text: str, tokens: set[str]) -> Iterable[tuple[int, int]]:
    low = "".join(_lower(c) for c in text)
    for token in tokens:
        if len(token) < 2:
            continue  # one-syllable endings and particles would mark half the text
        start = low.find(token)
        while start >= 0:
            yield start, start + len(token)
            start = low.find(token, start + 1)


def _merge(found: Iterable[tuple[int, int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for start, end in sorted(found):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out


def add_highlights(response: dict, analysers: dict[str, str | None]) -> dict:
    """``response`` (a /search body) with ``highlights`` spans on every hit; ``analysers``: index name -> analyser."""
    for ix in response["indexes"]:
        analyser = analysers.get(ix["name"])
        for result in ix["results"]:
            for hit in result["hits"]:
                hit["highlights"] = spans(hit["text"], result["query"], analyser)
    return response
