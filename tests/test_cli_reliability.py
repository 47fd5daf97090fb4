"""The CLI under interruption and odd input: exit codes 130/143 with one line, no temp files left, what a
build merged or lost reported, bounded table output, and a relative --model recorded so it works anywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

from koembed.atomic import atomic_write_text
from koembed.cli import main
from koembed.cli.app import run
from koembed.index import Index

REPO = Path(__file__).resolve().parent.parent


def test_an_interrupted_command_exits_130_with_one_line(capsys):
    app = typer.Typer()

    @app.command()
    def slow() -> None:
        raise KeyboardInterrupt  # what Ctrl-C raises inside a command

    @app.command()
    def other() -> None:
        pass

    assert run(["slow"], app) == 130
    err = capsys.readouterr().err
    assert err.startswith("error: interrupted (Ctrl-C)") and err.count("\n") == 1


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", KOEMBED_THREADS="1")


def _signal_when(proc: subprocess.Popen, ready, sig: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the command never got going"
        time.sleep(0.05)
    proc.send_signal(sig)


@pytest.mark.slow
def test_ctrl_c_during_index_exits_130_and_sigterm_during_encode_exits_143_leaving_no_temp_file(tmp_path,
                                                                                                tiny_st_dir):
    texts = tmp_path / "texts.txt"
    n = 30_000
    texts.write_text("".join(f"서울 날씨는 오늘 맑습니다 {i}번째 문장\n" for i in range(n)), encoding="utf-8")
    out = tmp_path / "ix"
    proc = subprocess.Popen([sys.executable, "-m", "koembed", "index", str(texts), "-o", str(out), "--model",
                             str(tiny_st_dir), "--backend", "torch", "--commit-every", "500", "--chunk-size", "500",
                             "-q"], stderr=subprocess.PIPE, text=True, env=_env())
    _signal_when(proc, lambda: _generation(out) >= 1, signal.SIGINT)  # a data commit has landed
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted (Ctrl-C)") and "Traceback" not in err
    with Index.open(out) as index:  # the last commit is there, and opens
        assert 0 < index.count < n

    npy = tmp_path / "vectors.npy"
    proc = subprocess.Popen([sys.executable, "-m", "koembed", "encode", str(texts), "-o", str(npy), "--model",
                             str(tiny_st_dir), "--backend", "torch"], stderr=subprocess.PIPE, text=True, env=_env())
    _signal_when(proc, lambda: any(p.name.endswith(".tmp") for p in tmp_path.iterdir()), signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("error: terminated (SIGTERM)") and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix", "texts.txt"]  # no vectors.npy, no .tmp


def _generation(d: Path) -> int:
    try:
        return json.loads((d / "manifest.json").read_text())["generation"]
    except (OSError, ValueError):  # not created yet
        return -1


def test_a_temp_file_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.json.{int(dead.stdout)}.abc123.tmp"
    stale.write_text("partial")
    mine = tmp_path / f".out.json.{os.getpid()}.xyz789.tmp"  # this process is alive: kept
    mine.write_text("in progress")
    other = tmp_path / ".notes.tmp"  # not a name koembed makes: kept
    other.write_text("the user's")
    atomic_write_text(tmp_path / "out.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name, "out.json"])


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_build_reports_repeated_ids_cut_texts_and_unreadable_words(tmp_path, tiny_st_dir, capsys):
    rows = [{"id": "a", "text": "첫 문서"}, {"id": 7, "text": "숫자 아이디"}, {"id": "7", "text": "같은 아이디"},
            {"id": "a", "text": "첫 문서의 새 판"}, {"id": "long", "text": "아주 긴 문서 " * 5000},
            {"id": "unk", "text": "가" * 5000}]
    out = tmp_path / "ix"
    assert main(["index", str(_jsonl(tmp_path / "d.jsonl", rows)), "-o", str(out), "--model", str(tiny_st_dir),
                 "--backend", "torch"]) == 0
    err = capsys.readouterr().err
    assert "2 records repeat an earlier record's id, and the last one is kept (first: " in err
    assert "d.jsonl: line 3 repeats the id of line 2; " in err and "d.jsonl: line 4 repeats the id of line 1" in err
    assert "2 texts are longer than the model reads and were cut" in err
    assert "1 texts hold words the model cannot read ([UNK]" in err
    with Index.open(out) as index:
        assert index.count == 4 and index.get("a")["text"] == "첫 문서의 새 판"
        assert index.get("7")["text"] == "같은 아이디"
        assert len(index.get("long")["text"]) > 30_000  # the stored text is whole
    # A rerun changes nothing and says the same about the input.
    assert main(["index", str(tmp_path / "d.jsonl"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "added 0, replaced 0, unchanged 4" in err and "2 records repeat" in err


def test_the_search_table_shows_a_bounded_part_of_long_texts(tmp_path, tiny_st_dir, capsys):
    out = tmp_path / "ix"
    rows = [{"id": "long", "text": "긴 문서입니다 " * 50_000, "metadata": {"note": "메모 " * 10_000}}]
    assert main(["index", str(_jsonl(tmp_path / "d.jsonl", rows)), "-o", str(out), "--model", str(tiny_st_dir),
                 "-q"]) == 0
    assert main(["search", str(out), "긴 문서 " * 10_000, "-k", "1"]) == 0
    table = capsys.readouterr().out
    assert "(+" in table and len(table) < 40_000  # the text alone is 400,000 characters
    assert main(["search", str(out), "긴 문서", "-k", "1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["hits"][0]["text"]) == len(rows[0]["text"].strip())


def test_a_relative_model_path_is_recorded_absolute_so_search_works_from_anywhere(tmp_path, tiny_st_dir, capsys,
                                                                                   monkeypatch):
    monkeypatch.chdir(tiny_st_dir.parent)
    rows = [{"id": "w", "text": "오늘 서울은 맑습니다"}, {"id": "e", "text": "주식이 올랐다"}]
    docs = _jsonl(tmp_path / "d.jsonl", rows)
    out = tmp_path / "ix"
    assert main(["index", str(docs), "-o", str(out), "--model", tiny_st_dir.name, "-q"]) == 0
    with Index.open(out) as index:
        assert index.manifest.model.name == str(tiny_st_dir)
    monkeypatch.chdir(tmp_path)
    assert main(["search", str(out), "주식", "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["id"] == "e"
