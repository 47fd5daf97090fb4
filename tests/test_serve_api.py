"""``koembed serve`` through FastAPI's test client: every route, every refusal, auth on and off, CORS, the page."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from serve_fixtures import REPO, TEXTS, build, write_docs

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'koembed[serve]')")
from fastapi.testclient import TestClient  # noqa: E402

from koembed.cli import main  # noqa: E402
from koembed.errors import IndexRefusedError, InputError  # noqa: E402
from koembed.server import ServeConfig, create_app  # noqa: E402
from koembed.server.app import index_paths  # noqa: E402
from koembed.server.run import bind_warning  # noqa: E402


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, tiny_st_dir):
    root = tmp_path_factory.mktemp("serve-api")
    main_ix = build(root / "news", write_docs(root / "news.jsonl"), tiny_st_dir)
    small = build(root / "small", write_docs(root / "small.jsonl", n=6), tiny_st_dir, lexical=False)  # dense only
    return {"news": main_ix, "small": small}


@pytest.fixture(scope="module")
def client(indexes, tiny_encoder):
    with TestClient(create_app(indexes, tiny_encoder, ServeConfig(api_key=None, max_batch=8, max_k=20,
                                                                 max_text_chars=200, max_body_bytes=4096))) as c:
        yield c


@pytest.fixture(scope="module")
def secured(indexes, tiny_encoder):
    with TestClient(create_app(indexes, tiny_encoder, ServeConfig(api_key="s3cret-key"))) as c:
        yield c


def error_of(response, status: int, param: str | None) -> str:
    """Assert a JSON error in OpenAI's shape with ``status`` and ``param``; return its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    err = response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == param, err
    assert "Traceback" not in response.text and 'File "' not in response.text
    return err["message"]


# -- routes ----------------------------------------------------------------------------------------------------
def test_healthz_and_info(client, tiny_encoder, indexes):
    from koembed.index import Index

    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["model"]["fingerprint"] == tiny_encoder.fingerprint
    assert info["model"]["dim"] == tiny_encoder.dim
    by_name = {i["name"]: i for i in info["indexes"]}
    assert by_name["news"]["count"] == len(TEXTS) and by_name["small"]["count"] == 6
    with Index.open(indexes["news"]) as served:  # the generation on disk, which is the one being served
        assert by_name["news"]["type"] == "Flat" and by_name["news"]["generation"] == served.generation > 0
    assert info["modes"] == ["hybrid", "dense", "lexical"]
    assert by_name["news"]["modes"] == info["modes"] and by_name["news"]["default_mode"] == "hybrid"
    assert by_name["small"]["modes"] == ["dense"] and by_name["small"]["default_mode"] == "dense"
    assert info["limits"]["max_k"] == 20 and info["auth"] is False
    assert "directory" not in json.dumps(info)  # no server paths beyond the model's name


def test_search_finds_the_document_and_returns_its_fields(client):
    r = client.post("/search", json={"queries": [TEXTS[5], TEXTS[40]], "k": 3, "mode": "dense", "index": "news"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "dense" and body["k"] == 3 and [i["name"] for i in body["indexes"]] == ["news"]
    assert body["indexes"][0]["mode"] == "dense"
    results = body["indexes"][0]["results"]
    assert [x["query"] for x in results] == [TEXTS[5], TEXTS[40]]
    top = results[0]["hits"][0]
    assert top["id"] == "t5" and top["text"] == TEXTS[5] and top["score"] == pytest.approx(1.0, abs=1e-4)
    assert top["metadata"] == {"topic": "생활", "line": 6, "version": 0}  # topics cycle 날씨, 경제, 생활
    assert results[1]["hits"][0]["id"] == "t40"
    assert all(len(x["hits"]) == 3 for x in results)
    scores = [h["score"] for h in results[0]["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_lexical_and_hybrid_modes(client):
    for mode in ("lexical", "hybrid"):
        body = client.post("/search", json={"queries": [TEXTS[7]], "k": 5, "mode": mode, "index": "news"}).json()
        ix = body["indexes"][0]
        assert body["mode"] == mode and ix["mode"] == mode
        top = ix["results"][0]["hits"][0]
        assert top["id"] == "t7"
        signals = {name for name, v in top["scores"].items() if v is not None}
        assert signals == ({"lexical"} if mode == "lexical" else {"dense", "lexical", "fused"})
        assert top["score"] == top["scores"]["lexical" if mode == "lexical" else "fused"]
    # No mode: each index answers in its own default (hybrid where it has a lexical part).
    body = client.post("/search", json={"queries": [TEXTS[7]], "k": 2}).json()
    assert body["mode"] is None and [i["mode"] for i in body["indexes"]] == ["hybrid", "dense"]
    body = client.post("/search", json={"queries": [TEXTS[7]], "k": 2, "index": "news", "mode": "hybrid",
                                        "fusion": "rrf", "dense_weight": 0.3}).json()
    assert body["indexes"][0]["results"][0]["hits"][0]["id"] == "t7"
    # A lexical query that matches nothing returns no hits rather than failing.
    body = client.post("/search", json={"queries": ["zqxj"], "mode": "lexical", "index": "news"}).json()
    assert body["indexes"][0]["results"][0]["hits"] == []


def test_concurrent_searches_each_get_their_own_answer(client):
    """Concurrent requests asking the same of an index may share one search call; each gets its own rows."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> tuple[int, list[str]]:
        body = client.post("/search", json={"queries": [TEXTS[i], TEXTS[i + 1]], "k": 4, "mode": "dense",
                                            "index": "news"}).json()
        return i, [r["hits"][0]["id"] for r in body["indexes"][0]["results"]]

    with ThreadPoolExecutor(8) as pool:
        for i, top in pool.map(one, range(0, 48, 2)):
            assert top == [f"t{i}", f"t{i + 1}"]


def test_search_filters_and_several_indexes(client):
    r = client.post("/search", json={"queries": [TEXTS[0]], "k": 20, "filters": {"topic": ["경제", "생활"]}})
    body = r.json()
    assert [i["name"] for i in body["indexes"]] == ["news", "small"]  # default: every index
    for ix in body["indexes"]:
        hits = ix["results"][0]["hits"]
        assert hits and all(h["metadata"]["topic"] in ("경제", "생활") for h in hits)
        assert "t0" not in {h["id"] for h in hits}  # t0 is 날씨
    small = body["indexes"][1]
    assert small["count"] == 6 and len(small["results"][0]["hits"]) == 4  # 4 of the 6 match
    r = client.post("/search", json={"queries": ["날씨"], "index": ["small", "news", "small"], "k": 2})
    assert [i["name"] for i in r.json()["indexes"]] == ["small", "news"]
    r = client.post("/search", json={"queries": ["날씨"], "filters": {"topic": "없는 주제"}})
    assert all(ix["results"][0]["hits"] == [] for ix in r.json()["indexes"])


def test_embeddings_match_the_encoder_in_both_formats(client, tiny_encoder):
    texts = ["안녕하세요, 반갑습니다.", TEXTS[3]]
    r = client.post("/v1/embeddings", json={"input": texts, "model": "whatever-a-client-sends"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == Path(tiny_encoder.model_name).name  # a name, not a path
    assert [d["object"] for d in body["data"]] == ["embedding", "embedding"]
    assert [d["index"] for d in body["data"]] == [0, 1]
    direct = tiny_encoder.encode(texts)
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, direct, atol=1e-6)
    lengths = np.minimum(tiny_encoder.token_lengths(texts), tiny_encoder.max_seq_length)
    assert body["usage"] == {"prompt_tokens": int(lengths.sum()), "total_tokens": int(lengths.sum())}
    assert body["truncated"] == 0

    r = client.post("/v1/embeddings", json={"input": texts[0], "encoding_format": "base64"})
    b64 = r.json()["data"][0]["embedding"]
    assert isinstance(b64, str)
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(b64), dtype="<f4"), direct[0], atol=1e-6)
    assert client.post("/v1/embeddings", json={"input": texts, "dimensions": tiny_encoder.dim}).status_code == 200


def test_long_inputs_are_truncated_and_counted(client, tiny_encoder):
    long = "가나다라마바사 " * 25  # 200 characters, over the tiny model's token limit
    assert tiny_encoder.token_lengths([long])[0] > tiny_encoder.max_seq_length
    body = client.post("/v1/embeddings", json={"input": [long, "짧은 글"]}).json()
    assert body["truncated"] == 1
    assert body["usage"]["prompt_tokens"] <= tiny_encoder.max_seq_length + 10


def test_encode_plain(client, tiny_encoder):
    r = client.post("/encode", json={"texts": ["서울 날씨"]})
    body = r.json()
    assert body["dim"] == tiny_encoder.dim and body["fingerprint"] == tiny_encoder.fingerprint
    np.testing.assert_allclose(body["vectors"], tiny_encoder.encode(["서울 날씨"]), atol=1e-6)
    assert body["tokens"] > 0 and body["truncated"] == 0


def test_without_an_index_it_serves_embeddings_only(tiny_encoder):
    with TestClient(create_app(None, tiny_encoder, ServeConfig(api_key=None))) as c:
        assert c.get("/info").json()["indexes"] == []
        assert c.post("/v1/embeddings", json={"input": "안녕"}).status_code == 200
        assert "serves no index" in error_of(c.post("/search", json={"queries": ["안녕"]}), 404, "index")


# -- refusals --------------------------------------------------------------------------------------------------
BAD = [
    ("/search", {"queries": []}, 422, "queries", "at least 1"),
    ("/search", {"queries": ["a"], "k": 0}, 422, "k", "between 1 and 20"),
    ("/search", {"queries": ["a"], "k": 21}, 422, "k", "max_k"),
    ("/search", {"queries": ["a"], "k": "ten"}, 422, "k", "integer"),
    ("/search", {"queries": ["a"], "mode": "fuzzy"}, 422, "mode", "dense"),
    ("/search", {"queries": ["a"], "mode": "lexical"}, 422, "mode", "'small' has no lexical part"),
    ("/search", {"queries": ["a"], "mode": "hybrid", "index": "small"}, 422, "mode", "no lexical part"),
    ("/search", {"queries": ["a"], "mode": "dense", "dense_weight": 0.5}, 422, "dense_weight", "only hybrid"),
    ("/search", {"queries": ["a"], "fusion": "rrf", "index": "news"}, 422, "fusion", "only hybrid"),
    ("/search", {"queries": ["a"], "mode": "hybrid", "dense_weight": 1.5}, 422, "dense_weight", "1"),
    ("/search", {"queries": ["a"], "mode": "hybrid", "fusion": "max"}, 422, "fusion", "rrf"),
    ("/search", {"queries": ["a"], "index": "nope"}, 404, "index", "news, small"),
    ("/search", {"queries": ["a"], "index": "../../etc"}, 404, "index", "unknown index"),
    ("/search", {"queries": ["a"], "index": []}, 422, "index", "empty"),
    ("/search", {"queries": ["짧다", "긴" * 201]}, 422, "queries[1]", "max_text_chars"),
    ("/search", {"queries": ["a"] * 9}, 422, "queries", "max_batch"),
    ("/search", {"queries": ["  "]}, 422, "queries[0]", "empty"),
    ("/search", {"queries": ["a"], "filters": {"topic": {"$ne": 1}}}, 422, "filters.topic", ""),
    ("/search", {"querys": ["a"]}, 422, "querys", "unknown field"),
    ("/search", {"queries": "a"}, 422, "queries", "list"),
    ("/v1/embeddings", {"input": []}, 422, "input", "empty"),
    ("/v1/embeddings", {"input": ""}, 422, "input[0]", "empty"),
    ("/v1/embeddings", {"input": [[101, 102]]}, 400, "input", "token arrays"),
    ("/v1/embeddings", {"input": 5}, 422, "input", "string"),
    ("/v1/embeddings", {"input": "가" * 201}, 422, "input[0]", "201 characters"),
    ("/v1/embeddings", {"input": "a", "encoding_format": "int8"}, 422, "encoding_format", "float"),
    ("/v1/embeddings", {"input": "a", "dimensions": 3}, 422, "dimensions", "cannot shorten"),
    ("/v1/embeddings", {}, 422, "input", "required"),
    ("/encode", {"texts": ["a"] * 9}, 422, "texts", "max_batch"),
]


@pytest.mark.parametrize(("path", "body", "status", "param", "needle"), BAD,
                         ids=[f"{p}-{s}-{param}" for p, _, s, param, _ in BAD])
def test_bad_requests_get_a_json_error_naming_the_field(client, path, body, status, param, needle):
    message = error_of(client.post(path, json=body), status, param)
    assert needle in message and message.startswith(param)


def test_malformed_wrong_type_and_oversized_bodies(client):
    json_headers = {"content-type": "application/json"}
    assert "malformed JSON" in error_of(client.post("/search", content=b'{"queries": [', headers=json_headers),
                                        400, "body")
    assert "JSON object" in error_of(client.post("/search", content=b"[1, 2]", headers=json_headers), 400, "body")
    assert "missing" in error_of(client.post("/search", headers=json_headers), 400, "body")
    msg = error_of(client.post("/search", content=b'{"queries": ["a"]}', headers={"content-type": "text/plain"}),
                   415, "body")
    assert "application/json" in msg
    error_of(client.post("/v1/embeddings", data={"input": "a"}), 415, "body")  # a form post
    big = json.dumps({"queries": ["가" * 150] * 20}).encode()
    assert len(big) > 4096
    assert "4096 bytes" in error_of(client.post("/search", content=big, headers=json_headers), 413, "body")

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b" " * 1000

    assert "max_body_bytes" in error_of(client.post("/search", content=chunks(), headers=json_headers), 413, "body")
    error_of(client.get("/nope"), 404, None)
    error_of(client.get("/search"), 405, None)


def test_an_unexpected_failure_is_a_500_without_internals(indexes, tiny_encoder):
    app = create_app(indexes, tiny_encoder, ServeConfig(api_key=None))

    def boom():
        raise RuntimeError("/secret/path/to/something failed")

    app.state.service.info = boom
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/info")
        assert "secret" not in r.text
        assert "internal server error" in error_of(r, 500, None)
        assert c.get("/healthz").status_code == 200  # and the server lives on


# -- security --------------------------------------------------------------------------------------------------
def test_api_key_is_required_everywhere_but_healthz_and_the_page(secured):
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/").status_code == 200 and secured.get("/static/app.js").status_code == 200
    good = {"Authorization": "Bearer s3cret-key"}
    for method, path, body in [("GET", "/info", None), ("POST", "/search", {"queries": ["날씨"]}),
                               ("POST", "/v1/embeddings", {"input": "날씨"}), ("POST", "/encode", {"texts": ["날씨"]}),
                               ("GET", "/openapi.json", None)]:
        r = secured.request(method, path, json=body)
        error_of(r, 401, None)
        assert r.headers["www-authenticate"] == "Bearer"
        error_of(secured.request(method, path, json=body, headers={"Authorization": "Bearer wrong"}), 401, None)
        error_of(secured.request(method, path, json=body, headers={"Authorization": "Basic czNjcmV0"}), 401, None)
        error_of(secured.request(method, path, json=body, headers={"Authorization": "Bearer s3cret-ke"}), 401, None)
        assert secured.request(method, path, json=body, headers=good).status_code == 200, path
    assert secured.get("/info", headers=good).json()["auth"] is True


def test_api_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("KOEMBED_API_KEY", "from-env")
    assert ServeConfig().api_key == "from-env"
    assert ServeConfig(api_key="given").api_key == "given"
    assert "from-env" not in repr(ServeConfig()) and ServeConfig().public_dict()["api_key"] == "set"
    monkeypatch.setenv("KOEMBED_API_KEY", "")
    assert ServeConfig().api_key is None


def test_cors_is_off_unless_one_origin_is_allowed(client, indexes, tiny_encoder):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    r = client.options("/search", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    r = client.post("/search", json={"queries": ["날씨"]}, headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in r.headers
    app = create_app(indexes, tiny_encoder, ServeConfig(api_key="k", cors_origin="https://app.example"))
    with TestClient(app) as c:
        r = c.options("/search", headers=preflight)  # preflight needs no token
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
        r = c.options("/search", headers={**preflight, "Origin": "https://evil.example"})
        assert r.headers.get("access-control-allow-origin") != "https://evil.example"


def test_binding_beyond_loopback_is_warned_about():
    assert ServeConfig().host == "127.0.0.1" and bind_warning(ServeConfig()) is None
    assert bind_warning(ServeConfig(host="::1")) is None and bind_warning(ServeConfig(host="localhost")) is None
    warning = bind_warning(ServeConfig(host="0.0.0.0", api_key=None))
    assert warning.startswith("warning:") and "no API key" in warning
    assert "need the API key" in bind_warning(ServeConfig(host="0.0.0.0", api_key="k"))


def test_config_and_index_names_are_checked(tmp_path, indexes, tiny_st_dir):
    for bad in [dict(max_k=0), dict(port=70000), dict(cors_origin="*"), dict(reload_check_s=-1),
                dict(api_key="비밀"), dict(api_key="two words")]:
        with pytest.raises(InputError):
            ServeConfig(**bad)
    assert index_paths([str(indexes["news"]), f"other={indexes['small']}"]) == {
        "news": indexes["news"], "other": indexes["small"]}
    with pytest.raises(InputError, match="given twice"):
        index_paths([indexes["news"], f"news={indexes['small']}"])
    with pytest.raises(InputError, match="index name"):
        index_paths({"bad name/..": indexes["news"]})
    with pytest.raises(IndexRefusedError):
        create_app({"x": tmp_path}, config=ServeConfig(api_key=None))  # not an index


def test_an_index_of_another_model_is_refused_at_startup(tmp_path, indexes, tiny_bert_dir):
    from koembed import KoMiniLMEncoder

    other = KoMiniLMEncoder(str(tiny_bert_dir))  # same dimension, different model (no Normalize module)
    with pytest.raises(IndexRefusedError, match="fingerprint"):
        create_app(indexes, other, ServeConfig(api_key=None))


# -- page, schema, CLI -----------------------------------------------------------------------------------------
def test_the_page_is_self_contained_korean_html(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    assert '<html lang="ko">' in html and '<meta charset="utf-8">' in html and 'name="viewport"' in html
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(ref.startswith("/static/") for ref in refs)  # nothing from a CDN
    for ref in refs:
        asset = client.get(ref)
        text = asset.text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a namespace name, not a fetch
        assert asset.status_code == 200 and "http://" not in text and "https://" not in text
    assert client.get("/static/../app.py").status_code == 404


def test_committed_openapi_schema_is_current():
    from koembed.server.openapi import schema_text

    committed = (REPO / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "docs/openapi.json is stale: python -m koembed.server.openapi docs/openapi.json"
    paths = json.loads(committed)["paths"]
    assert {"/search", "/v1/embeddings", "/encode", "/info", "/healthz"} <= set(paths)


def test_a_missing_serve_extra_is_one_line_naming_it(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["serve", "--port", "0"]) == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: koembed serve needs uvicorn: pip install 'koembed[serve]'"]


def test_cli_serve_help_and_a_bad_index(tmp_path, capsys):
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--api-key", "--cors-origin", "--max-batch", "--max-k", "KOEMBED_API_KEY"):
        assert option in out
    assert main(["serve", str(tmp_path / "missing")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "missing" in err[0]
