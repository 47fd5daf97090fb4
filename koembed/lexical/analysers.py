"""Korean analysers for lexical search: text -> tokens, the same at index and at query time.

An analyser is named, and its name is recorded in an index's manifest, because tokens made by one
analyser mean nothing to an index built with another.

``bigram`` (the default) NFC-normalises and lower-cases the text, keeps its letters and digits (spaces,
punctuation and symbols dropped) and splits them into overlapping character bigrams over the text *with
the spaces removed*. Korean web text is spaced inconsistently (``맛있는한국음식`` / ``맛있는 한국 음식``);
bigrams across the removed spaces make both spellings give the same tokens. Text with a single letter
or digit gives that character as its token. ``examples/benchmarks/lexical_engines.py`` measured the
variants on KorQuAD dev (``docs/search.md``); ``bigram`` was best on the tuning half, and the two
runners-up are kept by name: ``bigram-runs`` (runs of ASCII letters and digits kept whole, ``iphone``,
``2018``) and ``bigram-raw`` (every non-space character, punctuation included).

``kiwi`` gives the morphemes found by Kiwi (``kiwipiepy``, the optional extra ``koembed[kiwi]``),
without punctuation and symbols, lower-cased.

Every token consists of letters and digits only (``bigram-raw`` aside), so an engine that splits text
on punctuation (SQLite FTS5's ``unicode61``, measured as an alternative) keeps each token whole.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from koembed.errors import MissingExtraError
from koembed.registry import Registry

DEFAULT_ANALYSER = "bigram"


@dataclass(frozen=True)
class Analyser:
    """A named text -> tokens function; ``many`` may batch (Kiwi runs a batch in parallel)."""

    name: str
    description: str
    tokenize: Callable[[str], list[str]]
    batch: Callable[[list[str]], list[list[str]]] | None = None

    def __call__(self, text: str) -> list[str]:
        return self.tokenize(text)

    def check(self) -> None:
        """Raise now what tokenising would raise later (an optional dependency that is missing)."""
        self.tokenize("가")

    def many(self, texts: Iterable[str]) -> list[list[str]]:
        texts = list(texts)
        if self.batch is not None:
            return self.batch(texts)
        return [self.tokenize(t) for t in texts]


def _prepare(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower()


def _bigrams(chars: str) -> list[str]:
    if len(chars) == 1:
        return [chars]
    return [chars[i : i + 2] for i in range(len(chars) - 1)]


@lru_cache(maxsize=65536)
def _kind(ch: str) -> int:
    """0: dropped (space, punctuation, symbols), 1: ASCII letter/digit, 2: any other letter/number."""
    if ch.isascii():
        return 1 if ch.isalnum() else 0
    cat = unicodedata.category(ch)
    return 2 if cat[0] in "LNM" else 0


def bigram_runs_tokens(text: str) -> list[str]:
    """Whole ASCII letter/digit runs, plus bigrams over the remaining letters with spaces and punctuation removed."""
    runs: list[str] = []
    other: list[str] = []
    run: list[str] = []
    for ch in _prepare(text):
        kind = _kind(ch)
        if kind == 1:
            run.append(ch)
            continue
        if run:
            runs.append("".join(run))
            run = []
        if kind == 2:
            other.append(ch)
    if run:
        runs.append("".join(run))
    return (_bigrams("".join(other)) if other else []) + runs


def bigram_raw_tokens(text: str) -> list[str]:
    """Bigrams over every non-space character (punctuation included), as the issue's first measurement."""
    chars = "".join(_prepare(text).split())
    return _bigrams(chars) if chars else []


# Everything but letters and digits (str.isalnum); "_" is a word character to re, not a letter.
_NOT_ALNUM = re.compile(r"[\W_]+")


def bigram_tokens(text: str) -> list[str]:
    """Bigrams over the letters and digits of the text (spaces and punctuation dropped)."""
    chars = _NOT_ALNUM.sub("", _prepare(text))
    return _bigrams(chars) if chars else []


# Kiwi tags of punctuation and symbols (S* except foreign words, Hanja and numbers). URLs, e-mails,
# hashtags and the like are kept, reduced to their letters and digits like every other form.
_KIWI_DROP = frozenset({"SF", "SP", "SS", "SSO", "SSC", "SE", "SO", "SW", "SB", "W_EMOJI"})


@lru_cache(maxsize=1)
def _kiwi():  # kiwipiepy is optional, so its type cannot be named here
    try:
        from kiwipiepy import Kiwi
    except ImportError:
        raise MissingExtraError("the 'kiwi' analyser needs kiwipiepy: pip install 'koembed[kiwi]'") from None
    return Kiwi()


def _kiwi_forms(tokens: Iterable) -> list[str]:
    out = []
    for t in tokens:
        if t.tag in _KIWI_DROP:
            continue
        form = "".join(ch for ch in t.form.lower() if _kind(ch))
        if form:
            out.append(form)
    return out


def kiwi_tokens(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text)
    return _kiwi_forms(_kiwi().tokenize(text)) if text.strip() else []


def kiwi_batch(texts: list[str]) -> list[list[str]]:
    texts = [unicodedata.normalize("NFC", t) for t in texts]
    kiwi = _kiwi()
    return [_kiwi_forms(toks) if t.strip() else [] for t, toks in zip(texts, kiwi.tokenize(texts), strict=True)]


ANALYSERS: Registry[Analyser] = Registry(
    "analyser",
    [
        ("bigram", Analyser("bigram", "character bigrams over the letters and digits, spaces and punctuation removed",
                            bigram_tokens)),
        ("bigram-runs", Analyser("bigram-runs", "as bigram, but runs of ASCII letters and digits kept whole",
                                 bigram_runs_tokens)),
        ("bigram-raw", Analyser("bigram-raw", "character bigrams over every non-space character",
                                bigram_raw_tokens)),
        ("kiwi", Analyser("kiwi", "Kiwi morphemes without punctuation (pip install 'koembed[kiwi]')",
                          kiwi_tokens, kiwi_batch)),
    ],
)


def get_analyser(name: str) -> Analyser:
    """The analyser called ``name``; an unknown name raises InputError with suggestions."""
    return ANALYSERS.get(name)
