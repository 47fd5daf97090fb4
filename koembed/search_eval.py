"""Evaluating search as a user runs it: an index, a mode (dense, lexical, hybrid), a retrieval task.

The dev/report split used to choose analysers and to tune a model's dense weight lives here, so that
every script tunes on the same half and reports on the other: KorQuAD dev's articles in file order,
the first half of them (their questions) for tuning, the second half for reporting. Both halves search
the whole corpus of paragraphs.
"""

from __future__ import annotations

from pathlib import Path

from koembed.evaluate import RetrievalData, find_task, load_retrieval_data
from koembed.korean_data import read_korquad
from koembed.paths import data_dir as default_data_dir

HALVES = ("tune", "report")


def korquad_halves(data_dir: str | Path | None = None) -> dict[str, RetrievalData]:
    """KorQuAD dev retrieval split by article: ``{"tune": first half, "report": second half}``."""
    data = load_retrieval_data("korquad-retrieval", data_dir)
    titles: dict[str, str] = {}
    for q in read_korquad(default_data_dir(data_dir) / find_task("korquad-retrieval").path):
        titles[q["id"]] = q["title"]
    articles = list(dict.fromkeys(titles[q] for q in data.queries))
    first = set(articles[: (len(articles) + 1) // 2])
    out = {}
    for half in HALVES:
        keep = [q for q in data.queries if (titles[q] in first) == (half == "tune")]
        out[half] = RetrievalData(data.corpus, {q: data.queries[q] for q in keep}, {q: data.qrels[q] for q in keep})
    return out
