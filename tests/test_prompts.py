"""Query and document prompts end to end (issue 24): index, search, the manifest's record, the server, the CLI, eval.

The tiny model of ``tiny_prompt_dir`` has e5's prompts {"query": "query: ", "document": "passage: "}; the
vectors themselves are held to sentence-transformers in tests/test_encoder.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import E5_PROMPTS

from koembed import KoMiniLMEncoder
from koembed.cli import main
from koembed.errors import IndexRefusedError
from koembed.index import Index, IndexConfig, build_index, search

TEXTS = [
    "오늘 서울은 하루 종일 맑겠습니다.",
    "고양이가 창가에서 낮잠을 잔다.",
    "주식 시장이 큰 폭으로 하락했다.",
    "비가 내려서 우산을 챙겼다.",
    "새로 연 식당의 국수가 정말 맛있다.",
    "기차표를 예매하려고 줄을 섰다.",
]


@pytest.fixture(scope="module")
def encoder(tiny_prompt_dir: Path) -> KoMiniLMEncoder:
    return KoMiniLMEncoder(str(tiny_prompt_dir))


@pytest.fixture(scope="module")
def prompt_index(tmp_path_factory, tiny_prompt_dir: Path, encoder) -> Path:
    root = tmp_path_factory.mktemp("prompt-index")
    docs = root / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": t}, ensure_ascii=False) + "\n"
                            for i, t in enumerate(TEXTS)), encoding="utf-8")
    build_index(IndexConfig(input=str(docs), output=str(root / "ix"), model=str(tiny_prompt_dir), index_type="flat"),
                encoder)
    return root / "ix"


def test_documents_get_the_document_prompt_and_the_manifest_records_the_prompts(prompt_index, encoder):
    with Index.open(prompt_index) as ix:
        assert ix.manifest.model.prompts == E5_PROMPTS
        stored = ix.faiss.reconstruct_batch(np.asarray(ix.store.row_ids()))
        # The model read "passage: " + text; the store and the lexical part hold the text alone.
        np.testing.assert_allclose(stored, encoder.encode(TEXTS, prompt_name="document"), atol=1e-5)
        assert not np.allclose(stored, encoder.encode(TEXTS, prompt=""), atol=1e-3)
        assert [ix.get(f"d{i}")["text"] for i in range(len(TEXTS))] == TEXTS
        vocab = {t for (t,) in ix.store.conn.execute("SELECT token FROM lex_vocab")}
        assert not any("passage" in t or "pa" == t for t in vocab)


def test_queries_get_the_query_prompt(prompt_index, encoder):
    with Index.open(prompt_index) as ix:
        hits = search(ix, [TEXTS[1]], k=len(TEXTS), mode="dense")[0]  # the manifest's model, loaded by search
    want = encoder.encode_document(TEXTS) @ encoder.encode_query([TEXTS[1]])[0]
    assert [h.id for h in hits] == [f"d{i}" for i in np.argsort(-want, kind="stable")]
    np.testing.assert_allclose([h.score for h in hits], np.sort(want)[::-1], atol=1e-5)
    lexical = search(prompt_index, ["query"], k=3, mode="lexical")[0]
    assert lexical == []  # the prompt's words are in no document: the lexical part never saw a prompt


def test_a_search_with_other_prompts_is_refused_like_another_model(prompt_index, encoder):
    with pytest.raises(IndexRefusedError, match="query prompt 'query: '") as refused:
        search(prompt_index, [TEXTS[0]], mode="dense", encoder=encoder, prompt="질문: ")
    assert "allow_model_mismatch=True" in str(refused.value)  # the library's parameter, beside the CLI's flag
    hits = search(prompt_index, [TEXTS[0]], mode="dense", encoder=encoder, prompt="질문: ", allow_model_mismatch=True)
    assert len(hits[0]) == len(TEXTS)
    vectors = encoder.encode_query([TEXTS[0]])
    with pytest.raises(IndexRefusedError, match="prompt"):  # vectors vouched for by an encoder with other prompts
        search(prompt_index, [TEXTS[0]], vectors=vectors, encoder=encoder, prompt="", mode="hybrid")


def test_an_index_without_prompts_refuses_a_model_whose_prompts_would_change_its_queries(tmp_path, tiny_st_dir,
                                                                                        encoder):
    plain = KoMiniLMEncoder(str(tiny_st_dir))
    with Index.create(tmp_path / "ix", plain.dim, index_type="flat", model_name=plain.model_name,
                      model_fingerprint=encoder.fingerprint, prompts=plain.role_prompts()) as ix:
        ix.add_vectors([f"d{i}" for i in range(len(TEXTS))], plain.encode(TEXTS), TEXTS)
        assert ix.manifest.model.prompts == {}
        with pytest.raises(IndexRefusedError, match="prompt ''"):  # same fingerprint, but its queries get "query: "
            search(ix, [TEXTS[0]], encoder=encoder, mode="dense")


def test_server_embeddings_take_input_type_and_search_uses_the_query_prompt(prompt_index, encoder):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from fastapi.testclient import TestClient

    from koembed.server import ServeConfig, create_app

    with TestClient(create_app({"ix": prompt_index}, encoder, ServeConfig(api_key=None))) as client:
        got = {}
        for input_type in ("query", "document", None):
            body = {"input": TEXTS} | ({"input_type": input_type} if input_type else {})
            r = client.post("/v1/embeddings", json=body)
            assert r.status_code == 200, r.text
            got[input_type] = np.array([d["embedding"] for d in r.json()["data"]], np.float32)
        np.testing.assert_allclose(got["query"], encoder.encode_query(TEXTS), atol=1e-5)
        np.testing.assert_allclose(got["document"], encoder.encode_document(TEXTS), atol=1e-5)
        np.testing.assert_allclose(got[None], encoder.encode(TEXTS), atol=1e-5)  # no default prompt: none
        assert client.post("/v1/embeddings", json={"input": "a", "input_type": "passage"}).status_code == 422
        r = client.post("/search", json={"queries": [TEXTS[2]], "mode": "dense", "k": 1})
        assert r.status_code == 200, r.text
        hit = r.json()["indexes"][0]["results"][0]["hits"][0]
        want = float(encoder.encode_document([TEXTS[2]])[0] @ encoder.encode_query([TEXTS[2]])[0])
        assert hit["id"] == "d2" and hit["score"] == pytest.approx(want, abs=1e-5)


def test_cli_encode_prompt_and_index_search(tmp_path, tiny_prompt_dir, prompt_index, encoder, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    for name, want in (("query", encoder.encode_query(TEXTS)), ("document", encoder.encode_document(TEXTS))):
        out = tmp_path / f"{name}.npy"
        assert main(["encode", str(texts), "-o", str(out), "--model", str(tiny_prompt_dir), "--prompt", name,
                     "-q"]) == 0
        np.testing.assert_allclose(np.load(out), want, atol=1e-5)
    assert main(["encode", str(texts), "-o", str(tmp_path / "x.npy"), "--model", str(tiny_prompt_dir),
                 "--prompt", "qeury", "-q"]) != 0
    assert "unknown prompt name 'qeury'" in capsys.readouterr().err
    assert main(["search", str(prompt_index), TEXTS[3], "--mode", "dense", "-k", "1", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    want = float(encoder.encode_document([TEXTS[3]])[0] @ encoder.encode_query([TEXTS[3]])[0])
    assert line["hits"][0]["id"] == "d3" and line["hits"][0]["score"] == pytest.approx(want, abs=1e-5)


class RoleSpy:
    """An encoder that records which role each text was encoded as (and refuses role-less encoding)."""

    def __init__(self, encoder: KoMiniLMEncoder) -> None:
        self.encoder, self.calls = encoder, []

    def encode_query(self, texts, **kwargs):
        self.calls.append(("query", list(texts)))
        return self.encoder.encode_query(texts, **kwargs)

    def encode_document(self, texts, **kwargs):
        self.calls.append(("document", list(texts)))
        return self.encoder.encode_document(texts, **kwargs)

    def encode(self, texts, **kwargs):
        raise AssertionError("evaluation must say whether a text is a query or a document")


def test_eval_uses_the_query_prompt_for_questions_and_the_document_prompt_for_passages(encoder):
    from koembed.evaluate import evaluate_retrieval, evaluate_sts

    spy = RoleSpy(encoder)
    corpus = {f"d{i}": t for i, t in enumerate(TEXTS)}
    queries = {"q0": "날씨가 맑다", "q1": "주가가 떨어졌다"}
    evaluate_retrieval(spy, corpus, queries, {"q0": {"d0"}, "q1": {"d2"}})
    assert sorted(spy.calls) == [("document", TEXTS), ("query", list(queries.values()))]
    spy.calls.clear()
    pairs = [{"sentence1": TEXTS[0], "sentence2": TEXTS[3], "score": 2.0},
             {"sentence1": TEXTS[1], "sentence2": TEXTS[2], "score": 0.5},
             {"sentence1": TEXTS[4], "sentence2": TEXTS[5], "score": 1.0}]
    evaluate_sts(spy, pairs)
    assert [role for role, _ in spy.calls] == ["query"]  # a symmetric task: both sides are queries
