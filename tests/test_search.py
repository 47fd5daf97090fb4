"""Search: metadata filters against brute force for every type, text queries, model checks, real KorQuAD."""

from __future__ import annotations

import json

import numpy as np
import pytest
from index_fixtures import EVERY_TYPE, build, queries, vectors

from koembed.errors import IndexRefusedError
from koembed.index import Index
from koembed.index.query import EXACT_FILTER_MAX, search


@pytest.fixture(autouse=True)
def _one_thread():
    import faiss

    faiss.omp_set_num_threads(1)


def _filtered_truth(x: np.ndarray, q: np.ndarray, mask: np.ndarray, k: int) -> list[list[str]]:
    sims = q @ x.T
    sims[:, ~mask] = -np.inf
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return [[f"d{j}" for j in row if mask[j]] for row in top]


@pytest.mark.parametrize("index_type", EVERY_TYPE)
def test_filters_return_the_best_matching_documents(tmp_path, index_type):
    n = 3_000
    x, q = vectors(n), queries(30, n)
    with build(tmp_path / "ix", x, index_type) as index:
        index.remove(["d0", "d5"])  # tombstones on HNSW must stay invisible under a filter too
        alive = np.ones(n, bool)
        alive[[0, 5]] = False
        group = np.arange(n) % 5
        names = np.array([f"n{i}" for i in range(n)])
        cases = [
            ({"group": 2}, group == 2),  # many matches: selector search
            ({"group": [1, 3]}, (group == 1) | (group == 3)),  # any of
            ({"group": 2, "even": True}, (group == 2) & (np.arange(n) % 2 == 0)),
            ({"name": ["n7", "n1234", "n2999", "n5"]}, np.isin(names, ["n7", "n1234", "n2999", "n5"])),  # few
        ]
        for flt, mask in cases:
            mask = mask & alive
            truth = _filtered_truth(x, q, mask, 10)
            hits = search(index, q, k=10, filter=flt)
            for h in hits:
                assert len(h) == min(10, int(mask.sum()))
                assert all(mask[int(hit.id[1:])] for hit in h)  # every hit matches
                assert [hit.score for hit in h] == sorted((hit.score for hit in h), reverse=True)
            overlap = np.mean([len({hit.id for hit in h} & set(t)) / len(t) for h, t in zip(hits, truth, strict=True)])
            floor = 0.6 if "PQ" in index_type else 0.9
            assert overlap >= (1.0 if index_type == "Flat" else floor), (flt, overlap)
        assert search(index, q[:2], k=5, filter={"group": 42}) == [[], []]
        assert search(index, q[:2], k=5, filter={"missing-key": 1}) == [[], []]


def test_filter_values_match_across_types_in_the_library(tmp_path):
    x, q = vectors(200), queries(3, 200)
    with build(tmp_path / "ix", x) as index:
        index.add_vectors(["s1", "s2"], x[:2], ["문자", "문자"], [{"group": "1"}, {"flag": "true"}])
        typed = [[h.id for h in hits] for hits in search(index, q, k=50, filter={"group": 1})]
        texted = [[h.id for h in hits] for hits in search(index, q, k=50, filter={"group": "1"})]
        assert typed == texted and "s1" in typed[0] and all(h in {f"d{i}" for i in range(1, 200, 5)} | {"s1"}
                                                              for h in typed[0])
        evens = {f"d{i}" for i in range(0, 200, 2)}
        assert {h.id for h in search(index, q[:1], k=200, filter={"even": "true"})[0]} == evens
        assert [h.id for h in search(index, q[:1], k=5, filter={"flag": True})[0]] == ["s2"]
        assert search(index, q[:1], k=5, filter={"name": "1"}) == [[]]  # no name is "1" or 1


def test_few_matches_are_searched_exhaustively_on_approximate_types(tmp_path):
    n = 3_000
    x = vectors(n)
    target = ["d11", "d2222"]
    for index_type in ["HNSW16", "IVF16,Flat"]:
        with build(tmp_path / index_type.replace(",", "_"), x, index_type) as index:
            # a query far from both matching documents: a plain approximate search would never reach them
            q = -x[11:12]
            hits = search(index, q, k=5, filter={"name": ["n11", "n2222"]}, nprobe=1, ef_search=1)
            assert sorted(h.id for h in hits[0]) == sorted(target)
            unfiltered = search(index, q, k=5, nprobe=1, ef_search=1)[0]
            assert not {h.id for h in unfiltered} & set(target)
            assert len(target) <= EXACT_FILTER_MAX  # the case the exhaustive path covers


def test_k_larger_than_the_index_and_an_empty_index(tmp_path):
    x = vectors(5)
    with build(tmp_path / "ix", x) as index:
        hits = search(index, x[:1], k=50)
        assert len(hits[0]) == 5 and hits[0][0].id == "d0"
    with Index.create(tmp_path / "empty", x.shape[1]) as empty:
        assert search(empty, x[:2], k=3) == [[], []]


def test_query_dimension_is_checked(tmp_path):
    with build(tmp_path / "ix", vectors(20)) as index, pytest.raises(IndexRefusedError, match="dimension 8"):
        search(index, np.ones((1, 8), np.float32))


# -- text queries with the tiny model ----------------------------------------------------------------
def _text_index(tmp_path, encoder, texts, metadata=None):
    index = Index.create(tmp_path / "text-ix", encoder.dim, model_name=encoder.model_name,
                         model_fingerprint=encoder.fingerprint, backend="torch")
    index.add_vectors([f"t{i}" for i in range(len(texts))], encoder.encode(texts), texts, metadata)
    return index


def test_text_search_uses_the_encoder_and_checks_its_fingerprint(tmp_path, tiny_encoder):
    texts = ["서울 날씨가 맑습니다", "부산 바다에서 수영을 했다", "주식 시장이 크게 올랐다", "고양이가 창밖을 본다"]
    with _text_index(tmp_path, tiny_encoder, texts, [{"topic": t} for t in ["w", "t", "e", "p"]]) as index:
        hits = search(index, texts, k=1, encoder=tiny_encoder, mode="dense")  # the default would be hybrid
        assert [h[0].id for h in hits] == ["t0", "t1", "t2", "t3"]
        assert hits[0][0].score == pytest.approx(1.0, abs=1e-4) and hits[0][0].dense == hits[0][0].score
        [[only]] = search(index, ["서울 날씨"], k=3, encoder=tiny_encoder, filter={"topic": "e"})
        assert only.id == "t2" and only.metadata == {"topic": "e"}
        index.manifest.model.fingerprint = "0" * 32  # as if the index came from another model
        with pytest.raises(IndexRefusedError, match="differs from the index's model"):
            search(index, ["서울"], encoder=tiny_encoder)
        assert search(index, ["서울"], k=1, encoder=tiny_encoder, allow_model_mismatch=True)[0]


def test_search_by_directory_loads_the_manifest_model(tmp_path, tiny_encoder, tiny_st_dir):
    texts = ["한국어 문장 검색", "전혀 다른 이야기"]
    with _text_index(tmp_path, tiny_encoder, texts):
        pass
    manifest = json.loads((tmp_path / "text-ix" / "manifest.json").read_text())
    assert manifest["model"]["name"] == str(tiny_st_dir)
    hits = search(tmp_path / "text-ix", ["한국어 문장 검색"], k=1)
    assert hits[0][0].id == "t0"


def test_real_korquad_paragraphs_searched_with_the_tiny_model(tmp_path, data_dir, tiny_encoder):
    squad = json.loads((data_dir / "korquad" / "KorQuAD_v1.0_dev.json").read_text(encoding="utf-8"))
    paragraphs, titles = [], []
    for article in squad["data"][:20]:
        for p in article["paragraphs"]:
            paragraphs.append(p["context"])
            titles.append(article["title"])
    with _text_index(tmp_path, tiny_encoder, paragraphs, [{"title": t} for t in titles]) as index:
        assert index.count == len(paragraphs) > 100
        # each paragraph finds itself (an untrained tiny model still maps equal texts to equal vectors)
        probe = list(range(0, len(paragraphs), 17))
        hits = search(index, [paragraphs[i] for i in probe], k=3, encoder=tiny_encoder)
        assert [h[0].id for h in hits] == [f"t{i}" for i in probe]
        title = titles[0]
        q = squad["data"][0]["paragraphs"][0]["qas"][0]["question"]
        filtered = search(index, [q], k=5, encoder=tiny_encoder, filter={"title": title})[0]
        assert filtered and all(h.metadata["title"] == title for h in filtered)


def test_ids_from_the_loaded_id_column_equal_the_sqlite_probes_across_writes(tmp_path):
    """Batch searches switch a reader to the in-memory id column (koembed.index.ext_ids); its hits must equal
    the probed ones, drop removed documents, and follow a writer's replacements after a refresh."""
    n = 400
    x, q = vectors(n), queries(40, n)
    build(tmp_path / "ix", x).close()
    with Index.open(tmp_path / "ix") as reader:
        probed = search(reader, q, k=10)  # fields: SQLite
        assert not reader.ext_ids.loaded
        first = search(reader, q, k=10, fields=())  # 400 hits: past the break-even for 400 documents
        assert reader.ext_ids.loaded
        assert [[(h.id, h.score) for h in row] for row in first] == [[(h.id, h.score) for h in row] for row in probed]
        assert all(h.text == "" and h.metadata == {} and h.dense == h.score for row in first for h in row)
        with Index.open(tmp_path / "ix", writable=True) as writer:
            writer.add_vectors(["d1", "new"], np.stack([x[2], x[3]]), ["바뀐 문서", "새 문서"], [{}, {}])
            writer.remove(["d7"])
            # The writer never loads the column: it sees its own changes through the probes.
            assert {h.id for h in search(writer, x[3:4], k=2, fields=())[0]} == {"d3", "new"}
            assert not writer.ext_ids.loaded
        # The open snapshot still sees the generation it was opened on.
        assert search(reader, x[7:8], k=1, fields=())[0][0].id == "d7"
        assert reader.refresh() and not reader.ext_ids.loaded
        for _ in range(2):
            after = search(reader, q, k=10, fields=())
            assert [[h.id for h in row] for row in after] == [[h.id for h in row] for row in search(reader, q, k=10)]
        assert reader.ext_ids.loaded
        assert "d7" not in {h.id for row in after for h in row}
        top = [h.id for h in search(reader, x[2:4], k=2, fields=())[0]]
        assert set(top) == {"d1", "d2"}  # d1 now holds x[2]'s vector


def test_search_ids_returns_the_hits_ids_and_scores_as_arrays(tmp_path):
    """search_ids ranks exactly as search does; rows short of k end in None ids and NaN scores."""
    from koembed.index.query import search_ids

    n = 60
    x, q = vectors(n), queries(12, n)
    with build(tmp_path / "ix", x) as index:
        index.remove(["d3", "d4"])
    with Index.open(tmp_path / "ix") as reader:  # a reader: the id column is loaded after the first batch
        cases = [(q, {"k": 5}), (q, {"k": 80}), (q, {"k": 5, "filter": {"group": 2}}),
                 (["문서 7", "문서 12 문서"], {"k": 3, "mode": "lexical"})]
        for _ in range(2):
            for queries_, kw in cases:
                hits = search(reader, queries_, **kw)
                got = search_ids(reader, queries_, **kw)
                assert got.ids.shape == got.scores.shape and got.ids.shape[0] == len(queries_)
                for row_hits, ids, scores in zip(hits, got.ids.tolist(), got.scores.tolist(), strict=True):
                    m = len(row_hits)
                    assert ids[:m] == [h.id for h in row_hits]
                    assert np.allclose(scores[:m], [h.score for h in row_hits], rtol=1e-6)
                    assert all(i is None for i in ids[m:]) and np.isnan(scores[m:]).all()
                assert "d3" not in set(got.ids.ravel().tolist())
        assert reader.ext_ids.loaded
        assert search_ids(reader, q, k=80).ids.shape[1] == n - 2
