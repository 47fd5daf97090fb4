"""Benchmark metrics, all on a 0-100 scale like the KoMiniLM table.

- ``accuracy``: share of exact label matches.
- ``entity_f1``: entity-level F1 over BIO tags (seqeval's CoNLL-style span matching).
- ``spearman`` / ``pearson``: :mod:`koembed.stats` (x100, ties get average ranks), the same scores
  koembed's evaluation reports.
- ``korquad_em_f1``: KorQuAD 1.0's official scoring: answers normalised (quotes, brackets and ASCII
  punctuation removed, lower-cased, whitespace collapsed), EM on the normalised string and F1 on
  *characters* (spaces ignored), each the best over the gold answers, averaged over questions.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np


def accuracy(predictions: Sequence, labels: Sequence) -> float:
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        return 0.0
    return 100.0 * float(np.mean([p == t for p, t in zip(predictions, labels, strict=True)]))


def entity_f1(predictions: Sequence[Sequence[str]], labels: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level precision/recall/F1 x100 for BIO-tagged sentences (``B-PER I-PER O ...``)."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    preds, golds = [list(p) for p in predictions], [list(t) for t in labels]
    for i, (p, t) in enumerate(zip(preds, golds, strict=True)):
        if len(p) != len(t):
            raise ValueError(f"sentence {i}: {len(p)} predicted tags for {len(t)} gold tags")
    kwargs = {"zero_division": 0}
    return {
        "f1": 100.0 * float(f1_score(golds, preds, **kwargs)),
        "precision": 100.0 * float(precision_score(golds, preds, **kwargs)),
        "recall": 100.0 * float(recall_score(golds, preds, **kwargs)),
    }


_KORQUAD_SYMBOLS = re.compile("['\"《》<>〈〉()‘’]")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """KorQuAD 1.0 normalisation: symbols -> space, drop ASCII punctuation, lower-case, collapse spaces."""
    text = _KORQUAD_SYMBOLS.sub(" ", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(gold)


def char_f1(prediction: str, gold: str) -> float:
    """F1 over the characters of the normalised answers, spaces ignored (Korean words carry particles)."""
    pred_chars = list(normalize_answer(prediction).replace(" ", ""))
    gold_chars = list(normalize_answer(gold).replace(" ", ""))
    common = sum((Counter(pred_chars) & Counter(gold_chars)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_chars), common / len(gold_chars)
    return 2 * precision * recall / (precision + recall)


def korquad_em_f1(predictions: dict[str, str], golds: dict[str, Sequence[str]]) -> dict[str, float]:
    """EM and F1 x100 over the questions in ``golds`` (a question without a prediction scores 0)."""
    if not golds:
        return {"exact_match": 0.0, "f1": 0.0}
    em = f1 = 0.0
    for qid, answers in golds.items():
        pred = predictions.get(qid, "")
        answers = list(answers) or [""]
        em += max(float(exact_match(pred, a)) for a in answers)
        f1 += max(char_f1(pred, a) for a in answers)
    return {"exact_match": 100.0 * em / len(golds), "f1": 100.0 * f1 / len(golds)}
