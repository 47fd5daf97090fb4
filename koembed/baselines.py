"""Lexical baselines: TF-IDF character n-grams, the floor every embedding model must beat.

``TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)`` with cosine
similarity. Fit on KorSTS train sentences it gives the 65.91 KorSTS test Spearman quoted for this
project (65.27 with ``sublinear_tf=False``). Scores go through the same metric code as the neural
models (:func:`koembed.evaluate.sts_scores`, :func:`koembed.evaluate.ranking_metrics`).
scikit-learn is needed (``pip install scikit-learn``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from koembed.errors import MissingExtraError
from koembed.evaluate import DEFAULT_KS, RetrievalData, rank_by_scores, ranking_metrics, sts_scores


def char_tfidf(texts: Sequence[str], sublinear_tf: bool = True):
    """A fitted ``char_wb`` 1-3 gram TfidfVectorizer (rows come out L2-normalised, so dot = cosine)."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError:
        raise MissingExtraError("the TF-IDF baseline needs scikit-learn: pip install scikit-learn") from None
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=sublinear_tf).fit(texts)


def tfidf_sts(pairs: Sequence[dict], fit_texts: Sequence[str], sublinear_tf: bool = True) -> dict[str, Any]:
    """Spearman/Pearson x100 of TF-IDF cosine on ``pairs`` (dicts with sentence1, sentence2, score)."""
    vec = char_tfidf(fit_texts, sublinear_tf)
    a = vec.transform([p["sentence1"] for p in pairs])
    b = vec.transform([p["sentence2"] for p in pairs])
    cosine = a.multiply(b).sum(axis=1).A1
    return sts_scores([p["score"] for p in pairs], cosine) | {"n": len(pairs)}


def tfidf_retrieval(data: RetrievalData, ks: Sequence[int] = DEFAULT_KS, sublinear_tf: bool = True) -> dict[str, Any]:
    """Recall@k / MRR@10 / nDCG@10 of TF-IDF cosine, the vectorizer fit on the corpus being searched."""
    doc_ids = list(data.corpus)
    query_ids = [q for q in data.queries if q in data.qrels]
    vec = char_tfidf([data.corpus[d] for d in doc_ids], sublinear_tf)
    docs = vec.transform([data.corpus[d] for d in doc_ids])
    qs = vec.transform([data.queries[q] for q in query_ids])
    rankings = rank_by_scores((qs @ docs.T).toarray(), query_ids, doc_ids, max(max(ks), 10))
    return ranking_metrics(rankings, {q: data.qrels[q] for q in query_ids}, ks) | {
        "queries": len(query_ids), "corpus": len(doc_ids)}
