"""The HTTP API under odd requests (issue 27): HEAD wherever GET works, no server path in any answer, filters of
thousands of values, and a bounded fuzz of arbitrary bodies: no 5xx, no traceback in the log, the server answers on.

A longer fuzz run against a live server: examples/benchmarks/fuzz_http.py.
"""

from __future__ import annotations

import json
import logging

import pytest
from serve_fixtures import build, write_docs

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'koembed[serve]')")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from koembed.errors import IndexRefusedError  # noqa: E402
from koembed.server import ServeConfig, create_app  # noqa: E402

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_st_dir):
    root = tmp_path_factory.mktemp("serve-reliability")
    return build(root / "news", write_docs(root / "news.jsonl", n=12), tiny_st_dir)


@pytest.fixture(scope="module")
def app(index_dir, tiny_encoder):
    return create_app({"news": index_dir}, tiny_encoder, ServeConfig(api_key=None, max_body_bytes=1 << 20))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


# -- HEAD ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/healthz", "/info", "/v1/models", "/", "/static/app.js", "/openapi.json"])
def test_head_answers_wherever_get_does_without_a_body(client, path):
    got, head = client.get(path), client.head(path)
    assert got.status_code == 200 and head.status_code == 200, (path, head.status_code)
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers.get("content-length") == got.headers.get("content-length")


def test_head_where_get_is_not_allowed_is_still_a_json_405(client):
    r = client.head("/search")
    assert r.status_code == 405 and r.content == b""


# -- no server paths in answers -----------------------------------------------------------------------------------
def test_a_refused_index_names_the_index_not_the_servers_path(app, client, index_dir, monkeypatch):
    resolved = str(index_dir.resolve())
    service = app.state.service

    async def refused(*args, **kwargs):
        raise IndexRefusedError(f"{resolved}/docs.sqlite: table docs holds 0 rows; see also /srv/other/place/x.faiss")

    monkeypatch.setattr(service, "search", refused)
    r = client.post("/search", json={"queries": ["날씨"]})
    assert r.status_code == 409
    message = r.json()["error"]["message"]
    assert resolved not in r.text and "/srv/other" not in r.text
    assert message.startswith("<index news>/docs.sqlite: table docs holds 0 rows") and "…/x.faiss" in message


def test_no_answer_carries_an_absolute_path(client, index_dir):
    root = str(index_dir.resolve().parent)
    for r in (client.get("/info"), client.get("/v1/models"), client.post("/search", json={"queries": ["날씨"]})):
        assert r.status_code == 200 and root not in r.text


# -- large filters ------------------------------------------------------------------------------------------------
def test_a_filter_of_thousands_of_values_runs(client):
    topics = ["날씨"] + [f"없는 주제 {i}" for i in range(2000)]
    r = client.post("/search", json={"queries": ["오늘"], "k": 12, "mode": "lexical", "filters": {"topic": topics}})
    assert r.status_code == 200, r.text
    hits = r.json()["indexes"][0]["results"][0]["hits"]
    assert hits and all(h["metadata"]["topic"] == "날씨" for h in hits)


# -- fuzz ---------------------------------------------------------------------------------------------------------
# Strings from the whole of Unicode, lone surrogates included (they reach the server as \uD8xx escapes).
text = st.text(st.characters(exclude_categories=()), max_size=40)
numbers = st.one_of(st.integers(), st.integers(min_value=10**30, max_value=10**60), st.floats(allow_nan=False),
                    st.just(10**4000))
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                            st.dictionaries(text, inner, max_size=5)), max_leaves=20)
FIELDS = ["queries", "k", "mode", "filters", "index", "dense_weight", "fusion", "input", "encoding_format",
          "dimensions", "texts", "model", "user", "input_type", "highlight"]
near_valid = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)
deep = st.integers(min_value=1, max_value=3000).map(lambda n: ("[" * n + "]" * n).encode())
bodies = st.one_of(  # bytes as sent: JSON with \uXXXX escapes (json.dumps), deep nesting, arbitrary bytes
    near_valid.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    deep,
    st.binary(max_size=60),
)
routes = st.sampled_from(["/search", "/v1/embeddings", "/encode", "/v1/indexes/news/documents"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(route=routes, body=bodies)
def test_fuzz_no_5xx_no_traceback_and_the_server_answers_on(client, caplog, route, body):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="koembed.server"):
        r = client.post(route, content=body, headers=JSON)
    assert r.status_code < 500, (route, body[:300], r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    assert "error" in r.json() or r.status_code == 200
    assert not [rec for rec in caplog.records if rec.exc_info], (route, body[:300])
    assert client.get("/healthz").status_code == 200
