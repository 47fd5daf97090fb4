"""Damage done outside koembed is refused by readers and writers alike, in one line, before anything is written;
every file of an index has the same permissions, so another user can read it; a full disk while the BM25 file is
written is one line; large filters run (issue 27)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from index_fixtures import build, vectors

from koembed.cli import main
from koembed.errors import IndexRefusedError, WriteError
from koembed.index import Index, search
from koembed.index.layout import MANIFEST, STORE

REPO = Path(__file__).resolve().parent.parent
N = 40


@pytest.fixture(autouse=True)
def _one_thread():
    import faiss

    faiss.omp_set_num_threads(1)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("damage") / "ix"
    build(d, vectors(N)).close()
    return d


@pytest.fixture()
def ix(pristine, tmp_path) -> Path:
    d = tmp_path / "ix"
    shutil.copytree(pristine, d)
    return d


def one_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def edit(d: Path, sql: str) -> None:
    conn = sqlite3.connect(d / STORE)
    conn.executescript(sql)
    conn.commit()
    conn.close()


# Readers (every mode), then writers: each must refuse, in one line, with the index's exit code.
READERS = [["info", "{d}"], ["search", "{d}", "문서 3", "--mode", "lexical"], ["search", "{d}", "문서", "--mode",
                                                                                "lexical", "--filter", "group=1"]]
WRITERS = [["remove", "{d}", "d1", "-q"], ["compact", "{d}", "-q"], ["add-lexical", "{d}", "-q"]]


@pytest.mark.parametrize("sql", [
    "DROP TABLE docs", "DELETE FROM docs", "DROP TABLE tombstones", "DROP TABLE state", "DROP TABLE lex_docs",
    "DELETE FROM lex_docs", "DROP TABLE lex_vocab", "DELETE FROM lex_vocab", "UPDATE docs SET row_id = row_id + 1000",
])
def test_dropped_emptied_or_renumbered_tables_are_refused_by_readers_and_writers(ix, capsys, sql):
    edit(ix, sql)
    with pytest.raises(IndexRefusedError, match="corrupt, rebuild it"):
        Index.open(ix)
    with pytest.raises(IndexRefusedError):
        Index.open(ix, writable=True)
    for argv in READERS + WRITERS:
        assert main([a.format(d=ix) for a in argv]) == IndexRefusedError.exit_code, argv
        one_line(capsys.readouterr().err)
    # The writers did not quietly recreate what was dropped (an empty docs table made a damaged index look empty).
    tables = {r[0] for r in sqlite3.connect(ix / STORE).execute("SELECT name FROM sqlite_master")}
    assert not ("DROP TABLE" in sql and sql.split()[-1] in tables)


def test_rows_removed_by_hand_are_refused_by_writers_before_a_commit_agrees_with_them(ix, capsys):
    edit(ix, "DELETE FROM docs WHERE row_id IN (1, 2, 3)")
    with pytest.raises(IndexRefusedError, match="table docs holds 37 rows, the committed manifest says 40"):
        Index.open(ix, writable=True)
    assert main(["remove", str(ix), "d5", "-q"]) == IndexRefusedError.exit_code
    one_line(capsys.readouterr().err)


@pytest.mark.parametrize("sql, message", [
    ("UPDATE docs SET metadata = 'not json'", "metadata that is not a JSON object"),
    ("UPDATE docs SET metadata = '[1, 2]'", "metadata that is not a JSON object"),
    ("UPDATE docs SET text = X'FF00'", "a field that is not text"),
    ("UPDATE lex_vocab SET id = id + 100000", "token ids the BM25 file does not know"),
])
def test_damaged_rows_are_one_line_not_a_traceback(ix, capsys, sql, message):
    edit(ix, sql)
    assert main(["search", str(ix), "문서 3", "--mode", "lexical"]) == IndexRefusedError.exit_code
    assert message in one_line(capsys.readouterr().err)


def test_a_zero_byte_store_gets_nothing_written_into_it_by_a_writer(ix, capsys):
    (ix / STORE).write_bytes(b"")
    for argv in (["remove", str(ix), "d1"], ["compact", str(ix)], ["info", str(ix)]):
        assert main(argv) == IndexRefusedError.exit_code
        assert "an empty file" in one_line(capsys.readouterr().err)
        assert (ix / STORE).stat().st_size == 0  # no header, no 24 KB schema
        assert not [p.name for p in ix.iterdir() if p.name.startswith(STORE + "-")]


@pytest.mark.parametrize("key", ["generation", "dim", "count", "files", "spec", "next_row_id", "created"])
def test_a_null_where_the_manifest_needs_a_value_is_one_line(ix, capsys, key):
    manifest = json.loads((ix / MANIFEST).read_text())
    manifest[key] = None
    (ix / MANIFEST).write_text(json.dumps(manifest))
    for argv in READERS[:2] + WRITERS[:2] + [["index", "{d}/../nothing.txt", "-o", "{d}"]]:
        assert main([a.format(d=ix) for a in argv]) == IndexRefusedError.exit_code, argv
        assert f"{key} (null, expected" in one_line(capsys.readouterr().err)


# -- a full disk while the BM25 file is written -----------------------------------------------------------------
def test_a_full_disk_while_writing_the_bm25_file_is_one_line_and_commits_nothing(ix, capsys, monkeypatch):
    from safetensors import SafetensorError

    from koembed.lexical.bm25 import BM25Matrix

    def full(self, path):  # what safetensors raises when the disk fills up
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    before = json.loads((ix / MANIFEST).read_text())["generation"]
    monkeypatch.setattr(BM25Matrix, "save", full)
    assert main(["remove", str(ix), "d1", "d2", "-q"]) == WriteError.exit_code
    err = one_line(capsys.readouterr().err)
    assert "the disk is full (No space left on device (os error 28))" in err and f"generation {before}" in err
    monkeypatch.undo()
    with Index.open(ix) as index:
        assert index.count == N and index.generation == before
    assert not [p.name for p in ix.iterdir() if p.name.endswith(".tmp")]


# -- large filters ----------------------------------------------------------------------------------------------
def test_a_filter_of_thousands_of_values_runs(ix, capsys):
    names = [f"n{i}" for i in range(0, N, 3)] + [f"missing{i}" for i in range(3000)]
    with Index.open(ix) as index:
        hits = search(index, ["문서"], k=N, filter={"name": names}, mode="lexical")[0]
        assert sorted(h.id for h in hits) == sorted(f"d{i}" for i in range(0, N, 3))
        # Numbers, strings that read as numbers and booleans match as a short filter does.
        assert index.store.filter_row_ids({"group": list(range(600)) + ["1"]}).size == N
        assert index.store.filter_row_ids({"even": [True] + [f"x{i}" for i in range(600)]}).size == N // 2
    filters = [arg for name in names[:700] for arg in ("--filter", f"name={name}")]
    assert main(["search", str(ix), "문서", "--mode", "lexical", "-k", "50", "--json", *filters]) == 0
    assert len(json.loads(capsys.readouterr().out)["hits"]) == len(range(0, N, 3))


# -- permissions ------------------------------------------------------------------------------------------------
def test_every_file_of_an_index_gets_the_process_umask(tmp_path):
    old = os.umask(0o027)
    try:
        d = tmp_path / "ix"
        build(d, vectors(N)).close()
        with Index.open(d, writable=True) as index:  # a second generation, the lexical file rewritten
            index.remove(["d1"])
            index.commit()
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in d.iterdir() if p.is_file()}
    assert any(name.startswith("lexical.") for name in modes)
    assert set(modes.values()) == {0o640}, modes


OTHER_USER = """
import json, sys
from koembed.cli import main
d, model = sys.argv[1], sys.argv[2]
codes = [main(["info", d]), main(["search", d, "문서 3", "--mode", "lexical", "--json"]),
         main(["search", d, "문서", "--mode", "lexical", "--filter", "group=1"])]
codes += [main(["search", d, "서울 날씨", "--mode", mode, "--model", model]) for mode in ("dense", "hybrid")]
print("CODES", json.dumps(codes))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to read the index as another user (nobody)")
def test_another_user_can_read_and_search_an_index_in_every_mode(tmp_path, tiny_st_dir):
    # Built by root with the usual umask, read by nobody: a 0600 BM25 file was a PermissionError traceback.
    old = os.umask(0o022)
    try:
        home = Path(tempfile.mkdtemp(prefix="koembed-other-user-", dir="/tmp"))
        home.chmod(0o755)
        docs = home / "docs.txt"
        docs.write_text("서울 날씨는 맑다\n부산 경제 뉴스\n문서 3 이야기\n", encoding="utf-8")
        model = shutil.copytree(tiny_st_dir, home / "model")
        for p in [model, *model.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        d = home / "ix"
        assert main(["index", str(docs), "-o", str(d), "--model", str(model), "-q"]) == 0
    finally:
        os.umask(old)
    try:
        cache = home / "cache"  # the user's own cache (the ONNX export of the model goes there)
        cache.mkdir(mode=0o777)
        cache.chmod(0o777)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                            OTHER_USER, str(d), str(model)], capture_output=True, text=True, cwd=home, timeout=300,
                           env=dict(os.environ, PYTHONPATH=str(REPO), HOME=str(home), KOEMBED_CACHE=str(cache)))
        codes = [line for line in r.stdout.splitlines() if line.startswith("CODES ")]
        assert codes and json.loads(codes[0][6:]) == [0] * 5, r.stderr[-2000:]
        assert "Traceback" not in r.stderr
    finally:
        shutil.rmtree(home, ignore_errors=True)
