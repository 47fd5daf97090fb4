"""The command line does what the README says (issue 26): -q on every command, --version, the README's options exist,
help groups the Ray-only and --from-vectors options apart, bars only on a terminal, and refusals suggest commands
that work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from koembed.cli import COMMANDS, main

REPO = Path(__file__).resolve().parent.parent
COMMAND_NAMES = [name for names in COMMANDS.values() for name in names]


def _help(capsys, *args: str) -> str:
    assert main([*args, "--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_every_command_takes_quiet(command, capsys):
    assert "--quiet" in _help(capsys, command), command


def test_version_flag_and_command(capsys):
    from koembed import __version__

    assert main(["--version"]) == 0 and capsys.readouterr().out == f"koembed {__version__}\n"
    assert main(["version", "-q"]) == 0 and capsys.readouterr().out == f"{__version__}\n"


def _readme_commands() -> list[tuple[list[str], list[str]]]:
    """(command words, options) of each command line in the README's command-line block."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    out = []
    for line in block.splitlines():
        for part in line.split(" ; "):
            words = part.split("#", 1)[0].split()
            options = [w.split("=")[0].strip("[]") for w in words if re.match(r"\[?--?[a-z]", w)]
            if words[:1] == ["koembed"] and len(words) > 1:
                out.append((words[:2], options))
            elif words[:3] == ["python", "-m", "distill"] and len(words) > 3:
                out.append((words[:4], [o for o in options if o != "-m"]))
    return out


def test_the_readme_commands_take_the_options_it_shows():
    commands = _readme_commands()
    assert len(commands) >= 10
    for words, options in commands:
        if not options:
            continue
        prog = [sys.executable, "-m", "koembed", words[1]] if words[0] == "koembed" else \
            [sys.executable, "-m", "distill", words[3]]
        shown = subprocess.run([*prog, "--help"], capture_output=True, text=True, timeout=120, cwd=REPO,
                               env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}).stdout
        for option in options:
            assert re.search(rf"(?<![\w-]){re.escape(option)}\b", shown), (words, option)


def test_help_groups_ray_and_from_vectors_options_apart(capsys):
    encode = _help(capsys, "encode")
    assert "Ray only (--engine ray)" in encode
    assert encode.index("--num-workers") > encode.index("Ray only") > encode.index("--text-field")
    index = _help(capsys, "index")
    assert "From vectors (--from-vectors only)" in index
    assert index.index("--part-rows") > index.index("From vectors") > index.index("--analyser")


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, tiny_st_dir):
    docs = tmp_path / "d.txt"
    docs.write_text("".join(f"문장 {i}번입니다\n" for i in range(50)), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "koembed", "index", str(docs), "-o", str(tmp_path / "ix"),
                           "--model", str(tiny_st_dir)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "it/s" not in proc.stderr and "doc/s" not in proc.stderr, proc.stderr


def test_a_folder_that_is_no_index_suggests_a_command_that_works(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("안녕하세요\n", encoding="utf-8")
    assert main(["search", str(folder), "질의", "-q"]) == 4
    err = capsys.readouterr().err
    assert "not a koembed index" in err and f"-o {folder}`" not in err and "NEW_DIR" in err
    assert main(["index", str(folder), "-o", str(folder), "-q"]) != 0  # what the old hint said: refused
