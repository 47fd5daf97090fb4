"""Evaluating search as a user runs it: an index, a mode (dense, lexical, hybrid), a retrieval task.

:func:`evaluate_search` indexes a task's corpus with koembed's own index (or takes an index the user
built, matching its hits to the corpus by text) and searches it through :func:`koembed.index.search`,
so the numbers are those of ``koembed index`` + ``koembed search``, defaults included.

The dev/report split used to choose analysers and to tune a model's dense weight lives here too, so
that every script tunes on the same half and reports on the other: KorQuAD dev's articles in file
order, the first half of them (their questions) for tuning, the second half for reporting. Both
halves search the whole corpus of paragraphs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from koembed.backends.prompts import DOCUMENT
from koembed.data.load import read_split
from koembed.errors import InputError
from koembed.evaluate import RetrievalData, find_task, load_retrieval_data, ranking_metrics
from koembed.index.modes import DEFAULT_FUSION
from koembed.lexical.analysers import DEFAULT_ANALYSER
from koembed.lexical.engine import BM25

HALVES = ("tune", "report")
# Hits per query: enough for Recall@100.
EVAL_K = 100


def korquad_halves(data_dir: str | Path | None = None) -> dict[str, RetrievalData]:
    """KorQuAD dev retrieval split by article: ``{"tune": first half, "report": second half}``."""
    data = load_retrieval_data("korquad-retrieval", data_dir)
    titles: dict[str, str] = {}
    task = find_task("korquad-retrieval")
    for q in read_split(task.dataset, task.split, data_dir).rows:
        titles[q["id"]] = q["title"]
    articles = list(dict.fromkeys(titles[q] for q in data.queries))
    first = set(articles[: (len(articles) + 1) // 2])
    out = {}
    for half in HALVES:
        keep = [q for q in data.queries if (titles[q] in first) == (half == "tune")]
        out[half] = RetrievalData(data.corpus, {q: data.queries[q] for q in keep}, {q: data.qrels[q] for q in keep})
    return out


def task_data(task: str, data_dir: str | Path | None = None, half: str | None = None,
              max_samples: int | None = None) -> RetrievalData:
    """A retrieval task's data, optionally one half of KorQuAD dev and/or its first ``max_samples`` queries."""
    if half is not None:
        if find_task(task).name != "korquad-retrieval":
            raise InputError(f"a half (--half) applies to korquad-retrieval only, not {task}")
        if half not in HALVES:
            raise InputError(f"half (--half) must be one of {', '.join(HALVES)}, not {half!r}")
        data = korquad_halves(data_dir)[half]
    else:
        data = load_retrieval_data(task, data_dir)
    if max_samples is not None:
        keep = list(data.queries)[:max_samples]
        data = RetrievalData(data.corpus, {q: data.queries[q] for q in keep}, {q: data.qrels[q] for q in keep})
    return data


def build_corpus_index(directory: str | Path, corpus: dict[str, str], encoder: Any, *,
                       analyser: str | None = DEFAULT_ANALYSER, batch_size: int = 64) -> Any:
    """Index ``corpus`` (id -> text) with ``encoder``'s vectors (its document prompt, as ``koembed index`` does)."""
    from koembed.index import Index

    ids, texts = list(corpus), list(corpus.values())
    index = Index.create(directory, encoder.dim, index_type="auto", expected_count=len(texts),
                         model_name=encoder.model_name, model_fingerprint=encoder.fingerprint,
                         backend=getattr(encoder, "backend_name", None), analyser=analyser,
                         prompts=encoder.role_prompts())
    index.add_vectors(ids, encoder.encode(texts, batch_size=batch_size, prompt=encoder.prompt_for(DOCUMENT)), texts)
    return index


def evaluate_search(data: RetrievalData, *, encoder: Any = None, index: Any = None, mode: str | None = None,
                    dense_weight: float | None = None, fusion: str = DEFAULT_FUSION, batch_size: int = 64,
                    k: int = EVAL_K, analyser: str = DEFAULT_ANALYSER) -> dict[str, Any]:
    """Search ``data``'s queries in ``mode`` and score the rankings (MRR@10, Recall@1/5/10/100, nDCG@10).

    ``index``: an open index or a directory; its hits count as a corpus document when their text is that
    document's text. Without one, lexical mode ranks the corpus with the BM25 engine alone
    (:class:`koembed.lexical.engine.BM25`, ``analyser``), and the other modes index the corpus in a
    temporary folder with ``encoder``. ``mode`` None: the index's default (hybrid where it has a lexical part).
    """
    start = time.perf_counter()
    qids = [q for q in data.queries if q in data.qrels]
    texts = [data.queries[q] for q in qids]
    if index is None and mode == "lexical":
        doc_ids = list(data.corpus)
        rows, _ = BM25.from_texts(list(data.corpus.values()), analyser).search(texts, k)
        rankings = {q: [doc_ids[i] for i in r.tolist()] for q, r in zip(qids, rows, strict=True)}
        used = "lexical"
    else:
        used, rankings = _search_index(data, qids, texts, encoder=encoder, index=index, mode=mode,
                                       dense_weight=dense_weight, fusion=fusion, batch_size=batch_size, k=k,
                                       analyser=analyser)
    metrics = ranking_metrics(rankings, {q: data.qrels[q] for q in qids})
    return metrics | {"mode": used, "queries": len(qids), "corpus": len(data.corpus),
                      "seconds": round(time.perf_counter() - start, 2)}


def _search_index(data: RetrievalData, qids: list[str], texts: list[str], *, encoder: Any, index: Any,
                  mode: str | None, dense_weight: float | None, fusion: str, batch_size: int, k: int,
                  analyser: str) -> tuple[str, dict[str, list[str]]]:
    from koembed.index import Index
    from koembed.index.query import Query, answer

    with tempfile.TemporaryDirectory(prefix="koembed-eval-") as tmp:
        owned = not isinstance(index, Index)
        if index is None:
            if encoder is None:
                raise InputError(f"{mode or 'hybrid'} search evaluation needs an encoder (lexical mode needs none)")
            index = build_corpus_index(Path(tmp) / "ix", data.corpus, encoder, analyser=analyser,
                                       batch_size=batch_size)
        elif owned:
            index = Index.open(index)
        try:
            query = Query(texts=texts, k=k, mode=mode, dense_weight=dense_weight, fusion=fusion)
            used, results = answer(index, query, encoder, batch_size=batch_size)
        finally:
            if owned:
                index.close()
    doc_of_text = {t: d for d, t in data.corpus.items()}
    return used, {q: [doc_of_text.get(h.text, f"(not in corpus) {h.id}") for h in hits]
                  for q, hits in zip(qids, results, strict=True)}
