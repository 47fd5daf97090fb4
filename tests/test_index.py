"""The index directory: auto choices vs exact search, upsert/remove for every type, crash safety, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from index_fixtures import DIM, EVERY_TYPE, build, exact_top, queries, recall_at, vectors

import koembed.index.spec as spec_module
from koembed.errors import IndexRefusedError, InputError
from koembed.index import Index, resolve_spec, search
from koembed.index.layout import MANIFEST, STORE
from koembed.index.manifest import Manifest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _one_thread():
    import faiss

    faiss.omp_set_num_threads(1)


# -- the auto rule ---------------------------------------------------------------------------------
def test_auto_rule_by_size_and_memory():
    assert resolve_spec("auto", 50_000, 384).factory == "Flat"
    big = resolve_spec("auto", 1_000_000, 384, budget=8 << 30)
    assert big.factory == "IVF4096,Flat" and big.search_defaults == {"nprobe": 128}
    assert resolve_spec("auto", 1_000_000, 384, budget=1 << 30).factory == "IVF4096,SQ8"
    assert resolve_spec("auto", 1_000_000, 384, budget=200 << 20).factory == "IVF4096,SQ8"  # mmapped, never PQ
    assert resolve_spec("ivfpq", 1_000_000, 384).factory == "IVF4096,PQ96"
    # a small corpus that does not fit as floats is quantised too
    assert resolve_spec("auto", 50_000, 384, budget=40 << 20).factory.endswith("SQ8")
    assert resolve_spec("hnsw", 10, 8).search_defaults == {"efSearch": 128}
    with pytest.raises(InputError, match="not a valid FAISS factory string"):
        resolve_spec("IVF-nonsense", 10, 8)


@pytest.mark.parametrize("budget, expected", [(None, "Flat"), (1 << 30, "Flat"), (4 * 20_000 * DIM - 1, "SQ8")])
def test_every_auto_choice_reaches_recall_95_against_flat(tmp_path, monkeypatch, budget, expected):
    n = 20_000
    if budget is not None:  # same rule, smaller exact threshold so the IVF choices are reachable in a test
        monkeypatch.setattr(spec_module, "EXACT_MAX", 2_000)
    x, q = vectors(n), queries(100, n)
    with build(tmp_path / "ix", x, "auto", memory_budget=budget) as index:
        spec = index.manifest.spec
        assert expected in spec and (budget is None) == (spec == "Flat")
        found = [[h.id for h in hits] for hits in search(index, q, k=10)]
    assert recall_at(found, exact_top(x, q, 10)) >= 0.95, spec


# -- round trips, upsert and remove ------------------------------------------------------------------
@pytest.mark.parametrize("index_type", EVERY_TYPE)
def test_upsert_and_remove_for_every_type(tmp_path, index_type):
    n = 2_000
    x = vectors(n)
    d = tmp_path / "ix"
    index = build(d, x, index_type)
    new_vec = vectors(1, seed=99)
    assert index.add_vectors(["d3"], new_vec, ["새 문서"], [{"group": 9}]) == {"added": 0, "replaced": 1,
                                                                             "lexical_cut": 0}
    assert index.remove(["d5", "d6", "missing"]) == 2
    index.close()

    with Index.open(d) as index:
        assert index.count == n - 2
        assert index.get("d3") == {"id": "d3", "text": "새 문서", "metadata": {"group": 9}}
        assert index.get("d5") is None
        [top] = search(index, new_vec, k=1)
        assert top[0].id == "d3" and top[0].score > {"PQ8": 0.7, "SQ8": 0.9}.get(index_type[-3:], 0.999)
        old = search(index, x[[3, 5, 6]], k=5, nprobe=16)
        for hits in old:  # the old vector of d3 and the removed documents are gone
            assert not {"d5", "d6"} & {h.id for h in hits}
            assert all(h.score < 0.95 for h in hits if h.id == "d3")
    if index_type.startswith("HNSW"):
        with Index.open(d, writable=True) as index:
            assert len(index.tombstones()) == 3 and index.faiss.ntotal == n + 1
            before = [[h.id for h in hits] for hits in search(index, x[:20], k=5)]
            assert index.compact() == 3
            assert index.faiss.ntotal == n - 2 and len(index.tombstones()) == 0
        with Index.open(d) as index:
            after = [[h.id for h in hits] for hits in search(index, x[:20], k=5)]
        assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(before, after, strict=True)]) >= 0.9


def test_ids_texts_metadata_round_trip_and_repeated_ids(tmp_path):
    x = vectors(50)
    meta = [{"title": "서울", "tags": ["a", "b"], "n": 1.5}, None, {}]
    with Index.create(tmp_path / "ix", DIM) as index:
        r = index.add_vectors(["가", "나", "가"], x[:3], ["하나", "둘", "셋"], meta)
        assert r == {"added": 2, "replaced": 0, "lexical_cut": 0}  # the last "가" wins
    with Index.open(tmp_path / "ix") as index:
        assert index.get("가") == {"id": "가", "text": "셋", "metadata": {}}
        assert index.get("나")["metadata"] == {}
        hit = search(index, x[2:3], k=1)[0][0]
        assert (hit.id, hit.text) == ("가", "셋") and hit.score == pytest.approx(1.0, abs=1e-5)
        info = index.info()
        assert info["count"] == 2 and info["model"]["name"] is None and info["dim"] == DIM


@pytest.mark.parametrize("index_type", ["Flat", "IVF16,Flat", "HNSW16"])
def test_mmap_open_gives_the_same_results(tmp_path, index_type):
    x = vectors(3_000)
    build(tmp_path / "ix", x, index_type).close()
    q = queries(20, 3_000)
    with Index.open(tmp_path / "ix", mmap=False) as a, Index.open(tmp_path / "ix", mmap=True) as b:
        ra = [[h.id for h in hits] for hits in search(a, q, k=5)]
        rb = [[h.id for h in hits] for hits in search(b, q, k=5)]
    assert ra == rb


# -- crash safety ------------------------------------------------------------------------------------
class Boom(Exception):
    pass


@pytest.mark.parametrize("step, expect_new", [("_write_faiss", False), ("_store_commit", False),
                                              ("_write_manifest", True)])
def test_a_crash_at_any_commit_step_leaves_a_loadable_index(tmp_path, monkeypatch, step, expect_new):
    x = vectors(300)
    d = tmp_path / "ix"
    build(d, x[:200]).close()
    index = Index.open(d, writable=True)

    def boom(*args, **kwargs):
        raise Boom(step)

    monkeypatch.setattr(Index, step, boom)
    with pytest.raises(Boom):
        index.add_vectors([f"n{i}" for i in range(100)], x[200:], ["새"] * 100)
    # The process "dies" here: nothing else of this Index object runs.
    index.store.conn.close()
    index._lock_fd and os.close(index._lock_fd)
    monkeypatch.undo()
    with Index.open(d, writable=True) as reopened:
        assert reopened.count == (300 if expect_new else 200)
        assert reopened.faiss.ntotal == reopened.count
        # Rolled forward: x[250] is document n50; rolled back: its nearest of the 200 first documents.
        nearest_old = f"d{exact_top(x[:200], x[250:251], 1)[0][0]}"
        assert search(reopened, x[250:251], k=1)[0][0].id == ("n50" if expect_new else nearest_old)
        # The committed generation's file and the one before it (kept for readers); no orphan of the crash.
        gen = reopened.generation
        assert sorted(p.name for p in d.glob("index.*.faiss")) == [f"index.{g:06d}.faiss" for g in (gen - 1, gen)]
    manifest = json.loads((d / MANIFEST).read_text())
    assert manifest["count"] == (300 if expect_new else 200)
    with Index.open(d) as again:  # the repaired manifest verifies
        assert again.count == manifest["count"]


BUILD_SCRIPT = textwrap.dedent("""
    import sys, time
    from koembed.index import IndexConfig, build_index
    import torch
    torch.set_num_threads(1)
    inp, out, model = sys.argv[1:4]
    def on_commit(index):
        print("commit", index.generation, flush=True)
        time.sleep(float(sys.argv[4]))
    cfg = IndexConfig(input=inp, output=out, model=model, chunk_size=40, commit_every=40, index_type="flat")
    build_index(cfg, on_commit=on_commit)
    print("done", flush=True)
""")


def _korean_docs(path: Path, n: int) -> Path:
    base = (REPO / "examples" / "texts.txt").read_text(encoding="utf-8").split("\n")
    base = [b for b in base if b.strip()]
    lines = [json.dumps({"id": f"doc-{i}", "text": f"{base[i % len(base)]} ({i}번째)", "metadata": {"i": i}},
                        ensure_ascii=False) for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _snapshot(d: Path) -> tuple[list, np.ndarray]:
    with Index.open(d) as index:
        docs = list(index.store.iter_docs())
        row_ids = np.array([r[0] for r in docs])
        vecs = index.faiss.reconstruct_batch(row_ids)
    return docs, vecs


@pytest.mark.slow
def test_sigkill_mid_build_then_resume_equals_uninterrupted_build(tmp_path, tiny_st_dir):
    inp = _korean_docs(tmp_path / "docs.jsonl", 400)
    script = tmp_path / "build.py"
    script.write_text(BUILD_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(inp), str(killed), str(tiny_st_dir), "0.05"],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    commits = 0
    for line in proc.stdout:
        commits += line.startswith("commit")
        if commits >= 3:  # three data commits are durable; the kill lands in the middle of the next chunk
            time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    with Index.open(killed) as partial:  # the previous state is loadable
        assert 0 < partial.count < 400

    # Resume (same command) and an uninterrupted reference build, both in this process.
    from koembed.index import IndexConfig, build_index

    def config(out: Path) -> IndexConfig:
        return IndexConfig(input=str(inp), output=str(out), model=str(tiny_st_dir), chunk_size=40, commit_every=40,
                           index_type="flat")

    resumed = build_index(config(killed))
    assert 0 < resumed.unchanged < 400 and resumed.added == 400 - resumed.unchanged  # committed docs not re-encoded
    full = tmp_path / "full"
    build_index(config(full))
    docs_a, vecs_a = _snapshot(killed)
    docs_b, vecs_b = _snapshot(full)
    assert docs_a == docs_b  # same row ids, ids, texts and metadata, in the same order
    np.testing.assert_allclose(vecs_a, vecs_b, atol=1e-5)


# -- refusals ----------------------------------------------------------------------------------------
def _state(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file() and p.name != ".lock"}


def test_refusals_change_nothing(tmp_path):
    d = tmp_path / "ix"
    x = vectors(100)
    build(d, x).close()
    before = _state(d)
    with Index.open(d, writable=True) as index:
        with pytest.raises(IndexRefusedError, match="do not match the index's dimension 32"):
            index.add_vectors(["z"], np.ones((1, 16), np.float32), ["z"])
        with pytest.raises(IndexRefusedError, match="differs from the index's model.*--allow-model-mismatch"):
            index.check_model("0" * 32, DIM)
        index.check_model("0" * 32, DIM, allow_mismatch=True)
        with pytest.raises(IndexRefusedError, match="16-dimensional vectors"):
            index.check_model("f" * 32, 16, allow_mismatch=True)
        with pytest.raises(InputError, match="no queries"):
            search(index, [])
        with pytest.raises(InputError, match="no queries"):
            search(index, ["   "])
    assert _state(d) == before
    with pytest.raises(IndexRefusedError, match="another koembed process is writing"):
        with Index.open(d, writable=True), Index.open(d, writable=True):
            pass


def test_not_an_index_and_corrupt_files_are_refused(tmp_path):
    with pytest.raises(IndexRefusedError, match="not a koembed index \\(no such directory\\)"):
        Index.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("x")
    with pytest.raises(IndexRefusedError, match="not a koembed index \\(no manifest.json\\)"):
        Index.open(tmp_path / "plain")
    with pytest.raises(IndexRefusedError, match="not an empty directory"):
        Index.create(tmp_path / "plain", 8)
    d = tmp_path / "ix"
    build(d, vectors(200)).close()
    faiss_file = d / json.loads((d / MANIFEST).read_text())["faiss_file"]
    good = faiss_file.read_bytes()
    faiss_file.write_bytes(good[:-100] + bytes(100 - 1) + b"\x01")
    with pytest.raises(IndexRefusedError, match="checksum .* does not match .*corrupt"):
        Index.open(d)
    faiss_file.write_bytes(good[: len(good) // 2])
    with pytest.raises(IndexRefusedError, match="truncated or corrupt"):
        Index.open(d)
    faiss_file.write_bytes(good)
    store = (d / STORE).read_bytes()
    (d / STORE).write_bytes(b"not SQLite at all" + store[17:])
    with pytest.raises(IndexRefusedError, match="docs.sqlite: not a readable document store .*corrupt"):
        Index.open(d)
    (d / STORE).write_bytes(store)
    (d / MANIFEST).write_text("{ not json")
    with pytest.raises(IndexRefusedError, match="corrupt manifest"):
        Index.open(d)


# The keys manifest.json had when it was an untyped dict: indexes built before the typed Manifest must open,
# and indexes built now must read the same for an older koembed (which keeps "lexical", added with lexical
# search, as an unknown key).
FILE_KEYS = {"format", "format_version", "model", "dim", "metric", "index_type", "spec", "spec_reason",
             "search_defaults", "count", "ntotal", "tombstones", "next_row_id", "trained", "generation", "files",
             "created", "updated", "config", "faiss_file", "calibration", "lexical"}


def test_manifest_file_format_is_unchanged_and_unknown_keys_survive(tmp_path):
    d = tmp_path / "ix"
    build(d, vectors(1_000), "IVF16,Flat").close()
    on_disk = json.loads((d / MANIFEST).read_text())
    assert set(on_disk) == FILE_KEYS and set(on_disk["model"]) == {"name", "fingerprint", "backend"}
    assert on_disk["count"] == 1_000 and on_disk["calibration"]["nprobe"] == on_disk["search_defaults"]["nprobe"]
    assert Manifest.from_dict(on_disk, d).to_dict() == on_disk
    with Index.open(d, writable=True) as index:
        assert not index.has_changes
        index.manifest.extra["written_by_a_newer_koembed"] = {"x": 1}
        index.remove(["d0"], commit=False)
        assert index.has_changes
        index.commit()
        assert not index.has_changes
    with Index.open(d) as index:
        assert index.manifest.extra == {"written_by_a_newer_koembed": {"x": 1}} and index.count == 999
    assert json.loads((d / MANIFEST).read_text())["written_by_a_newer_koembed"] == {"x": 1}
    del on_disk["dim"]
    (d / MANIFEST).write_text(json.dumps(on_disk))
    with pytest.raises(IndexRefusedError, match="manifest lacks dim"):
        Index.open(d)


def test_add_vectors_reports_the_same_counts_for_an_empty_call(tmp_path):
    with Index.create(tmp_path / "ix", DIM, index_type="flat") as index:
        empty = index.add_vectors([], np.zeros((0, DIM), np.float32), [])
        full = index.add_vectors(["a"], vectors(1), ["가나다"])
    assert empty.keys() == full.keys() and empty == {"added": 0, "replaced": 0, "lexical_cut": 0}
