"""Evaluation: STS correlation on cosine similarity, and retrieval ranking metrics.

Tasks are data: :data:`~koembed.data.tasks.TASKS`, shared with the benchmark suite, names each task's
catalogued data set, split and kind; this module runs the ``sts`` and ``retrieval`` kinds.
``run_task(model, "korsts")`` loads (local files, else the Hub: :func:`koembed.data.read_split`),
evaluates, and (optionally) writes the result dict as JSON, atomically.

Any object with ``encode(list[str], batch_size=...) -> array`` works as a model: a
:class:`~koembed.encoder.KoMiniLMEncoder`, a ``SentenceTransformer``, or a TF-IDF baseline. A model
path or Hub id is loaded with ``KoMiniLMEncoder``. Vectors are L2-normalised here, so the
score is always the cosine similarity.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from koembed.atomic import atomic_write_text
from koembed.data.load import read_split
from koembed.data.tasks import EMBEDDING_KINDS, TASKS, Task, find_task
from koembed.errors import InputError
from koembed.korean_data import RowReport, read_korquad
from koembed.stats import pearson, spearman
from koembed.vectors import l2_normalize

DEFAULT_KS = (1, 5, 10, 100)
BATCH_SIZE = 64


@dataclass
class RetrievalData:
    """A retrieval test collection: ``qrels[query_id]`` is the set of relevant corpus ids."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, set[str]]


def korquad_retrieval(path: str | Path, report: RowReport | None = None) -> RetrievalData:
    """A KorQuAD 1.0 file as a retrieval collection (see :func:`qa_retrieval`)."""
    return qa_retrieval(read_korquad(path, report))


def qa_retrieval(questions: Iterable[dict]) -> RetrievalData:
    """KorQuAD rows: each question is a query, its paragraph the one relevant document.

    Paragraphs with identical text are one document (KorQuAD dev repeats a few), so a question is
    never counted wrong for finding the duplicate of its own paragraph.
    """
    corpus: dict[str, str] = {}
    doc_of_text: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, set[str]] = {}
    for q in questions:
        doc_id = doc_of_text.setdefault(q["context"], f"p{len(doc_of_text)}")
        corpus[doc_id] = q["context"]
        queries[q["id"]] = q["question"]
        qrels.setdefault(q["id"], set()).add(doc_id)
    return RetrievalData(corpus, queries, qrels)


def as_encoder(model: Any):
    """A path/Hub id becomes a ``KoMiniLMEncoder``; anything with ``encode`` is used as is."""
    if not isinstance(model, str | Path) and hasattr(model, "encode"):
        return model
    from koembed.encoder import KoMiniLMEncoder

    return KoMiniLMEncoder(model)


def _embed(model: Any, texts: Sequence[str], batch_size: int, role: str = "query") -> np.ndarray:
    """Vectors of ``texts`` as a ``role`` (query, document): a model with prompts puts that role's before each text
    (``encode_query`` / ``encode_document``, as KoMiniLMEncoder and SentenceTransformer name them)."""
    encode = getattr(model, f"encode_{role}", None) or model.encode
    return l2_normalize(encode(list(texts), batch_size=batch_size))


def sts_scores(gold: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    """Spearman and Pearson correlation x100 (NaN-free: a constant prediction scores 0; < 2 pairs raise)."""
    return {"spearman": spearman(predicted, gold), "pearson": pearson(predicted, gold)}


def evaluate_sts(model_or_encoder: Any, pairs: Sequence[dict], batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """Cosine similarity of ``sentence1``/``sentence2`` against ``score``: ``{"spearman", "pearson", "n"}`` (x100)."""
    model = as_encoder(model_or_encoder)
    start = time.perf_counter()
    # Encode each distinct sentence once: STS sets repeat sentences across pairs.
    texts = list(dict.fromkeys(s for p in pairs for s in (p["sentence1"], p["sentence2"])))
    index = {t: i for i, t in enumerate(texts)}
    vecs = _embed(model, texts, batch_size, "query")  # both sides of a pair are queries (symmetric task)
    a = vecs[[index[p["sentence1"]] for p in pairs]]
    b = vecs[[index[p["sentence2"]] for p in pairs]]
    cosine = (a * b).sum(axis=1)
    out = sts_scores([p["score"] for p in pairs], cosine)
    return out | {"n": len(pairs), "seconds": round(time.perf_counter() - start, 2)}


def ranking_metrics(
    rankings: dict[str, Sequence[str]], qrels: dict[str, Iterable[str]], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Recall@k, MRR@10 and nDCG@10 (binary relevance) averaged over the queries in ``qrels``.

    ``rankings[qid]`` lists corpus ids best first (at least ``max(ks)`` long, or the whole corpus). A
    query missing from ``rankings`` scores 0.
    """
    if not qrels:
        raise InputError("retrieval evaluation needs at least one query with a relevant document")
    sums = {f"recall@{k}": 0.0 for k in ks} | {"mrr@10": 0.0, "ndcg@10": 0.0}
    for qid, rel in qrels.items():
        relevant = set(rel)
        ranked = list(rankings.get(qid, ()))
        for k in ks:
            sums[f"recall@{k}"] += len(relevant.intersection(ranked[:k])) / len(relevant)
        first = next((r for r, d in enumerate(ranked[:10], start=1) if d in relevant), None)
        sums["mrr@10"] += 1.0 / first if first else 0.0
        dcg = sum(1.0 / math.log2(r + 1) for r, d in enumerate(ranked[:10], start=1) if d in relevant)
        ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(relevant), 10) + 1))
        sums["ndcg@10"] += dcg / ideal
    return {k: v / len(qrels) for k, v in sums.items()}


def rank_by_scores(scores: np.ndarray, query_ids: Sequence[str], doc_ids: Sequence[str], top_k: int) -> dict:
    """Top-``top_k`` corpus ids per query from a ``(queries, docs)`` score matrix; ties keep corpus order."""
    top_k = min(top_k, scores.shape[1])
    out = {}
    for row, qid in zip(scores, query_ids, strict=True):
        part = np.argpartition(-row, top_k - 1)[:top_k] if top_k < len(row) else np.arange(len(row))
        best = part[np.lexsort((part, -row[part]))]
        out[qid] = [doc_ids[i] for i in best]
    return out


def evaluate_retrieval(
    encoder: Any, corpus: dict[str, str], queries: dict[str, str], qrels: dict[str, Iterable[str]],
    ks: Sequence[int] = DEFAULT_KS, batch_size: int = BATCH_SIZE,
) -> dict[str, Any]:
    """Embed corpus and queries, rank by cosine (exact, numpy), and score with :func:`ranking_metrics`."""
    model = as_encoder(encoder)
    start = time.perf_counter()
    doc_ids, query_ids = list(corpus), [q for q in queries if q in qrels]
    if not doc_ids or not query_ids:
        raise InputError(f"retrieval evaluation needs documents and judged queries; got {len(doc_ids)} documents, "
                         f"{len(query_ids)} queries with qrels")
    docs = _embed(model, [corpus[d] for d in doc_ids], batch_size, "document")
    qs = _embed(model, [queries[q] for q in query_ids], batch_size, "query")
    rankings = rank_by_scores(qs @ docs.T, query_ids, doc_ids, max(max(ks), 10))
    metrics = ranking_metrics(rankings, {q: qrels[q] for q in query_ids}, ks)
    return metrics | {"queries": len(query_ids), "corpus": len(doc_ids),
                      "seconds": round(time.perf_counter() - start, 2)}


def embedding_task(task: Task | str, kind: str | None = None) -> Task:
    """The task (by name) if this module can run it: of an embedding kind (and of ``kind`` when given)."""
    task = find_task(task) if isinstance(task, str) else task
    if task.kind not in EMBEDDING_KINDS:
        names = ", ".join(n for n, t in TASKS.items() if t.kind in EMBEDDING_KINDS)
        raise InputError(f"task {task.name} is a fine-tuning task ({task.kind}), run by the benchmark (distill bench); "
                         f"the embedding tasks are {names}")
    if kind is not None and task.kind != kind:
        other = "load_sts_pairs" if task.kind == "sts" else "load_retrieval_data"
        raise InputError(f"task {task.name} is of kind {task.kind}, not {kind}; load it with {other}")
    return task


def load_sts_pairs(task: Task | str, data_dir: str | Path | None = None, max_samples: int | None = None,
                   report: RowReport | None = None, use_hub: bool = True) -> list[dict]:
    """An STS task's pairs ``{"sentence1", "sentence2", "score"}``, optionally the first ``max_samples`` only."""
    task = embedding_task(task, "sts")
    return read_split(task.dataset, task.split, data_dir, report, use_hub).rows[:max_samples]


def load_retrieval_data(task: Task | str, data_dir: str | Path | None = None, max_samples: int | None = None,
                        report: RowReport | None = None, use_hub: bool = True) -> RetrievalData:
    """A retrieval task's :class:`RetrievalData`, optionally with its first ``max_samples`` queries only."""
    task = embedding_task(task, "retrieval")
    data = qa_retrieval(read_split(task.dataset, task.split, data_dir, report, use_hub).rows)
    if max_samples is None:
        return data
    keep = list(data.queries)[:max_samples]
    return RetrievalData(data.corpus, {q: data.queries[q] for q in keep}, {q: data.qrels[q] for q in keep})


def run_task(
    model: Any, task: str, data_dir: str | Path | None = None, max_samples: int | None = None,
    output_json: str | Path | None = None, batch_size: int = BATCH_SIZE, use_hub: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` on a named task; returns (and optionally writes) ``{"task", "model", metrics...}``."""
    spec = embedding_task(task)  # a fine-tuning task is refused before the model loads
    name, model = _model_name(model), as_encoder(model)
    report = RowReport()
    if spec.kind == "sts":
        pairs = load_sts_pairs(spec, data_dir, max_samples, report, use_hub)
        metrics = evaluate_sts(model, pairs, batch_size=batch_size)
    else:
        data = load_retrieval_data(spec, data_dir, max_samples, report, use_hub)
        metrics = evaluate_retrieval(model, data.corpus, data.queries, data.qrels, batch_size=batch_size)
    result = {"task": spec.name, "model": name, **metrics, "malformed_rows": report.total_bad}
    if output_json is not None:
        save_results(result, output_json)
    return result


def save_results(results: dict[str, Any], path: str | Path) -> Path:
    """Write ``results`` as indented UTF-8 JSON, atomically."""
    atomic_write_text(path, json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    return Path(path)


def _model_name(model: Any) -> str:
    if isinstance(model, str | Path):
        return str(model)
    return str(getattr(model, "model_name", None) or type(model).__name__)
