"""Failures outside koembed's control and odd output folders: one clear line each, and nothing of the
user's is changed (a full disk, a read-only index, a damaged manifest or store, links, '.', two creators)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from index_fixtures import DIM, build, vectors

from koembed.cli import main
from koembed.errors import IndexRefusedError, WriteError
from koembed.index import Index
from koembed.index.layout import CREATING, MANIFEST, STORE

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _one_thread():
    import faiss

    faiss.omp_set_num_threads(1)


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file() and p.name != ".lock"}


def _names(d: Path) -> set[str]:
    """The files of ``d`` but SQLite's own WAL files (there while a writer has the index open)."""
    return {p.name for p in d.iterdir() if not p.name.startswith(STORE + "-")}


def _one_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- a full disk ------------------------------------------------------------------------------------
def test_a_full_disk_while_writing_the_faiss_file_commits_nothing_and_the_index_stays_usable(tmp_path,
                                                                                            monkeypatch):
    import faiss

    d = tmp_path / "ix"
    x = vectors(101)
    build(d, x[:100]).close()
    before, manifest = _names(d), (d / MANIFEST).read_bytes()
    real_write = faiss.write_index

    def full(index, path):  # what FAISS raises when fwrite fails
        raise RuntimeError(f"Error in void faiss::write_index(...): Error: 'ret == (size * 4)' failed: write error "
                           f"in {path}: 4096 != 12800 (No space left on device)")

    with Index.open(d, writable=True) as index:
        monkeypatch.setattr(faiss, "write_index", full)
        with pytest.raises(WriteError, match=r"the disk is full \(No space left on device\); nothing was committed; "
                                             r"the index is unchanged \(generation 1\); free some space"):
            index.add_vectors(["new"], x[100:], ["새 문서"])
        assert (index.count, index.faiss.ntotal, index.generation, index.has_changes) == (100, 100, 1, False)
        assert _names(d) == before and (d / MANIFEST).read_bytes() == manifest  # no new file, no temp file
        monkeypatch.setattr(faiss, "write_index", real_write)  # space freed: the same call now works
        index.add_vectors(["new"], x[100:], ["새 문서"])
    with Index.open(d) as index:
        assert index.count == 101 and index.get("new")["text"] == "새 문서"


def test_a_full_disk_while_creating_says_so_and_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    import faiss

    def full(index, path):
        raise RuntimeError(f"Error in faiss::write_index: write error in {path}: 0 != 90 (No space left on device)")

    monkeypatch.setattr(faiss, "write_index", full)
    d = tmp_path / "mine"
    d.mkdir()
    with pytest.raises(WriteError, match=r"mine: the disk is full \(No space left on device\)"):
        Index.create(d, DIM)
    assert sorted(p.name for p in d.iterdir()) == [".lock"]  # not "corrupt", and nothing half-made left
    monkeypatch.undo()
    build(d, vectors(5)).close()  # once there is space, the same folder takes the index


def test_a_full_store_is_one_line_and_rolls_back(tmp_path):
    d = tmp_path / "ix"
    build(d, vectors(50)).close()
    with Index.open(d, writable=True) as index:
        pages = index.store.conn.execute("PRAGMA page_count").fetchone()[0]
        index.store.conn.execute(f"PRAGMA max_page_count={pages + 1}")  # SQLite's "database or disk is full"
        with pytest.raises(WriteError, match=r"docs.sqlite: the disk is full \(database or disk is full\); nothing "
                                             "was changed; free some space"):
            index.add_vectors([f"big{i}" for i in range(20)], vectors(20, seed=1), ["가" * 20_000] * 20)
        assert index.count == 50 and index.faiss.ntotal == 50 and not index.store.in_transaction
        index.remove(["d0"])  # the store still works for what fits
    with Index.open(d) as index:
        assert index.count == 49


def _can_mount_tmpfs(target: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    target.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_real_full_disk_gives_one_line_and_the_index_can_still_be_searched(tmp_path, tiny_st_dir, capsys):
    small = tmp_path / "small"
    if not _can_mount_tmpfs(small):
        pytest.skip("needs root and tmpfs to fill a real disk")
    try:
        docs = tmp_path / "docs.jsonl"
        docs.write_text("".join(json.dumps({"id": f"d{i}", "text": f"문서 {i}번: " + "가나다라마바사" * 30},
                                           ensure_ascii=False) + "\n" for i in range(4000)), encoding="utf-8")
        out = small / "ix"
        code = main(["index", str(docs), "-o", str(out), "--model", str(tiny_st_dir), "--commit-every", "300",
                     "--chunk-size", "300", "-q"])
        assert code == WriteError.exit_code
        assert "the disk is full" in _one_line(capsys.readouterr().err)
        assert main(["info", str(out), "--json"]) == 0
        count = json.loads(capsys.readouterr().out)["count"]
        assert 0 < count < 4000 and count % 300 == 0  # the last commit that fitted
        (small / "filler").write_bytes(b"\0" * (shutil.disk_usage(small).free - 4096))
        assert main(["remove", str(out), "d1", "-q"]) == WriteError.exit_code
        assert "the disk is full" in _one_line(capsys.readouterr().err)
        assert main(["search", str(out), "문서", "-k", "3", "--json"]) == 0  # reading needs no space
        assert len(json.loads(capsys.readouterr().out)["hits"]) == 3
    finally:
        subprocess.run(["umount", str(small)], check=False)


# -- permissions ------------------------------------------------------------------------------------
READ_ONLY_SCRIPT = """
import json, sys
from koembed.cli import main
d = sys.argv[1]
codes = [main(["remove", d, "d1", "-q"]), main(["info", d, "--json"])]
print(json.dumps(codes))
"""


def test_a_read_only_index_can_be_searched_but_writing_it_is_one_line(tmp_path):
    d = tmp_path / "ix"
    build(d, vectors(30)).close()
    before = _files(d)
    d.chmod(0o555)
    for p in d.iterdir():
        p.chmod(0o444)
    cmd = [sys.executable, "-c", READ_ONLY_SCRIPT, str(d)]
    if os.geteuid() == 0:  # root may write anywhere: run as nobody
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv to drop privileges")
        tmp_path.chmod(0o755)
        for parent in tmp_path.parents:
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o005)
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120,
                           env=dict(os.environ, PYTHONPATH=str(REPO), HOME=str(tmp_path)))
    finally:
        d.chmod(0o755)
    *info, codes = r.stdout.splitlines()
    assert json.loads(codes) == [WriteError.exit_code, 0], r.stderr
    assert "cannot write here" in _one_line(r.stderr)
    assert json.loads("".join(info))["count"] == 30
    assert _files(d) == before


# -- damaged files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("files"), "lacks files"),
    (lambda m: m.pop("generation"), "lacks generation"),
    (lambda m: m.update(generation="3"), r"wrong type for generation \(str, expected int\)"),
    (lambda m: m.update(files=[]), r"wrong type for files \(list, expected dict\)"),
    (lambda m: m.update(dim=True), r"wrong type for dim \(bool, expected int\)"),
    (lambda m: m.update(generation=99), "newer than docs.sqlite"),
])
def test_a_manifest_lacking_or_mistyping_a_field_is_refused_in_one_line(tmp_path, capsys, change, message):
    d = tmp_path / "ix"
    build(d, vectors(20)).close()
    manifest = json.loads((d / MANIFEST).read_text())
    change(manifest)
    (d / MANIFEST).write_text(json.dumps(manifest))
    before = _files(d)
    with pytest.raises(IndexRefusedError, match=message):
        Index.open(d)
    for argv in (["info", str(d)], ["remove", str(d), "d1"]):
        assert main(argv) == IndexRefusedError.exit_code
        _one_line(capsys.readouterr().err)
    assert _files(d) == before


def test_an_empty_store_is_refused_and_a_read_only_command_writes_nothing(tmp_path, capsys):
    d = tmp_path / "ix"
    build(d, vectors(20)).close()
    (d / STORE).write_bytes(b"")
    before = sorted(p.name for p in d.iterdir()), _files(d)
    assert main(["info", str(d)]) == IndexRefusedError.exit_code
    assert "docs.sqlite: not a readable document store" in _one_line(capsys.readouterr().err)
    assert main(["search", str(d), "질문"]) == IndexRefusedError.exit_code
    _one_line(capsys.readouterr().err)
    assert (sorted(p.name for p in d.iterdir()), _files(d)) == before  # no schema, no -wal / -shm


# -- output folders ---------------------------------------------------------------------------------
def test_a_pre_created_empty_folder_is_filled_keeping_its_mode_and_inode(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    d.chmod(0o2750)  # setgid and no access for others: what a user may have set up on purpose
    before = d.stat()
    build(d, vectors(10)).close()
    after = d.stat()
    assert (after.st_ino, stat.S_IMODE(after.st_mode), after.st_uid, after.st_gid) == (
        before.st_ino, stat.S_IMODE(before.st_mode), before.st_uid, before.st_gid)
    assert not (d / CREATING).exists() and not list(tmp_path.glob(".*creating*"))


def test_a_link_to_an_empty_folder_and_the_current_folder_are_filled(tmp_path, monkeypatch):
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    build(link, vectors(10)).close()
    assert link.is_symlink() and (target / MANIFEST).is_file()
    with Index.open(link) as index:
        assert index.count == 10

    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    build(Path("."), vectors(10)).close()
    assert (here / MANIFEST).is_file()
    with Index.open(".") as index:
        assert index.count == 10
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    monkeypatch.chdir(busy)
    with pytest.raises(IndexRefusedError, match="not an empty directory"):
        Index.create(".", DIM)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]  # not even a .lock file


def test_leftovers_of_a_killed_create_are_cleared_but_a_users_files_are_not(tmp_path):
    d = tmp_path / "ix"
    d.mkdir()
    for name in (CREATING, STORE, "index.000000.faiss", ".lock"):
        (d / name).write_bytes(b"half written")
    build(d, vectors(10)).close()
    with Index.open(d) as index:
        assert index.count == 10
    user = tmp_path / "user"
    user.mkdir()
    (user / STORE).write_bytes(b"the user's own database")
    with pytest.raises(IndexRefusedError, match="not an empty directory"):
        Index.create(user, DIM)
    assert (user / STORE).read_bytes() == b"the user's own database"


def _create_and_add(directory: str, barrier, out) -> None:
    import faiss

    faiss.omp_set_num_threads(1)
    barrier.wait()
    try:
        with Index.create(directory, DIM, model_name="race") as index:
            index.add_vectors([f"p{os.getpid()}-{i}" for i in range(5)], vectors(5), ["문서"] * 5)
        out.put(("ok", ""))
    except IndexRefusedError as exc:
        out.put(("refused", str(exc)))


def test_two_processes_creating_the_same_index_one_wins_the_other_gets_one_line(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):
        d = tmp_path / f"ix{attempt}"
        barrier, out = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_create_and_add, args=(str(d), barrier, out)) for _ in range(2)]
        for p in procs:
            p.start()
        results = sorted(out.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(60)
        assert [r[0] for r in results] == ["ok", "refused"], results
        assert ("another koembed process is writing" in results[1][1]
                or "is already a koembed index" in results[1][1])
        with Index.open(d) as index:
            assert index.count == 5
        assert sorted(p.name for p in d.iterdir() if p.name.startswith(".")) == [".lock"]
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_vectors_survive_the_fill_path(tmp_path):
    d = tmp_path / "ix"
    x = vectors(40)
    build(d, x).close()
    with Index.open(d) as index:
        np.testing.assert_allclose(index.faiss.reconstruct(3), x[3] / np.linalg.norm(x[3]), atol=1e-6)
