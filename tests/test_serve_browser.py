"""The search page in a real headless Chromium: type a Korean query, read the results, take screenshots.

Uses Debian's ``chromium`` (``make test`` installs it with a Korean font where it runs as root with
apt-get), driven by Playwright with ``executable_path``; skipped, saying why, where either is missing.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from serve_fixtures import TEXTS, TOPICS, build, live_server, write_docs

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'koembed[serve]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

from koembed.server import ServeConfig, create_app  # noqa: E402

CHROMIUM = os.environ.get("KOEMBED_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
# Where the screenshots go: KOEMBED_SCREENSHOTS, else the test's temporary folder.
SHOTS = os.environ.get("KOEMBED_SCREENSHOTS")


def _korean_font() -> bool:
    try:
        out = subprocess.run(["fc-list", ":lang=ko"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return True  # no fontconfig to ask: let the glyph check in the page decide
    return bool(out.strip())


pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium; `make test` "
                                                "does it when run as root)"),
    pytest.mark.skipif(CHROMIUM is not None and not _korean_font(),
                       reason="no Korean font installed (apt-get install fonts-nanum; `make test` does it as root)"),
]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_st_dir):
    root = tmp_path_factory.mktemp("serve-browser")
    return build(root / "news", write_docs(root / "news.jsonl"), tiny_st_dir)


def _open(browser, url: str, viewport: dict) -> tuple[object, list[str]]:
    page = browser.new_page(viewport=viewport, device_scale_factor=1, locale="ko-KR")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: problems.append(f"external request {r.url}") if not r.url.startswith(url) else None)
    page.goto(url + "/")
    return page, problems


def _search(page, query: str) -> list[str]:
    page.fill("#query", query)
    with page.expect_response(lambda r: r.url.endswith("/search")):
        page.press("#query", "Enter")
    page.wait_for_function("() => !document.getElementById('go').disabled")  # the results are drawn
    return page.locator(".hit .text").all_inner_texts()


def _shot(page, tmp_path: Path, name: str) -> bytes:
    folder = Path(SHOTS) if SHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    data = page.screenshot(path=str(folder / name), full_page=True)
    return data


def test_korean_search_on_a_phone_and_a_desktop(browser, index_dir, tiny_encoder, tmp_path):
    app = create_app({"news": index_dir}, tiny_encoder, ServeConfig(api_key=None, max_text_chars=300))
    with live_server(app) as url:
        page, problems = _open(browser, url, PHONE)
        page.wait_for_selector("#modes input")  # /info answered: the mode switch is built from it
        assert page.evaluate("document.documentElement.lang") == "ko"
        assert page.evaluate("document.characterSet") == "UTF-8"
        assert page.locator("#auth").is_hidden()  # no key set: no key field
        assert "news" in page.inner_text("#model") and "62건" in page.inner_text("#model")
        modes = page.locator("#modes input").evaluate_all("els => els.map(e => e.value)")
        assert modes == ["hybrid", "dense", "lexical"]
        assert page.locator("#modes input[value=hybrid]").is_checked()  # the index's default
        assert _search(page, TEXTS[30])[0] == TEXTS[30]
        assert "hybrid" in page.inner_text("#status")
        first_meta = page.locator(".hit").first.locator(".meta").inner_text()
        assert "dense " in first_meta and "lexical " in first_meta  # the signals the fused score came from
        page.click("#modes label:has(input[value=dense])")  # what a user taps: the label
        assert page.locator("#modes input[value=dense]").is_checked()
        page.fill("#k", "5")

        texts = _search(page, TEXTS[12])
        assert texts[0] == TEXTS[12] and len(texts) == 5
        first = page.locator(".hit").first
        assert first.locator(".score").inner_text() == "1.0000"
        meta = first.locator(".meta").inner_text()
        assert f"topic: {TOPICS[12 % 3]}" in meta and "id t12" in meta and "line: 13" in meta
        assert "dense" in page.inner_text("#status")

        # Korean is drawn with real glyphs: two different syllables must not render as the same box.
        distinct = page.evaluate("""() => {
            const c = document.createElement('canvas'); c.width = 64; c.height = 64;
            const g = c.getContext('2d'), font = getComputedStyle(document.body).fontFamily;
            const draw = (s) => { g.clearRect(0, 0, 64, 64); g.font = '40px ' + font; g.fillText(s, 4, 48);
                                  return Array.from(g.getImageData(0, 0, 64, 64).data).join(','); };
            return draw('가') !== draw('힣') && draw('가') !== draw('\\u0378'); }""")
        assert distinct, "Korean text renders as tofu: no Korean font reached the page"
        # Usable at phone width: nothing wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        data = _shot(page, tmp_path, "serve-phone.png")
        width, height = _png_size(data)
        assert width == PHONE["width"] and height >= PHONE["height"] and len(data) > 20_000

        # An error from the API is shown, not swallowed.
        page.fill("#query", "가" * 301)
        page.press("#query", "Enter")
        page.wait_for_selector("#error:not([hidden])")
        assert "검색어가 너무 깁니다" in page.inner_text("#error")  # Korean, the server's detail below it
        assert "max_text_chars" in page.inner_text("#error")
        assert not [p for p in problems if "422" not in p], problems  # only the refused request logged

        desk, problems = _open(browser, url, {"width": 1280, "height": 800})
        desk.wait_for_selector("#modes input")
        assert _search(desk, "맛있는 한국 음식")
        width, _ = _png_size(_shot(desk, tmp_path, "serve-desktop.png"))
        assert width == 1280 and not problems, problems


def test_the_page_asks_for_the_api_key_when_one_is_set(browser, index_dir, tiny_encoder):
    app = create_app({"news": index_dir}, tiny_encoder, ServeConfig(api_key="page-key"))
    with live_server(app) as url:
        page, _ = _open(browser, url, PHONE)
        page.wait_for_selector("#auth:not([hidden])")  # /info answered 401: the key field shows
        assert "키" in page.inner_text("#error") or page.inner_text("#error")
        page.fill("#token", "page-key")
        page.click("#save-token")
        page.wait_for_selector("#modes input")
        assert _search(page, TEXTS[20])[0] == TEXTS[20]


# -- issue 26: snippets and highlighting, score lines, the empty-result hint, the URL, filters, Korean errors --
LONG = ("서울 시내 버스 노선이 다음 달부터 바뀝니다. " * 12) + "부산 광안리 해수욕장은 여름 내내 붐볐다."
YELLOW = (0xFF, 0xE5, 0x8A)  # style.css: mark


def _marked_pixels(png: bytes, box: dict) -> int:
    """Pixels of the highlight colour inside ``box`` of a screenshot: the highlight is drawn, not just in the DOM."""
    import io

    image = pytest.importorskip("PIL.Image").open(io.BytesIO(png)).convert("RGB")
    left, top = int(box["x"]), int(box["y"])
    crop = image.crop((left, top, left + max(1, int(box["width"])), top + max(1, int(box["height"]))))
    import numpy as np

    pixels = np.asarray(crop, dtype=np.int16).reshape(-1, 3)
    return int((np.abs(pixels - np.array(YELLOW)) <= 12).all(axis=1).sum())


@pytest.fixture(scope="module")
def long_index(tmp_path_factory, tiny_st_dir):
    import json as _json

    root = tmp_path_factory.mktemp("serve-browser-long")
    docs = write_docs(root / "docs.jsonl")
    with docs.open("a", encoding="utf-8") as fh:
        fh.write(_json.dumps({"id": "long", "text": LONG, "metadata": {"topic": "여행"}}, ensure_ascii=False) + "\n")
    return build(root / "news", docs, tiny_st_dir)


def _wait_results(page) -> None:
    page.wait_for_function("() => !document.getElementById('go').disabled && "
                           "document.getElementById('status').textContent.includes('결과')")


@pytest.mark.parametrize("viewport", [PHONE, {"width": 1280, "height": 800}], ids=["phone", "desktop"])
def test_snippets_marks_scores_hints_url_and_filters(browser, long_index, tiny_encoder, tmp_path, viewport):
    app = create_app({"news": long_index}, tiny_encoder, ServeConfig(api_key=None))
    with live_server(app) as url:
        page, problems = _open(browser, url, viewport)
        page.goto(url + "/?q=광안리 해수욕장&mode=lexical")  # a shared link
        _wait_results(page)
        assert page.input_value("#query") == "광안리 해수욕장"
        assert page.locator("#modes input[value=lexical]").is_checked()
        first = page.locator(".hit").first
        assert "id long" in first.locator(".meta").inner_text()
        marks = first.locator("mark").all_inner_texts()
        assert "광안리" in marks and "해수욕장" in marks, marks
        snippet = first.locator(".text").inner_text()
        assert snippet.startswith("…") and len(snippet) < len(LONG) and snippet.endswith("붐볐다.")
        assert "키워드 점수" in first.locator(".why").inner_text()
        png = _shot(page, tmp_path, f"serve-marks-{viewport['width']}.png")
        assert _marked_pixels(png, first.locator("mark").first.bounding_box()) > 20
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]  # no sideways scroll
        first.locator("button.more").click()
        assert first.locator(".text").inner_text() == LONG

        _search(page, TEXTS[5])  # a second search: its own URL
        assert "q=" in page.url and "mode=lexical" in page.url
        assert "키워드 점수" in page.locator(".hit .why").first.inner_text()
        page.fill("#query", "qqzzxxww")
        page.press("#query", "Enter")
        page.wait_for_selector(".empty")
        assert "결과가 없습니다" in page.inner_text(".empty") and "철자" in page.inner_text(".empty")
        page.click("#try-dense")
        _wait_results(page)
        assert page.locator("#modes input[value=dense]").is_checked() and "mode=dense" in page.url
        assert page.locator(".hit").count() > 0 and "의미 점수" in page.locator(".why").first.inner_text()
        page.go_back()  # Back: the lexical search that found nothing
        page.wait_for_selector(".empty")
        assert page.input_value("#query") == "qqzzxxww" and page.locator("#modes input[value=lexical]").is_checked()
        page.go_back()
        _wait_results(page)
        assert page.input_value("#query") == TEXTS[5]

        page.click("#modes label:has(input[value=dense])")
        page.fill("#filter", "topic=경제")
        _search(page, "뉴스 경제 소식")
        topics = page.locator(".hit .meta").all_inner_texts()
        assert topics and all("topic: 경제" in t for t in topics), topics
        assert "filter=topic" in page.url
        assert not problems, problems
    # The server is gone: a Korean message, not the browser's "Failed to fetch".
    page.fill("#query", "서울")
    page.press("#query", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    error = page.inner_text("#error")
    assert "서버에 연결할 수 없습니다" in error and "Failed to fetch" not in error


def test_the_key_panel_says_whether_the_key_is_right(browser, index_dir, tiny_encoder):
    app = create_app({"news": index_dir}, tiny_encoder, ServeConfig(api_key="page-key"))
    with live_server(app) as url:
        page, _ = _open(browser, url, PHONE)
        page.wait_for_selector("#auth:not([hidden])")
        assert "API 키" in page.inner_text("#error")  # Korean, from the 401's code
        page.fill("#token", "wrong-key")
        page.click("#save-token")
        page.wait_for_selector("#auth-status.error-text")
        assert "키가 틀렸습니다" in page.inner_text("#auth-status")
        page.fill("#token", "page-key")
        page.click("#save-token")
        page.wait_for_selector("#auth-status.ok")
        assert "키가 맞습니다" in page.inner_text("#auth-status")
