"""The exit-code table of docs/errors.md against the code, and the paths that used to end in a traceback or the wrong
code: Ctrl-C during start-up, arguments that are not UTF-8, encode on a full disk or into a read-only folder, serve on
a port in use (issue 27)."""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from koembed.cli import interrupt, main
from koembed.cli.app import check_arguments, run
from koembed.errors import InputError, KoembedError, MissingExtraError, Terminated

REPO = Path(__file__).resolve().parent.parent


def one_error_line(err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- the table -------------------------------------------------------------------------------------------------
def _table() -> dict[int, str]:
    """``{code: the exception named in its 'Raised as' cell}`` from docs/errors.md."""
    text = (REPO / "docs" / "errors.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| [^|]+ \|\s*`?([A-Za-z]*)`?\s*\|", text, flags=re.M)
    assert rows, "docs/errors.md lost its exit-code table"
    return {int(code): name for code, name in rows}


def test_the_exit_code_table_and_the_code_agree():
    table = _table()
    codes: dict[int, str] = {0: ""}

    def walk(cls: type) -> None:
        assert cls.exit_code not in codes, f"{cls.__name__} reuses exit code {cls.exit_code} ({codes[cls.exit_code]})"
        codes[cls.exit_code] = cls.__name__
        for sub in cls.__subclasses__():
            if sub.__module__ == "koembed.errors":  # the documented classes; others specialise them
                walk(sub)

    walk(KoembedError)
    codes[Terminated.exit_code] = "Terminated"
    codes[interrupt.INTERRUPTED] = "KeyboardInterrupt"
    assert table == codes
    # Every error class anywhere in koembed exits with a documented code (a subclass keeps its parent's).
    def all_subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in all_subclasses(sub))]

    assert {c.exit_code for c in all_subclasses(KoembedError)} <= set(table)


# -- Ctrl-C ----------------------------------------------------------------------------------------------------
def test_importing_the_entry_point_loads_nothing_before_the_handler():
    # The console script runs `from koembed.cli import main`: everything it imports runs before the Ctrl-C
    # handler exists, so it must be next to nothing (typer and the command modules load inside main).
    code = ("import sys; before = set(sys.modules); from koembed.cli import main; "
            "print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert eval(out) == ["koembed", "koembed.cli"]


def _interrupt_inside(monkeypatch, then) -> None:
    """Deliver a real SIGINT while ``koembed.cli.main`` imports the command's module, then run ``then()``."""
    import importlib

    real = importlib.import_module

    def importing(name, *args, **kwargs):
        if name.startswith("koembed.cli."):
            try:
                os.kill(os.getpid(), signal.SIGINT)  # the handler main installed raises here
                time.sleep(5)  # (at the latest here)
            except KeyboardInterrupt:
                then()
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", importing)


def test_ctrl_c_while_the_command_loads_is_one_line_and_130(monkeypatch, capsys):
    def propagate():
        raise KeyboardInterrupt

    _interrupt_inside(monkeypatch, propagate)
    assert main(["info", "nowhere"]) == 130
    one_error_line(capsys.readouterr().err, "interrupted (Ctrl-C)")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # an in-process caller keeps its handler


def test_ctrl_c_that_a_library_turned_into_an_import_error_is_still_130(monkeypatch, capsys):
    def as_onnxruntime_does():
        raise ImportError("initialization failed")  # what a native module's import can make of a Ctrl-C

    _interrupt_inside(monkeypatch, as_onnxruntime_does)
    assert main(["info", "nowhere"]) == 130
    one_error_line(capsys.readouterr().err, "interrupted (Ctrl-C)")


def test_a_missing_extra_reported_after_a_ctrl_c_is_the_interruption(capsys):
    import typer

    app = typer.Typer()

    @app.command()
    def load() -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            raise MissingExtraError("the onnx backends need onnxruntime: pip install 'koembed[onnx]'") from None

    @app.command()
    def other() -> None:
        pass

    previous = interrupt.install()
    try:
        assert run(["load"], app) == 130
    finally:
        interrupt.restore(previous)
    one_error_line(capsys.readouterr().err, "interrupted (Ctrl-C)")


# -- arguments that are not UTF-8 ------------------------------------------------------------------------------
def test_an_argument_that_is_not_utf8_is_one_line_naming_it(tmp_path, capsys):
    bad = os.fsdecode(b"\xff\xfe")  # what Python makes of those bytes in sys.argv
    assert main(["search", str(tmp_path / "ix"), bad]) == 2
    one_error_line(capsys.readouterr().err, "argument 3", r"b'\xff\xfe'", "not UTF-8 (0xff at character 0)")
    assert main(["search", str(tmp_path / "ix"), "날씨", f"--filter=topic={bad}"]) == 2
    one_error_line(capsys.readouterr().err, "argument 4")
    # A file that exists may have any name: that is the file's name, not text koembed reads.
    named = tmp_path / os.fsdecode(b"caf\xe9.txt")
    named.write_text("안녕\n", encoding="utf-8")
    check_arguments(["encode", str(named)])
    with pytest.raises(InputError, match="argument 2"):
        check_arguments(["encode", str(tmp_path / os.fsdecode(b"missing\xe9.txt"))])


def test_a_cli_query_that_is_not_utf8_is_refused_by_a_real_process(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "koembed", "search", os.fsencode(tmp_path), b"\xff"],
                          capture_output=True, env=env, cwd=REPO)
    assert proc.returncode == 2
    one_error_line(proc.stderr.decode("utf-8", "replace"), "not UTF-8")


# -- encode: writes that fail outside koembed exit 6 -----------------------------------------------------------
@pytest.fixture()
def texts(tmp_path) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("서울 날씨\n경제 뉴스\n", encoding="utf-8")
    return path


def test_encode_on_a_full_disk_exits_6(tmp_path, texts, tiny_st_dir, monkeypatch, capsys):
    import koembed.writers

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(koembed.writers.NpyWriter, "write", full)
    out = tmp_path / "out.npy"
    assert main(["encode", str(texts), "-o", str(out), "--model", str(tiny_st_dir), "-q"]) == 6
    one_error_line(capsys.readouterr().err, str(out), "No space left on device", "nothing was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["texts.txt"]


def test_encode_into_a_read_only_folder_exits_6(tmp_path, texts, tiny_st_dir, monkeypatch, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == folder and mode == os.W_OK
                        else real_access(p, mode, **kw))
    assert main(["encode", str(texts), "-o", str(folder / "out.npy"), "--model", str(tiny_st_dir), "-q"]) == 6
    one_error_line(capsys.readouterr().err, "not writable")


# -- serve -----------------------------------------------------------------------------------------------------
def test_serve_on_a_port_in_use_says_so_before_loading_anything(capsys, monkeypatch):
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    import koembed.server.app

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model and indexes load only once the port is ours")

    monkeypatch.setattr(koembed.server.app, "create_app", must_not_load)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "-q"]) == 2
    one_error_line(capsys.readouterr().err, f"cannot listen on 127.0.0.1:{port}", "in use", "another --port")
