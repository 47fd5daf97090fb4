"""The Typer app, and the one place that turns a ``KoembedError`` into ``error: ...`` + an exit code."""

from __future__ import annotations

import os
import signal
import sys
import threading

import typer

from koembed.cli import interrupt
from koembed.errors import InputError, KoembedError, Terminated
from koembed.text import text_problem

app = typer.Typer(
    name="koembed",
    help="Korean sentence embeddings and retrieval on KoMiniLM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from koembed import __version__

        print(f"koembed {__version__}")
        raise typer.Exit()


@app.callback()
def _group(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the koembed version and exit (as koembed version)."),
) -> None:
    # A callback keeps koembed a command group when only one command module is loaded (see koembed.cli):
    # typer runs a lone command without its name otherwise.
    pass


# The exit codes are koembed.errors' (docs/errors.md lists them all); Ctrl-C's are koembed.cli.interrupt's.
INTERRUPTED = interrupt.INTERRUPTED
INTERRUPTED_MESSAGE = interrupt.INTERRUPTED_MESSAGE
TERMINATED_MESSAGE = "terminated (SIGTERM); files are as they were before the command or at its last commit"


def run(argv: list[str], typer_app: typer.Typer | None = None, prog_name: str = "koembed") -> int:
    """Run ``typer_app`` (koembed's by default) on ``argv``; user errors print one line, never a traceback."""
    previous = _raise_on_sigterm()
    try:
        check_arguments(argv)
        code = (typer_app or app)(args=argv, prog_name=prog_name, standalone_mode=False)
    except KoembedError as exc:
        if interrupt.fired():  # e.g. an import that Ctrl-C broke, reported as a missing dependency
            return _interrupted()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted()
    except Terminated:
        print(f"error: {TERMINATED_MESSAGE}", file=sys.stderr)
        return Terminated.exit_code
    except SystemExit as exc:  # typer/click exit paths (e.g. --help)
        return int(exc.code or 0)
    except Exception as exc:  # usage errors, from click or from the copy of click that newer typer vendors
        if interrupt.fired():
            return _interrupted()
        from koembed.extras import missing_extra

        missing = missing_extra(exc, _command_of(argv, prog_name))
        if missing is not None:  # an optional dependency this command needs (slim install): name the extra
            print(f"error: {missing}", file=sys.stderr)
            return missing.exit_code
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        if type(exc).__name__ == "Abort":
            print("aborted", file=sys.stderr)
            return 1
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    # In non-standalone mode typer turns Ctrl-C into Exit(130) and *returns* that code (commands return None).
    if isinstance(code, int) and not isinstance(code, bool) and code:
        if code == INTERRUPTED:
            return _interrupted()
        return code
    return 0


def _interrupted() -> int:
    print(f"error: {INTERRUPTED_MESSAGE}", file=sys.stderr)
    return INTERRUPTED


def check_arguments(argv: list[str]) -> None:
    """Refuse an argument holding bytes that are not UTF-8, naming it, before any command sees it.

    Python carries such bytes as lone surrogates, which break the tokenizer, SQLite and every UTF-8
    writer further on. An existing file or folder may have any name, so a path that exists passes.
    """
    for i, arg in enumerate(argv, start=1):
        problem = text_problem(arg, from_bytes=True)
        if problem is None:
            continue
        value = arg.partition("=")[2] if arg.startswith("--") and "=" in arg else arg
        if os.path.lexists(value):
            continue
        shown = arg.encode("utf-8", "surrogateescape" if problem.startswith("holds a byte") else "backslashreplace")
        raise InputError(f"argument {i} ({shown!r}): {problem}")


def _command_of(argv: list[str], prog_name: str) -> str | None:
    if "distill" in prog_name:
        return "distill"
    return next((a for a in argv if not a.startswith("-")), None)


def _raise_on_sigterm():
    """Make SIGTERM raise :class:`Terminated` once, so temp files are removed and locks released on the way out.

    The default action would end the process at once, leaving hidden ``*.tmp`` files. A second SIGTERM
    during that clean-up kills as usual. Returns the previous handler (None off the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)
