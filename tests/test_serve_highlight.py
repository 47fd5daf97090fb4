"""Highlight spans for the search page (koembed.server.highlight): what the lexical side counted, in characters."""

from __future__ import annotations

import pytest
from serve_fixtures import TEXTS, build, write_docs

from koembed.server.highlight import spans


def _marked(text: str, query: str, analyser: str | None = None) -> list[str]:
    return [text[a:b] for a, b in spans(text, query, analyser)]


def test_bigram_pairs_are_marked_where_the_analyser_pairs_them():
    text = "오늘 서울은 맑고, 서울특별시 기온은 24도. Seoul!"
    assert _marked(text, "서울 날씨 24 seoul") == ["서울", "서울", "24", "Seoul"]
    assert _marked(text, "부산") == []
    assert _marked("서 울", "서울") == ["서", "울"]  # a pair split by a space is a pair to the analyser, too
    assert spans("가나다", "가", None) == [[0, 1]]  # a one-letter query
    assert spans("😀가나", "가나", None) == [[1, 3]]  # code points, as the page counts them (Array.from)


def test_word_tokens_of_other_analysers_are_found_as_written():
    pytest.importorskip("kiwipiepy")
    assert "해수욕장" in _marked("부산 해운대 해수욕장은 붐볐다", "해수욕장", "kiwi")


def test_search_gives_highlights_only_when_asked(tmp_path, tiny_st_dir, tiny_encoder):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from koembed.server import ServeConfig, create_app

    ix = build(tmp_path / "news", write_docs(tmp_path / "news.jsonl", n=10), tiny_st_dir)
    with TestClient(create_app({"news": ix}, tiny_encoder, ServeConfig(api_key=None))) as client:
        body = {"queries": [TEXTS[3]], "k": 2, "mode": "lexical"}
        plain = client.post("/search", json=body).json()["indexes"][0]["results"][0]["hits"][0]
        assert "highlights" not in plain
        hit = client.post("/search", json=body | {"highlight": True}).json()["indexes"][0]["results"][0]["hits"][0]
        assert hit["text"] == TEXTS[3] and hit["highlights"]
        covered = sum(b - a for a, b in hit["highlights"])
        assert covered >= len("".join(TEXTS[3].split())) - 2  # the query itself: nearly every letter marked
