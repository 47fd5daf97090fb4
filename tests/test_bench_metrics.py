"""Benchmark metrics on hand-made cases: NER spans, Spearman with ties, KorQuAD normalisation and EM/F1."""

from __future__ import annotations

import math

import pytest

from distill.bench import metrics as M
from koembed.errors import InputError


def test_accuracy() -> None:
    assert M.accuracy(["1", "0", "1", "1"], ["1", "1", "1", "0"]) == 50.0
    with pytest.raises(ValueError):
        M.accuracy([1], [1, 0])


def test_entity_f1_counts_whole_spans() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    # PER found with the wrong extent (B alone), LOC found, ORG missed, one spurious DAT.
    pred = [["B-PER", "O", "O", "B-LOC"], ["O", "B-DAT"]]
    got = M.entity_f1(pred, gold)
    assert got["precision"] == pytest.approx(100 / 3)  # 1 of 3 predicted spans is right
    assert got["recall"] == pytest.approx(100 / 3)  # 1 of 3 gold spans found
    assert got["f1"] == pytest.approx(100 / 3)
    assert M.entity_f1(gold, gold)["f1"] == 100.0
    # An I- tag that continues a B- of the same type is one span, not two.
    assert M.entity_f1([["B-PER", "I-PER"]], [["B-PER", "I-PER"]])["f1"] == 100.0
    assert M.entity_f1([["B-PER", "B-PER"]], [["B-PER", "I-PER"]])["f1"] == 0.0


def test_correlations_are_koembeds_and_refuse_fewer_than_two_pairs() -> None:
    # The bench scores regression through koembed.stats, the scorer koembed's evaluation uses.
    from distill.bench import finetune
    from koembed import stats

    assert finetune.stats is stats
    # Ranks of x with a tie: 1, 2.5, 2.5, 4 -> r = 4.5 / sqrt(4.5 * 5)
    assert stats.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(100 * 4.5 / math.sqrt(4.5 * 5))
    assert stats.spearman([3, 2, 1], [1, 2, 3]) == pytest.approx(-100.0)
    assert stats.spearman([1, 1, 1], [1, 2, 3]) == 0.0  # a constant prediction ranks nothing
    assert stats.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(100.0)
    # One pair is no score: an error, never a 0 that reads as a result.
    with pytest.raises(InputError, match="at least 2 pairs"):
        stats.spearman([1.0], [2.0])


def test_korquad_normalisation() -> None:
    assert M.normalize_answer("《해리 포터와 마법사의 돌》") == "해리 포터와 마법사의 돌"
    assert M.normalize_answer(" ‘BTS’ (방탄소년단) ") == "bts 방탄소년단"
    assert M.normalize_answer("1989년 2월 15일.") == "1989년 2월 15일"
    assert M.exact_match("1989년 2월 15일", "1989년  2월 15일.")
    assert not M.exact_match("해리포터", "해리 포터")  # EM keeps spaces ...
    assert M.char_f1("해리포터", "해리 포터") == 1.0  # ... character F1 ignores them


def test_korquad_char_f1_and_aggregate() -> None:
    # 임종석이 vs 임종석: 3 common characters, precision 3/4, recall 1.
    assert M.char_f1("임종석이", "임종석") == pytest.approx(2 * 0.75 / 1.75)
    assert M.char_f1("서울", "부산") == 0.0
    golds = {"q1": ["임종석"], "q2": ["1989년", "1989년 2월"], "q3": ["서울"]}
    preds = {"q1": "임종석", "q2": "1989년 2월"}  # q3 unanswered scores 0
    got = M.korquad_em_f1(preds, golds)
    assert got["exact_match"] == pytest.approx(200 / 3)
    assert got["f1"] == pytest.approx(200 / 3)
