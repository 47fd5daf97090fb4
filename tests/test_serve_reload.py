"""Searching a served index while another process rewrites it: each answer comes from one committed generation.

Every version of the documents tags every text with its version (``(판 N)``) and stores it in the
metadata, and each rewrite commits all of them at once; so an answer that mixes versions, has fewer
than k hits, or reports a generation that another answer saw with different documents, would show a
half-written or mixed index.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from serve_fixtures import TEXTS, build, write_docs

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'koembed[serve]')")
from fastapi.testclient import TestClient  # noqa: E402

from koembed.server import ServeConfig, create_app  # noqa: E402

HERE = Path(__file__).resolve().parent
VERSIONS = 5  # library rewrites (one process, model loaded once), then one `koembed index` rerun

WRITER = f"""
import subprocess, sys
sys.path.insert(0, {str(HERE)!r})
from serve_fixtures import write_docs
from pathlib import Path
from koembed import KoMiniLMEncoder
from koembed.index import IndexConfig, build_index

docs, out, model = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
encoder = KoMiniLMEncoder(model)
for v in range(1, {VERSIONS}):
    write_docs(docs, version=v)
    build_index(IndexConfig(input=str(docs), output=out, model=model), encoder=encoder, quiet=True)
write_docs(docs, version={VERSIONS})
subprocess.run([sys.executable, "-m", "koembed", "index", str(docs), "-o", out, "--model", model, "--quiet"],
               check=True)
"""


def _check(body: dict, k: int, seen: dict[int, int]) -> int:
    ix = body["indexes"][0]
    versions = set()
    for res in ix["results"]:
        assert len(res["hits"]) == k, res  # never a short answer
        for h in res["hits"]:
            v = h["metadata"]["version"]
            versions.add(v)
            assert h["text"].endswith(f"(판 {v})") == (v > 0), h  # text and metadata from the same version
    assert len(versions) == 1, f"generation {ix['generation']} mixes versions {versions}"
    version = versions.pop()
    assert seen.setdefault(ix["generation"], version) == version, "one generation, two contents"
    return version


@pytest.mark.slow
def test_answers_stay_consistent_while_koembed_index_rewrites(tmp_path, tiny_st_dir, tiny_encoder):
    docs = write_docs(tmp_path / "docs.jsonl", version=0)
    ix = build(tmp_path / "ix", docs, tiny_st_dir)
    app = create_app({"ix": ix}, tiny_encoder, ServeConfig(api_key=None, reload_check_s=0.02))
    seen: dict[int, int] = {}
    order: list[int] = []
    k = 10
    with TestClient(app) as client:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(docs), str(ix), str(tiny_st_dir)],
                                  stderr=subprocess.PIPE, text=True)
        errors: list[BaseException] = []

        def reader(query: str) -> None:
            try:
                while writer.poll() is None:
                    r = client.post("/search", json={"queries": [query, TEXTS[30]], "k": k})
                    assert r.status_code == 200, r.text
                    order.append(_check(r.json(), k, seen))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=reader, args=(TEXTS[i],)) for i in (3, 17)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert writer.wait(60) == 0, writer.stderr.read()
        assert not errors, errors[0]
        deadline = time.monotonic() + 10
        while True:  # the last commit is picked up at the next check
            body = client.post("/search", json={"queries": [TEXTS[3]], "k": k}).json()
            if _check(body, k, seen) == VERSIONS or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert _check(body, k, seen) == VERSIONS
        info = client.get("/info").json()["indexes"][0]
        assert info["generation"] == body["indexes"][0]["generation"] and info["count"] == len(TEXTS)
        time.sleep(0.5)
        workers = [t.name for t in threading.enumerate() if t.name.startswith("koembed-index-ix")]
        assert len(workers) <= 1, workers  # retired generations were closed
    assert len(order) > 20 and len(set(order)) >= 3, (len(order), sorted(set(order)))
