"""Integrations against a live ``koembed serve`` (issue 26): /v1/models, names instead of paths, token arrays,
LangChain's and LlamaIndex's OpenAI embeddings with the settings docs/serve.md gives, the write API, and the
LangChain and LlamaIndex retrievers (koembed.integrations)."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
from serve_fixtures import TEXTS, build, live_server, write_docs

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'koembed[serve]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'koembed[serve]')")

from koembed.errors import InputError  # noqa: E402
from koembed.server import ServeConfig, create_app  # noqa: E402

KEY = "integration-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture()
def index_dir(tmp_path, tiny_st_dir):
    return build(tmp_path / "news", write_docs(tmp_path / "news.jsonl", n=12), tiny_st_dir)


@pytest.fixture()
def server(index_dir, tiny_encoder):
    app = create_app({"news": index_dir}, tiny_encoder, ServeConfig(api_key=KEY, allow_writes=True))
    with live_server(app) as url:
        yield url


def test_models_and_responses_name_the_model_never_a_path(server, tiny_st_dir):
    name = tiny_st_dir.name  # an own folder: its last part
    models = httpx.get(server + "/v1/models", headers=AUTH).json()
    assert models == {"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                                                  "owned_by": "koembed"}]}
    assert httpx.get(f"{server}/v1/models/{name}", headers=AUTH).json()["id"] == name
    assert httpx.get(f"{server}/v1/models/gpt-4", headers=AUTH).status_code == 404
    info = httpx.get(server + "/info", headers=AUTH).json()
    body = httpx.post(server + "/v1/embeddings", json={"input": "안녕"}, headers=AUTH).json()
    encoded = httpx.post(server + "/encode", json={"texts": ["안녕"]}, headers=AUTH).json()
    assert info["model"]["name"] == info["indexes"][0]["model"]["name"] == body["model"] == encoded["model"] == name
    everything = json.dumps([models, info, body["model"], encoded["model"]], ensure_ascii=False)
    assert str(tiny_st_dir.parent) not in everything


def test_token_arrays_get_a_400_that_says_what_to_send(server):
    for tokens in ([101, 2023, 102], [[101, 2023], [7, 8]]):
        r = httpx.post(server + "/v1/embeddings", json={"input": tokens}, headers=AUTH)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == "input" and "token arrays" in err["message"]
        assert "check_embedding_ctx_length=False" in err["message"]
    r = httpx.post(server + "/v1/embeddings", json={"input": [{"text": "x"}]}, headers=AUTH)
    assert r.status_code == 422


def test_langchain_openai_embeddings_with_the_documented_settings(server, tiny_encoder):
    lc = pytest.importorskip("langchain_openai")
    emb = lc.OpenAIEmbeddings(model="koembed", base_url=server + "/v1", api_key=KEY,
                              check_embedding_ctx_length=False, max_retries=0)
    texts = [TEXTS[1], TEXTS[5]]
    np.testing.assert_allclose(np.array(emb.embed_documents(texts)), tiny_encoder.encode(texts), atol=1e-5)
    np.testing.assert_allclose(np.array(emb.embed_query(TEXTS[2])), tiny_encoder.encode([TEXTS[2]])[0], atol=1e-5)


def test_llamaindex_openai_embedding_with_the_documented_settings(server, tiny_encoder, tiny_st_dir):
    li = pytest.importorskip("llama_index.embeddings.openai")
    with pytest.raises(ValueError):  # model= takes OpenAI's names only: docs/serve.md says model_name=
        li.OpenAIEmbedding(model="koembed", api_base=server + "/v1", api_key=KEY)
    emb = li.OpenAIEmbedding(model_name=tiny_st_dir.name, api_base=server + "/v1", api_key=KEY, max_retries=0)
    texts = [TEXTS[3], TEXTS[7]]
    np.testing.assert_allclose(np.array(emb.get_text_embedding_batch(texts)), tiny_encoder.encode(texts), atol=1e-5)
    np.testing.assert_allclose(np.array(emb.get_query_embedding(TEXTS[4])), tiny_encoder.encode([TEXTS[4]])[0],
                               atol=1e-5)


def _search(url: str, query: str, k: int = 3, **extra) -> list[dict]:
    r = httpx.post(url + "/search", json={"queries": [query], "k": k, **extra}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()["indexes"][0]["results"][0]["hits"]


def test_write_api_upserts_and_deletes_and_readers_see_each_commit(server, index_dir):
    from koembed.index import Index

    before = httpx.get(server + "/info", headers=AUTH).json()["indexes"][0]
    new = {"id": "new-1", "text": "제주도 감귤 농장에서 수확 체험을 했다", "metadata": {"topic": "여행"}}
    r = httpx.post(server + "/v1/indexes/news/documents", headers=AUTH,
                   json={"documents": [new, {"id": "t0", "text": "첫 문서를 고쳐 쓴 내용"}]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["index"], out["added"], out["replaced"]) == ("news", 1, 1)
    assert out["generation"] == before["generation"] + 1 and out["count"] == before["count"] + 1
    hits = _search(server, new["text"], mode="lexical")  # read-your-writes: served before the answer
    assert hits[0]["id"] == "new-1" and hits[0]["metadata"] == {"topic": "여행"}
    assert _search(server, new["text"], mode="dense")[0]["id"] == "new-1"
    assert _search(server, "제주도", filters={"topic": "여행"})[0]["id"] == "new-1"
    r = httpx.post(server + "/v1/indexes/news/documents/delete", headers=AUTH, json={"ids": ["new-1", "nope"]})
    assert r.status_code == 200 and r.json()["removed"] == 1 and r.json()["count"] == before["count"]
    assert all(h["id"] != "new-1" for h in _search(server, new["text"], k=12))
    with Index.open(index_dir) as ix:  # on disk, as koembed index would have left it
        assert ix.get("new-1") is None and ix.get("t0")["text"] == "첫 문서를 고쳐 쓴 내용"


def test_concurrent_writes_take_turns_and_a_busy_index_is_a_409(server, index_dir):
    from koembed.index import Index

    async def many() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as c:
            return await asyncio.gather(*(
                c.post(server + "/v1/indexes/news/documents", headers=AUTH,
                       json={"documents": [{"id": f"c{i}", "text": f"동시에 쓰는 문서 {i}번"}]}) for i in range(4)))

    results = asyncio.run(many())
    assert [r.status_code for r in results] == [200] * 4
    generations = sorted(r.json()["generation"] for r in results)  # one commit each, one after another
    assert generations == list(range(generations[0], generations[0] + 4))
    holder = Index.open(index_dir, writable=True)  # `koembed index` writing the same folder
    try:
        r = httpx.post(server + "/v1/indexes/news/documents", headers=AUTH,
                       json={"documents": [{"id": "x", "text": "막힌 쓰기"}]})
        assert r.status_code == 409 and r.json()["error"]["message"].startswith("index 'news': "), r.text
        assert str(index_dir) not in r.text
    finally:
        holder.close()


def test_writes_need_the_flag_and_the_key(index_dir, tiny_encoder):
    with pytest.raises(InputError, match="allow_writes needs an API key"):
        ServeConfig(api_key=None, allow_writes=True)
    doc = {"documents": [{"id": "a", "text": "가나다"}]}
    with live_server(create_app({"news": index_dir}, tiny_encoder, ServeConfig(api_key=KEY))) as url:
        r = httpx.post(url + "/v1/indexes/news/documents", headers=AUTH, json=doc)
        assert r.status_code == 403 and "--allow-writes" in r.json()["error"]["message"]
    with live_server(create_app({"news": index_dir}, tiny_encoder, ServeConfig(api_key=KEY, allow_writes=True))) as url:
        assert httpx.post(url + "/v1/indexes/news/documents", json=doc).status_code == 401
        r = httpx.post(url + "/v1/indexes/other/documents", headers=AUTH, json=doc)
        assert r.status_code == 404 and r.json()["error"]["param"] == "index"
        r = httpx.post(url + "/v1/indexes/news/documents", headers=AUTH,
                       json={"documents": [{"id": "a", "text": "  "}]})
        assert r.status_code == 422 and r.json()["error"]["param"] == "documents[0].text"


def test_langchain_retriever(server):
    from koembed.integrations.langchain import KoembedRetriever

    docs = KoembedRetriever(url=server, api_key=KEY, index="news", k=3).invoke(TEXTS[6])
    assert docs[0].page_content == TEXTS[6] and docs[0].metadata["id"] == "t6"
    assert docs[0].metadata["topic"] == "날씨" and docs[0].metadata["index"] == "news"
    filtered = KoembedRetriever(url=server, api_key=KEY, k=3, mode="dense", filters={"topic": "경제"}).invoke("뉴스")
    assert filtered and all(d.metadata["topic"] == "경제" for d in filtered)
    from koembed.errors import KoembedError

    with pytest.raises(KoembedError, match="401"):
        KoembedRetriever(url=server, api_key="wrong").invoke("x")


def test_llamaindex_retriever(server):
    from koembed.integrations.llamaindex import KoembedRetriever

    nodes = KoembedRetriever(server, api_key=KEY, index="news", k=2, mode="hybrid").retrieve(TEXTS[8])
    assert len(nodes) == 2 and nodes[0].node.node_id == "t8" and nodes[0].node.get_content() == TEXTS[8]
    assert nodes[0].score >= nodes[1].score and nodes[0].node.metadata["topic"] == TOPIC_OF_8


TOPIC_OF_8 = ["날씨", "경제", "생활"][8 % 3]  # serve_fixtures.write_docs: topics in turn


def test_client_errors_are_one_line_and_serve_refuses_writes_without_a_key(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KOEMBED_API_KEY", raising=False)
    from serve_fixtures import free_port

    from koembed.cli import main
    from koembed.errors import KoembedError
    from koembed.integrations import KoembedClient

    with pytest.raises(KoembedError, match=r"cannot be reached .*is `koembed serve` running\?"):
        KoembedClient(f"http://127.0.0.1:{free_port()}", timeout=2).search("서울")
    assert main(["serve", "--allow-writes", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: serve config: allow_writes needs an API key"), err
