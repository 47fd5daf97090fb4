"""TF-IDF character n-gram baseline: KorSTS Spearman and KorQuAD dev retrieval, the floor every model must beat.

``TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)``, cosine similarity.
For STS it is fit on KorSTS train sentences; this is the setting that gives the 65.91 KorSTS test
Spearman quoted in the project's issue (with plain term counts, ``sublinear_tf=False``, it is 65.27).
For retrieval it is fit on the paragraphs being searched. Scores go through the same metric code as the neural models
(:func:`koembed.evaluate.sts_scores`, :func:`koembed.evaluate.ranking_metrics`).

    python examples/benchmarks/tfidf_baseline.py [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from koembed.evaluate import (
    DEFAULT_KS,
    RetrievalData,
    load_task_data,
    rank_by_scores,
    ranking_metrics,
    save_results,
    sts_scores,
)
from koembed.korean_data import read_korsts
from koembed.paths import data_dir as default_data_dir


def char_tfidf(texts: Sequence[str], sublinear_tf: bool = True):
    """A fitted ``char_wb`` 1-3 gram TfidfVectorizer (rows come out L2-normalised, so dot = cosine)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=sublinear_tf).fit(texts)


def tfidf_sts(pairs: Sequence[dict], fit_texts: Sequence[str], sublinear_tf: bool = True) -> dict[str, Any]:
    """Spearman/Pearson x100 of TF-IDF cosine on ``pairs`` (dicts with sentence1, sentence2, score)."""
    vec = char_tfidf(fit_texts, sublinear_tf)
    a = vec.transform([p["sentence1"] for p in pairs])
    b = vec.transform([p["sentence2"] for p in pairs])
    cosine = a.multiply(b).sum(axis=1).A1
    return sts_scores([p["score"] for p in pairs], cosine) | {"n": len(pairs)}


def tfidf_retrieval(data: RetrievalData, ks: Sequence[int] = DEFAULT_KS, sublinear_tf: bool = True) -> dict[str, Any]:
    """Recall@k / MRR@10 / nDCG@10 of TF-IDF cosine, fit on the corpus."""
    doc_ids = list(data.corpus)
    query_ids = [q for q in data.queries if q in data.qrels]
    vec = char_tfidf([data.corpus[d] for d in doc_ids], sublinear_tf)
    docs = vec.transform([data.corpus[d] for d in doc_ids])
    qs = vec.transform([data.queries[q] for q in query_ids])
    scores = (qs @ docs.T).toarray()
    rankings = rank_by_scores(scores, query_ids, doc_ids, max(max(ks), 10))
    return ranking_metrics(rankings, {q: data.qrels[q] for q in query_ids}, ks) | {
        "queries": len(query_ids), "corpus": len(doc_ids)}


def run(data_dir: str | Path | None = None) -> dict[str, Any]:
    root = default_data_dir(data_dir)
    train = read_korsts(root / "korsts" / "sts-train.tsv")
    fit_texts = [s for p in train for s in (p["sentence1"], p["sentence2"])]
    results: dict[str, Any] = {"model": "tfidf char_wb 1-3, sublinear_tf"}
    for task in ("korsts-test", "korsts-dev", "klue-sts"):
        start = time.perf_counter()
        results[task] = tfidf_sts(load_task_data(task, root), fit_texts)
        results[task]["seconds"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    results["korquad-retrieval"] = tfidf_retrieval(load_task_data("korquad-retrieval", root))
    results["korquad-retrieval"]["seconds"] = round(time.perf_counter() - start, 2)
    results["korsts-test (sublinear_tf=False)"] = tfidf_sts(load_task_data("korsts-test", root), fit_texts, False)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args()
    results = run(args.data_dir)
    if args.json:
        save_results(results, args.json)
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
