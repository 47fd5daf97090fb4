"""Evaluation metrics on hand-made cases, the KorQuAD collection builder, and tasks on real data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from koembed.errors import InputError
from koembed.evaluate import (
    TASKS,
    evaluate_retrieval,
    evaluate_sts,
    find_task,
    korquad_retrieval,
    load_retrieval_data,
    load_sts_pairs,
    rank_by_scores,
    ranking_metrics,
    run_task,
    sts_scores,
)
from koembed.registry import Registry


class LookupEncoder:
    """Vectors from a fixed table: lets a test decide exactly what the ranking is."""

    def __init__(self, table: dict[str, list[float]]):
        self.table = table

    def encode(self, texts, batch_size=64):
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def test_ranking_metrics_hand_made() -> None:
    qrels = {"q1": {"d1"}, "q2": {"d2", "d3"}, "q3": {"d9"}}
    rankings = {"q1": ["d1", "d2", "d3"], "q2": ["d1", "d3", "d4", "d2"], "q3": ["d1", "d2"]}
    m = ranking_metrics(rankings, qrels, ks=(1, 2, 10))
    assert m["recall@1"] == pytest.approx((1 + 0 + 0) / 3)
    assert m["recall@2"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["recall@10"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    # q2: relevant at ranks 2 and 4; ideal has them at 1 and 2.
    ndcg_q2 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert m["ndcg@10"] == pytest.approx((1 + ndcg_q2 + 0) / 3)


def test_ranking_ignores_hits_past_the_cutoff() -> None:
    ranked = [f"d{i}" for i in range(20)]
    m = ranking_metrics({"q": ranked}, {"q": {"d12"}}, ks=(10, 20))
    assert m["recall@10"] == 0 and m["mrr@10"] == 0 and m["ndcg@10"] == 0 and m["recall@20"] == 1


def test_rank_by_scores_orders_and_breaks_ties_by_corpus_order() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [1.0, 0.0, 0.0, 0.0]])
    r = rank_by_scores(scores, ["a", "b"], ["d0", "d1", "d2", "d3"], top_k=3)
    assert r == {"a": ["d1", "d3", "d2"], "b": ["d0", "d1", "d2"]}


def test_evaluate_retrieval_with_known_vectors() -> None:
    table = {"doc a": [1, 0, 0], "doc b": [0, 1, 0], "doc c": [0, 0, 1],
             "find a": [0.9, 0.1, 0], "find b": [0.6, 0.5, 0], "find c": [0, 0.2, 0.1]}
    corpus = {"a": "doc a", "b": "doc b", "c": "doc c"}
    queries = {"qa": "find a", "qb": "find b", "qc": "find c", "unjudged": "find a"}
    qrels = {"qa": {"a"}, "qb": {"b"}, "qc": {"c"}}
    m = evaluate_retrieval(LookupEncoder(table), corpus, queries, qrels, ks=(1, 3))
    assert m["queries"] == 3 and m["corpus"] == 3
    assert m["recall@1"] == pytest.approx(1 / 3)  # qb ranks a first, qc ranks b first
    assert m["mrr@10"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["recall@3"] == 1.0


def test_sts_scores_sanity() -> None:
    gold = [0.0, 1.0, 2.5, 4.0, 5.0]
    assert sts_scores(gold, gold)["spearman"] == pytest.approx(100)
    assert sts_scores(gold, [-g for g in gold])["spearman"] == pytest.approx(-100)
    assert sts_scores(gold, [1, 1, 1, 1, 1]) == {"spearman": 0.0, "pearson": 0.0}
    with pytest.raises(InputError):
        sts_scores([1.0], [1.0])


def test_evaluate_sts_uses_cosine() -> None:
    table = {"x": [1, 0], "same": [2, 0], "orth": [0, 3], "mid": [1, 1]}
    pairs = [{"sentence1": "x", "sentence2": "same", "score": 5.0},
             {"sentence1": "x", "sentence2": "mid", "score": 2.5},
             {"sentence1": "x", "sentence2": "orth", "score": 0.0}]
    out = evaluate_sts(LookupEncoder(table), pairs)
    assert out["spearman"] == pytest.approx(100) and out["n"] == 3


def test_korquad_builder_dedupes_paragraphs(tmp_path: Path) -> None:
    para = {"context": "같은 문단", "qas": [{"id": "1", "question": "질문 하나?", "answers": []}]}
    para2 = {"context": "같은 문단", "qas": [{"id": "2", "question": "질문 둘?", "answers": []}]}
    other = {"context": "다른 문단", "qas": [{"id": "3", "question": "질문 셋?", "answers": []}]}
    f = tmp_path / "kq.json"
    f.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [para, para2, other]}]}), encoding="utf-8")
    data = korquad_retrieval(f)
    assert len(data.corpus) == 2 and data.qrels["1"] == data.qrels["2"] != data.qrels["3"]


def test_task_registry_and_unknown_task(tmp_path: Path) -> None:
    # One registry with the benchmark: KorSTS is one task (its test split), korsts-test its alias.
    assert find_task("korsts") is TASKS["korsts"] is find_task("korsts-test") and TASKS["korsts"].split == "test"
    assert find_task("klue-sts-dev") is TASKS["klue-sts"] and TASKS["korsts-dev"].split == "dev"
    assert {"sts", "retrieval", "classification"} <= {t.kind for t in TASKS.values()}
    with pytest.raises(InputError, match="unknown evaluation task 'korsts-tset'; did you mean korsts-test"):
        find_task("korsts-tset")
    with pytest.raises(ValueError, match="registered twice"):
        Registry("evaluation task", [("a", 1), ("a", 2)])
    with pytest.raises(ValueError, match="clashes"):
        Registry("evaluation task", [("a", 1), ("b", 2)], aliases={"b": "a"})
    # One loader per kind, so each returns one type; the wrong kind is refused before any file is read.
    with pytest.raises(InputError, match="korquad-retrieval is of kind retrieval, not sts; load it with load_retr"):
        load_sts_pairs("korquad-retrieval", tmp_path)
    with pytest.raises(InputError, match="korsts-dev is of kind sts, not retrieval; load it with load_sts_pairs"):
        load_retrieval_data("korsts-dev", tmp_path)
    # A benchmark task needs fine-tuning: refused by name, before any model is loaded.
    with pytest.raises(InputError, match="nsmc is a fine-tuning task .*distill bench.*korsts-dev"):
        run_task(object(), "nsmc", tmp_path)


def test_every_task_reads_a_catalogued_split_of_its_kind() -> None:
    from koembed.data.catalogue import CATALOGUE
    from koembed.korean_data import FORMATS

    rows_of_kind = {"sts": {"sts"}, "retrieval": {"qa"}, "qa": {"qa"}, "token": {"ner"},
                    "classification": {"nli", "pairs", "labelled"}}
    for name, task in TASKS.items():
        ds = CATALOGUE[task.dataset]
        assert FORMATS[ds.format].rows in rows_of_kind[task.kind], name
        # The scored split exists, or the benchmark can carve it (its tasks only).
        assert task.split in ds.splits or task.hyper is not None, name


def test_missing_data_names_the_files_and_the_hub(tmp_path: Path) -> None:
    # Nothing local and the Hub unreachable (tests run with HF_HUB_OFFLINE=1): one error saying both.
    with pytest.raises(InputError, match=r"korsts test: .*/sts-test.tsv not found; Hub dataset kakaobrain/kor_nlu"):
        load_sts_pairs("korsts", tmp_path)
    with pytest.raises(InputError, match=r"sts-test.tsv not found \(Hub download off\)"):
        load_sts_pairs("korsts", tmp_path, use_hub=False)
    with pytest.raises(InputError, match="data folder .*nowhere does not exist"):
        load_sts_pairs("korsts", tmp_path / "nowhere")


def test_run_task_on_real_data_writes_json(data_dir: Path, tiny_encoder, tmp_path: Path) -> None:
    out = tmp_path / "res.json"
    from scipy.stats import spearmanr

    r = run_task(tiny_encoder, "korsts-dev", data_dir, max_samples=100, output_json=out)
    assert json.loads(out.read_text(encoding="utf-8"))["spearman"] == pytest.approx(r["spearman"])
    # The same scores computed here without the evaluation code: cosine of each pair, then Spearman.
    pairs = load_sts_pairs("korsts-dev", data_dir, max_samples=100)
    texts = list(dict.fromkeys(s for p in pairs for s in (p["sentence1"], p["sentence2"])))
    vec = dict(zip(texts, tiny_encoder.encode(texts), strict=True))
    cosine = [float(vec[p["sentence1"]] @ vec[p["sentence2"]]) for p in pairs]
    # (tolerances: float noise may swap two near-equal cosines or ranks, a wrong implementation moves far more)
    expected = 100 * spearmanr(cosine, [p["score"] for p in pairs])[0]
    assert r["n"] == 100 and r["spearman"] == pytest.approx(expected, abs=0.05)
    ret = run_task(tiny_encoder, "korquad-retrieval", data_dir, max_samples=50)
    assert ret["queries"] == 50 and ret["corpus"] == 960
    data = load_retrieval_data("korquad-retrieval", data_dir, max_samples=50)
    doc_ids = list(data.corpus)
    sims = tiny_encoder.encode(list(data.queries.values())) @ tiny_encoder.encode(list(data.corpus.values())).T
    ranks = [1 + int((row > row[doc_ids.index(next(iter(data.qrels[q])))]).sum()) for q, row in zip(data.queries, sims,
                                                                                                    strict=True)]
    assert ret["mrr@10"] == pytest.approx(np.mean([1 / k if k <= 10 else 0.0 for k in ranks]), abs=0.01)
    assert ret["recall@100"] == pytest.approx(np.mean([k <= 100 for k in ranks]), abs=0.021)


def test_tfidf_baseline_hand_made() -> None:
    from koembed.baselines import tfidf_retrieval, tfidf_sts
    from koembed.evaluate import RetrievalData

    pairs = [{"sentence1": "고양이가 잔다", "sentence2": "고양이가 잔다", "score": 5.0},
             {"sentence1": "고양이가 잔다", "sentence2": "고양이가 논다", "score": 3.0},
             {"sentence1": "고양이가 잔다", "sentence2": "비행기 이륙", "score": 0.0}]
    assert tfidf_sts(pairs, [p["sentence2"] for p in pairs])["spearman"] == pytest.approx(100)
    data = RetrievalData(corpus={"d1": "서울은 한국의 수도이다", "d2": "고양이는 잠을 많이 잔다"},
                         queries={"q1": "한국의 수도는?", "q2": "고양이는 얼마나 자나?"},
                         qrels={"q1": {"d1"}, "q2": {"d2"}})
    m = tfidf_retrieval(data, ks=(1,))
    assert m["recall@1"] == 1.0 and m["mrr@10"] == 1.0


def test_retrieval_task_from_a_hub_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # KorQuAD as the Hub has it (squad_kor_v1: answers as a struct of lists), read offline from a local folder.
    from dataclasses import replace

    from datasets import Dataset

    import koembed.data.load as load
    from koembed.data.catalogue import find_dataset
    from koembed.korean_data import RowReport

    hub = tmp_path / "squad_kor_v1"
    hub.mkdir()
    Dataset.from_dict({
        "id": ["1", "2", "3", "4"], "title": ["t"] * 4,
        "context": ["같은 문단", "같은 문단", " 다른 문단 ", "문단"],
        "question": ["질문 하나?", "질문 둘?", "질문 셋?", " "],
        "answers": [{"text": ["같은"], "answer_start": [0]}] * 4}).to_parquet(str(hub / "validation.parquet"))
    korquad = replace(find_dataset("korquad"), hub=replace(find_dataset("korquad").hub, path=str(hub)))
    monkeypatch.setattr(load, "find_dataset", lambda name: korquad if name == "korquad" else find_dataset(name))
    empty = tmp_path / "data"
    empty.mkdir()
    report = RowReport()
    data = load_retrieval_data("korquad-retrieval", empty, report=report)
    assert data.corpus == {"p0": "같은 문단", "p1": "다른 문단"}  # merged duplicates, stripped
    assert data.qrels == {"1": {"p0"}, "2": {"p0"}, "3": {"p1"}}
    assert report.total_bad == 1 and "empty question" in report.summary()
