"""One bad request never hurts another: text that is not text is refused at the door, naming the field, and a
request the encoder fails on fails alone, even when it shared a micro-batch with good ones (issue 27)."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest
from serve_fixtures import build, live_server, write_docs

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'koembed[serve]')")
from fastapi.testclient import TestClient  # noqa: E402

from koembed.server import ServeConfig, create_app  # noqa: E402

JSON = {"content-type": "application/json"}
# Valid JSON that decodes to a lone surrogate (a high one, a low one, an undecodable byte's stand-in).
LONE = ["\\ud800", "x\\udc80", "\\udcff\\uac00"]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_st_dir):
    root = tmp_path_factory.mktemp("serve-isolation")
    return build(root / "news", write_docs(root / "news.jsonl", n=12), tiny_st_dir)


@pytest.fixture(scope="module")
def client(index_dir, tiny_encoder):
    with TestClient(create_app({"news": index_dir}, tiny_encoder, ServeConfig(api_key=None))) as c:
        yield c


# (path, body with {} where the bad string goes, the field the error must name)
CASES = [
    ("/search", '{{"queries": ["좋은 날씨", "{}"]}}', "queries[1]"),
    ("/search", '{{"queries": ["{}"], "mode": "dense"}}', "queries[0]"),
    ("/search", '{{"queries": ["{}"], "mode": "lexical"}}', "queries[0]"),
    ("/search", '{{"queries": ["{}"], "mode": "hybrid", "fusion": "rrf"}}', "queries[0]"),
    ("/search", '{{"queries": ["날씨"], "filters": {{"topic": "{}"}}}}', "filters.topic"),
    ("/search", '{{"queries": ["날씨"], "filters": {{"topic": ["경제", "{}"]}}}}', "filters.topic[1]"),
    ("/search", '{{"queries": ["날씨"], "filters": {{"{}": 1}}}}', "filters (a key)"),
    ("/search", '{{"queries": ["날씨"], "index": "{}"}}', "index"),
    ("/v1/embeddings", '{{"input": "{}"}}', "input"),
    ("/v1/embeddings", '{{"input": ["안녕", "{}"]}}', "input[1]"),
    ("/v1/embeddings", '{{"input": "안녕", "user": "{}"}}', "user"),
    ("/encode", '{{"texts": ["{}"]}}', "texts[0]"),
]


@pytest.mark.parametrize(("path", "template", "param"), CASES, ids=[f"{p}-{f}" for p, _, f in CASES])
@pytest.mark.parametrize("bad", LONE)
def test_a_lone_surrogate_is_a_422_naming_the_field(client, caplog, path, template, param, bad):
    with caplog.at_level(logging.INFO, logger="koembed.server"):
        r = client.post(path, content=template.format(bad).encode("utf-8"), headers=JSON)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["code"] == "invalid_text"
    assert err["message"].startswith(f"{param}: holds a lone surrogate (U+D")
    assert not [rec for rec in caplog.records if rec.exc_info], "a refused request must leave no traceback"
    assert client.get("/healthz").status_code == 200


def test_bytes_that_are_not_utf8_are_a_400_naming_the_body(client):
    r = client.post("/search", content=b'{"queries": ["\xff\xfe bad"]}', headers=JSON)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "body" and "not valid UTF-8 (byte 0xff at offset 14)" in err["message"]


def test_escaped_surrogate_pairs_are_text(client):
    # Python's json.dumps escapes an emoji as a surrogate pair: that is one valid character.
    r = client.post("/v1/embeddings", content=b'{"input": ["\\ud83d\\ude00 \\uc548\\ub155"]}', headers=JSON)
    assert r.status_code == 200, r.text
    r = client.post("/search", content=b'{"queries": ["\\\\ud800 is only a backslash and text"]}', headers=JSON)
    assert r.status_code == 200, r.text


class FlakyEncoder:
    """The tiny encoder, slowed down (so concurrent requests share batches), failing any batch holding POISON."""

    POISON = "이 문장은 모델을 멈춘다"

    def __init__(self, encoder) -> None:
        self._encoder = encoder
        self.mixed_failures = 0  # failing batches that also held other requests' texts
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def _check(self, texts) -> None:
        time.sleep(0.01)
        if self.POISON in texts:
            if len(texts) > 1:
                with self._lock:
                    self.mixed_failures += 1
            raise RuntimeError("the model failed on this input")

    def encode(self, texts, **kwargs):
        self._check(texts)
        return self._encoder.encode(texts, **kwargs)

    def encode_with_stats(self, texts, **kwargs):  # what the server's batcher calls where the encoder has it
        self._check(texts)
        return self._encoder.encode_with_stats(texts, **kwargs)


def test_a_bad_client_beside_good_ones_fails_no_good_request(index_dir, tiny_encoder, caplog):
    flaky = FlakyEncoder(tiny_encoder)
    app = create_app({"news": index_dir}, flaky, ServeConfig(api_key=None))
    good_failures: list[str] = []
    bad_answers: dict[int | str, int] = {}
    good_ok = 0
    stop = threading.Event()
    lock = threading.Lock()

    def good_client(i: int, url: str) -> None:
        nonlocal good_ok
        with httpx.Client(base_url=url, timeout=30) as c:
            for j in range(12):
                try:
                    if j % 2:
                        r = c.post("/search", json={"queries": [f"오늘 날씨 {i} {j}"], "mode": "dense", "k": 3})
                        ok = r.status_code == 200 and len(r.json()["indexes"][0]["results"][0]["hits"]) == 3
                    else:
                        r = c.post("/v1/embeddings", json={"input": [f"좋은 하루 {i}", f"경제 뉴스 {j}"]})
                        ok = r.status_code == 200 and len(r.json()["data"]) == 2
                    failure = None if ok else f"{r.status_code} {r.text[:200]}"
                except httpx.TransportError as exc:  # e.g. a connection reset
                    failure = repr(exc)
                with lock:
                    if failure is None:
                        good_ok += 1
                    else:
                        good_failures.append(failure)

    def bad_client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            n = 0
            while not stop.is_set():
                body = (b'{"queries": ["\\ud800"]}' if n % 2 else
                        f'{{"queries": ["{FlakyEncoder.POISON}"]}}'.encode())
                try:
                    answer: int | str = c.post("/search", content=body, headers=JSON).status_code
                except httpx.TransportError as exc:  # the server dropped the connection instead of answering
                    answer = type(exc).__name__
                bad_answers[answer] = bad_answers.get(answer, 0) + 1
                n += 1
                time.sleep(0.002)

    with caplog.at_level(logging.INFO, logger="koembed.server"), live_server(app) as url:
        bad = threading.Thread(target=bad_client, args=(url,))
        bad.start()
        goods = [threading.Thread(target=good_client, args=(i, url)) for i in range(6)]
        for t in goods:
            t.start()
        for t in goods:
            t.join(120)
        stop.set()
        bad.join(30)
        assert httpx.get(url + "/healthz").status_code == 200
    assert good_failures == [] and good_ok == 6 * 12
    # The bad client was answered too: 422 for the surrogate, 500 for the input that breaks the model.
    assert bad_answers.get(422, 0) > 0 and bad_answers.get(500, 0) > 0
    assert set(bad_answers) <= {422, 500}, bad_answers
    # And its poison did share batches with good requests, so isolation was exercised, not dodged.
    assert flaky.mixed_failures > 0
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert all("the model failed on this input" in str(r.exc_info[1]) for r in tracebacks)
