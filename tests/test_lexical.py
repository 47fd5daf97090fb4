"""Lexical search pieces: analysers (golden cases), the BM25 matrix (against bm25s), the SQLite token tables, fusion."""

from __future__ import annotations

import importlib.util
import sqlite3
import unicodedata

import numpy as np
import pytest

from koembed.errors import InputError, MissingExtraError
from koembed.index import lexical_tables as tables
from koembed.lexical import fusion
from koembed.lexical.analysers import ANALYSERS, bigram_tokens, get_analyser
from koembed.lexical.bm25 import BM25Matrix

HAS_KIWI = importlib.util.find_spec("kiwipiepy") is not None
HAS_BM25S = importlib.util.find_spec("bm25s") is not None


# -- analysers -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "tokens"), [
    ("맛있는 한국 음식", ["맛있", "있는", "는한", "한국", "국음", "음식"]),
    ("맛있는한국음식", ["맛있", "있는", "는한", "한국", "국음", "음식"]),  # spacing does not matter
    ("아이폰 15 Pro를 샀다!!", ["아이", "이폰", "폰1", "15", "5p", "pr", "ro", "o를", "를샀", "샀다"]),
    ("KorQuAD는 2018년", ["ko", "or", "rq", "qu", "ua", "ad", "d는", "는2", "20", "01", "18", "8년"]),
    ("서울, 부산... 대구?", ["서울", "울부", "부산", "산대", "대구"]),  # punctuation dropped
    ("밥", ["밥"]),  # one syllable: the syllable itself
    (" 밥 ", ["밥"]),
    ("A", ["a"]),
    ("", []),
    ("   \t ", []),
    ("!!!", []),
])
def test_bigram_golden(text: str, tokens: list[str]) -> None:
    assert bigram_tokens(text) == tokens
    assert get_analyser("bigram")(text) == tokens


def test_bigram_runs_and_raw_golden() -> None:
    runs = get_analyser("bigram-runs")
    assert runs("아이폰 15 Pro를 샀다!!") == ["아이", "이폰", "폰를", "를샀", "샀다", "15", "pro"]
    assert get_analyser("bigram-raw")("밥!!") == ["밥!", "!!"]


@pytest.mark.parametrize("name", ["bigram", "bigram-runs", "bigram-raw"] + (["kiwi"] if HAS_KIWI else []))
def test_nfc_and_nfd_give_the_same_tokens(name: str) -> None:
    an = get_analyser(name)
    for text in ("한국어 형태소 분석기", "Café 카페에서 커피를 마셨다", "깎다 읽었다"):
        nfd = unicodedata.normalize("NFD", text)
        assert nfd != text or text.isascii()
        assert an(nfd) == an(text)
        assert an(text), text


def test_every_analyser_handles_empty_and_single_character_text() -> None:
    for name in ANALYSERS:
        if name == "kiwi" and not HAS_KIWI:
            continue
        an = get_analyser(name)
        assert an("") == [] and an("  ") == []
        assert an("밥") == ["밥"]
        assert an.many(["", "밥", "한국"]) == [[], ["밥"], an("한국")]


@pytest.mark.skipif(not HAS_KIWI, reason="kiwipiepy not installed (pip install 'koembed[kiwi]')")
def test_kiwi_morphemes() -> None:
    toks = get_analyser("kiwi")("아이폰 15 Pro를 샀다!! #신상")
    assert "아이폰" in toks and "15" in toks and "pro" in toks and "신상" in toks
    assert not any(ch in t for t in toks for ch in "!#")
    assert get_analyser("kiwi").many(["밥을 먹었다", ""]) == [get_analyser("kiwi")("밥을 먹었다"), []]


def test_kiwi_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from koembed.lexical import analysers

    real_import = builtins.__import__

    def no_kiwi(name, *args, **kwargs):
        if name == "kiwipiepy":
            raise ImportError("no kiwipiepy")
        return real_import(name, *args, **kwargs)

    analysers._kiwi.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_kiwi)
    try:
        with pytest.raises(MissingExtraError, match=r"koembed\[kiwi\]"):
            get_analyser("kiwi")("한국어")
    finally:
        monkeypatch.undo()
        analysers._kiwi.cache_clear()


def test_unknown_analyser_suggests() -> None:
    with pytest.raises(InputError, match="did you mean bigram"):
        get_analyser("bigramm")


def test_tokens_are_single_terms() -> None:
    # Letters and digits only (bigram-raw aside): a token is one term wherever it is stored or matched.
    for name in ("bigram", "bigram-runs"):
        for tok in get_analyser(name)("e-mail: a@b.com, 100% 'quoted' \"text\" (괄호) 中文 Ünïcode"):
            assert all(unicodedata.category(ch)[0] in "LNM" for ch in tok), tok


# -- BM25 matrix ---------------------------------------------------------------------------------------
def _random_corpus(seed: int = 0, n_docs: int = 200, vocab: int = 40):
    rng = np.random.default_rng(seed)
    docs = [list(rng.integers(0, vocab, rng.integers(1, 15))) for _ in range(n_docs)]
    queries = [list(rng.integers(0, vocab, rng.integers(1, 6))) for _ in range(25)]
    return docs, queries


def _matrix(docs, vocab: int = 40, row_ids=None) -> BM25Matrix:
    row_ids = np.arange(len(docs)) if row_ids is None else row_ids
    return BM25Matrix.build(row_ids, [len(d) for d in docs], np.concatenate(docs), vocab)


@pytest.mark.skipif(not HAS_BM25S, reason="bm25s not installed")
def test_scores_equal_bm25s_on_the_same_tokens() -> None:
    import bm25s

    docs, queries = _random_corpus()
    names = [f"t{i}" for i in range(40)]
    ref = bm25s.BM25(k1=1.2, b=0.75)  # koembed's constants, bm25s's Lucene BM25
    ref.index([[names[t] for t in d] for d in docs], show_progress=False)
    m = _matrix(docs)
    for q in queries:
        want = ref.get_scores([names[t] for t in q])
        rows, scores, _ = m.search([np.array(q)], k=len(docs))
        got = np.zeros(len(docs), np.float32)
        got[rows[0]] = scores[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert np.all(np.diff(scores[0]) <= 0)


def test_search_topk_ties_filters_and_extra_scores(tmp_path) -> None:
    docs = [[0, 1], [0, 1], [2], [0], [3, 3, 3]]
    row_ids = np.array([10, 11, 15, 20, 21])
    m = _matrix(docs, vocab=5, row_ids=row_ids)
    rows, scores, extra = m.search([np.array([0, 1]), np.array([4]), np.array([], dtype=np.int64)], k=2,
                                   score_rows=[np.array([20, 15, 99]), np.array([10]), np.array([10])])
    assert rows[0].tolist() == [10, 11]  # equal scores: lower row id first
    assert scores[0][0] == scores[0][1]
    assert extra[0][0] > 0 and extra[0][1] == 0 and extra[0][2] == 0  # doc 20 holds token 0; 15 does not; 99 unknown
    assert rows[1].tolist() == [] and extra[1].tolist() == [0.0]  # token 4: no document
    assert rows[2].tolist() == []
    allowed = np.isin(row_ids, [11, 20])
    rows, _, _ = m.search([np.array([0, 1])], k=5, allowed=allowed)
    assert rows[0].tolist() == [11, 20]
    path = tmp_path / "m.safetensors"
    m.save(path)
    loaded = BM25Matrix.load(path)
    assert isinstance(loaded.data, np.memmap)
    np.testing.assert_array_equal(loaded.row_ids, row_ids)
    for a, b in zip(loaded.search([np.array([0, 3])], k=5)[:2], m.search([np.array([0, 3])], k=5)[:2], strict=True):
        np.testing.assert_array_equal(a[0], b[0])


def test_search_chunks_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from koembed.lexical import bm25

    docs, queries = _random_corpus(seed=3)
    m = _matrix(docs)
    qs = [np.array(q) for q in queries]
    whole = m.search(qs, k=7)
    monkeypatch.setattr(bm25, "CHUNK_POSTINGS", 10)
    parts = m.search(qs, k=7)
    for a, b in zip(whole[0], parts[0], strict=True):
        np.testing.assert_array_equal(a, b)


def test_empty_matrix() -> None:
    m = BM25Matrix.build(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32), 0)
    rows, scores, extra = m.search([np.array([], dtype=np.int64)], k=3, score_rows=[np.array([1])])
    assert rows[0].tolist() == [] and extra[0].tolist() == [0.0]


# -- SQLite tables ---------------------------------------------------------------------------------------
def test_tables_round_trip() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    tables.create_tables(conn)
    conn.execute("BEGIN")
    tables.insert(conn, [(3, ["가나", "나다", "가나"]), (7, []), (5, ["xyz"])])
    conn.execute("COMMIT")
    assert tables.vocab_size(conn) == 3
    row_ids, lengths, ids = tables.read_all(conn)
    assert row_ids.tolist() == [3, 5, 7] and lengths.tolist() == [3, 1, 0]
    assert ids.tolist() == [0, 1, 0, 2]
    conn.execute("BEGIN")
    tables.delete(conn, [3])
    tables.insert(conn, [(9, ["새", "가나"])])
    conn.execute("ROLLBACK")  # the caller's transaction decides
    assert tables.count(conn) == 3
    q = tables.encode_queries(conn, [["가나", "없음", "xyz"], []])
    assert q[0].tolist() == [0, 2] and q[1].tolist() == []


# -- fusion ----------------------------------------------------------------------------------------------
def test_weights_zero_and_one_equal_the_single_modes() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        rows = rng.permutation(1000)[:n]
        dense = rng.normal(size=n).round(1)  # rounding makes ties
        lexical = np.abs(rng.normal(size=n)).round(1) * (rng.random(n) > 0.3)
        dense_order = np.lexsort((rows, -dense))
        lexical_order = np.lexsort((rows, -lexical))
        np.testing.assert_array_equal(fusion.order(fusion.convex(dense, lexical, 1.0), rows), dense_order)
        np.testing.assert_array_equal(fusion.order(fusion.convex(dense, lexical, 0.0), rows), lexical_order)


def test_convex_maths() -> None:
    dense, lexical = np.array([0.9, 0.5, 0.1]), np.array([0.0, 10.0, 20.0])
    z = (dense - dense.mean()) / dense.std()
    np.testing.assert_allclose(fusion.zscore(dense), z)
    np.testing.assert_allclose(fusion.convex(dense, lexical, 0.25), 0.25 * z + 0.75 * np.array([-1.2247, 0, 1.2247]),
                               atol=1e-4)
    assert fusion.zscore(np.array([3.0, 3.0])).tolist() == [0.0, 0.0]  # no spread: no say
    # a missing score counts as that side's lowest
    np.testing.assert_allclose(fusion.zscore(np.array([1.0, np.nan, 3.0])), fusion.zscore(np.array([1.0, 1.0, 3.0])))
    with pytest.raises(InputError, match="dense weight") as refused:  # the library's words, not the CLI's flag
        fusion.convex(dense, lexical, 1.5)
    assert "--" not in str(refused.value)


def test_coverage_is_the_share_of_the_query_idf_mass_a_document_holds() -> None:
    from koembed.lexical.bm25 import BM25Matrix

    # Documents (token ids): 0 = [0, 1], 1 = [1, 2], 2 = [2, 2, 3]; 4 tokens.
    m = BM25Matrix.build(np.arange(3), np.array([2, 2, 3]), np.array([0, 1, 1, 2, 2, 2, 3]), 4)
    idf = lambda df: np.log1p((3 - df + 0.5) / (df + 0.5))  # noqa: E731 (Lucene's, as bm25s)
    np.testing.assert_allclose(m.idf(np.array([0, 1, 2, 3])), idf(np.array([1, 2, 2, 1])))
    assert m.unseen_idf() == pytest.approx(idf(0))
    full = idf(1) + idf(2)
    assert m.coverage(np.array([0, 1]), 0, 0) == pytest.approx(1.0)  # document 0 holds the whole query
    assert m.coverage(np.array([0, 1]), 0, 1) == pytest.approx(idf(2) / full)
    assert m.coverage(np.array([0, 1]), 0, 2) == 0.0
    # A query word no document has is a part of the query that no lexical match can hold.
    assert m.coverage(np.array([0, 1]), 2, 0) == pytest.approx(full / (full + 2 * idf(0)))
    assert m.coverage(np.array([2, 2]), 0, 2) == pytest.approx(1.0)  # repeats count on both sides
    assert m.coverage(np.zeros(0, np.int64), 0, 0) == 0.0


def test_coverage_fusion_scales_the_lexical_side() -> None:
    dense, lexical = np.array([0.9, 0.5, 0.1]), np.array([0.0, 10.0, 20.0])
    np.testing.assert_allclose(fusion.convex(dense, lexical, 0.25, 0.5),
                               0.25 * fusion.zscore(dense) + 0.375 * fusion.zscore(lexical))
    assert fusion.DEFAULT == "coverage" and set(fusion.METHODS) == {"coverage", "convex", "rrf"}


def test_rrf_order_on_a_hand_made_example() -> None:
    rows = np.array([1, 2, 3, 4])
    dense = np.array([0.9, 0.8, 0.1, np.nan])  # dense ranks: 1, 2, 3; row 4 not retrieved
    lexical = np.array([np.nan, 5.0, 7.0, 6.0])  # lexical ranks: row 3, row 4, row 2
    got = fusion.rrf(dense, lexical, rows, k=60)
    want = {1: 1 / 61, 2: 1 / 62 + 1 / 63, 3: 1 / 63 + 1 / 61, 4: 1 / 62}
    np.testing.assert_allclose(got, [want[r] for r in rows])
    assert rows[fusion.order(got, rows)].tolist() == [3, 2, 1, 4]
    # equal fused scores: lower row id first
    tied = fusion.rrf(np.array([1.0, np.nan]), np.array([np.nan, 1.0]), rows[:2])
    assert tied[0] == tied[1] and rows[fusion.order(tied, rows[:2])].tolist() == [1, 2]


# -- the engine without an index -------------------------------------------------------------------------------
ENGINE_DOCS = ["서울 날씨가 맑고 따뜻합니다", "부산 바다는 오늘 파도가 높다", "서울 지하철 요금이 올랐다",
               "맛있는 한국 음식 목록", "한국 음식 중에서 김치가 제일 맛있다", "", "!!!", "서울 서울 서울 날씨"]
ENGINE_QUERIES = ["서울 날씨", "한국 음식", "파도", "없는 단어"]


def test_the_engine_without_an_index_ranks_as_an_index_lexical_part_does(tmp_path):
    from koembed.evaluate import RetrievalData
    from koembed.index import Index, search
    from koembed.lexical.engine import BM25
    from koembed.search_eval import evaluate_search

    engine = BM25.from_texts(ENGINE_DOCS, "bigram")
    rows, scores = engine.search(ENGINE_QUERIES, 5)
    with Index.create(tmp_path / "ix", 4, index_type="flat") as ix:
        ix.add_vectors([f"d{i}" for i in range(len(ENGINE_DOCS))], np.eye(4, dtype=np.float32)[
            np.arange(len(ENGINE_DOCS)) % 4], ENGINE_DOCS)
        hits = search(ix, ENGINE_QUERIES, k=5, mode="lexical")
        for r, s, h in zip(rows, scores, hits, strict=True):
            assert [f"d{i}" for i in r.tolist()] == [x.id for x in h]
            np.testing.assert_allclose(s, [x.score for x in h], rtol=1e-6)
        assert len(rows[3]) == 0  # no shared token: no hit, as in the index
        data = RetrievalData({f"d{i}": t for i, t in enumerate(ENGINE_DOCS)},
                             {f"q{i}": q for i, q in enumerate(ENGINE_QUERIES)},
                             {"q0": {"d0"}, "q1": {"d4"}, "q2": {"d1"}, "q3": {"d2"}})
        via_index = evaluate_search(data, index=ix, mode="lexical")
    alone = evaluate_search(data, mode="lexical")  # no index and no model: the engine alone
    assert alone["mode"] == "lexical" and {k: alone[k] for k in ("mrr@10", "recall@1", "ndcg@10")} == pytest.approx(
        {k: via_index[k] for k in ("mrr@10", "recall@1", "ndcg@10")})
