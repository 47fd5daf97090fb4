"""Readers while a writer commits: snapshots, refresh, a deleted generation, and the reader/writer stress run."""

from __future__ import annotations

import numpy as np
import pytest
from index_fixtures import build, vectors

import koembed.index.core as core_module
from koembed.index import Index, search
from koembed.index.layout import faiss_file_name


@pytest.fixture(autouse=True)
def _one_thread():
    import faiss

    faiss.omp_set_num_threads(1)


def _ids(hits) -> list[str]:
    return [h.id for h in hits]


def test_a_reader_keeps_its_generation_while_two_commits_replace_every_document(tmp_path):
    x = vectors(200)
    d = tmp_path / "ix"
    build(d, x).close()
    reader = Index.open(d)
    before = _ids(search(reader, x[:5], k=10)[0])
    with Index.open(d, writable=True) as writer:  # replace all (new row ids), then remove half
        writer.add_vectors([f"d{i}" for i in range(200)], x[::-1].copy(), [f"새 {i}" for i in range(200)])
        writer.remove([f"d{i}" for i in range(100)])
    # The reader's FAISS file (generation 1) is gone now, and its rows were all replaced: it still answers
    # from generation 1, in full.
    assert not (d / faiss_file_name(reader.generation)).exists()
    hits = search(reader, x[:5], k=10)
    assert all(len(h) == 10 for h in hits) and _ids(hits[0]) == before
    assert reader.count == 200 and reader.get("d0")["text"] == "문서 0"
    assert reader.refresh() and reader.generation == 3 and reader.count == 100
    assert not reader.refresh()  # nothing new
    assert reader.get("d0") is None and reader.get("d150")["text"] == "새 150"
    assert all(len(h) == 10 for h in search(reader, x[:5], k=10))
    reader.close()


def test_a_reader_whose_generation_file_disappears_while_opening_retries_on_the_newest(tmp_path, monkeypatch):
    x = vectors(100)
    d = tmp_path / "ix"
    build(d, x).close()
    real = core_module.load_generation.__globals__["read_faiss"]
    calls = []

    def read_faiss_after_two_commits(directory, committed, *, mmap):
        if mmap is False:  # the writer's own open
            return real(directory, committed, mmap=mmap)
        calls.append(committed.generation)
        if len(calls) == 1:  # between the reader's snapshot and its read of the file, two commits land
            with Index.open(d, writable=True) as writer:
                writer.remove(["d1"])
                writer.remove(["d2"])
        return real(directory, committed, mmap=mmap)

    monkeypatch.setitem(core_module.load_generation.__globals__, "read_faiss", read_faiss_after_two_commits)
    with Index.open(d, verify=False) as reader:
        assert calls == [1, 3] and reader.generation == 3 and reader.count == 98


def test_old_generation_files_are_kept_one_commit_and_foreign_files_never_touched(tmp_path):
    d = tmp_path / "ix"
    build(d, vectors(50)).close()
    (d / "index.backup.faiss").write_bytes(b"a user's file")
    (d / ".notes.tmp").write_text("also the user's")
    (d / "index.000099.faiss").write_bytes(b"orphan of a killed writer")  # a koembed name: removed
    with Index.open(d, writable=True) as index:
        assert index.remove(["no-such-id"]) == 0
        for i in range(3):
            index.remove([f"d{i}"])
        gen = index.generation
    names = sorted(p.name for p in d.iterdir())
    assert [n for n in names if n.endswith(".faiss")] == sorted(["index.backup.faiss", faiss_file_name(gen - 1),
                                                                 faiss_file_name(gen)])
    assert ".notes.tmp" in names
    assert not [n for n in names if n.startswith("docs.sqlite-")]  # SQLite tidied its WAL files on close


@pytest.mark.slow
@pytest.mark.parametrize("index_type, seconds", [("Flat", 20), ("HNSW16", 10)])
def test_readers_see_one_complete_generation_while_a_writer_upserts_replaces_and_removes(tmp_path, index_type,
                                                                                       seconds):
    import index_stress

    total = index_stress.run(tmp_path / "ix", seconds=seconds, readers=2, docs=2000, index_type=index_type)
    assert total["writer"]["errors"] == 0, total["writer"].get("error")
    assert total["writer"]["commits"] > 20 and total["generations_seen"] > 10
    assert total["searches"] > 200
    assert (total["failures"], total["short"], total["wrong"]) == (0, 0, 0), total["examples"]
    np.testing.assert_equal(total["writer"]["replaced"] > 0 and total["writer"]["removed"] > 0, True)
