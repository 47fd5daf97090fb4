"""The Typer app, and the one place that turns a ``KoembedError`` into ``error: ...`` + an exit code."""

from __future__ import annotations

import signal
import sys
import threading

import typer

from koembed.errors import KoembedError, Terminated

app = typer.Typer(
    name="koembed",
    help="Korean sentence embeddings and retrieval on KoMiniLM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    # A callback keeps koembed a command group when only one command module is loaded (see koembed.cli):
    # typer runs a lone command without its name otherwise.
    pass


# Exit codes (docs/errors.md): 0 ok, 1 other error, 2 bad input or usage, 3 model not found, 4 index refused,
# 5 missing optional dependency, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
INTERRUPTED = 130
INTERRUPTED_MESSAGE = "interrupted (Ctrl-C); files are as they were before the command or at its last commit"
TERMINATED_MESSAGE = "terminated (SIGTERM); files are as they were before the command or at its last commit"


def run(argv: list[str], typer_app: typer.Typer | None = None, prog_name: str = "koembed") -> int:
    """Run ``typer_app`` (koembed's by default) on ``argv``; user errors print one line, never a traceback."""
    previous = _raise_on_sigterm()
    try:
        code = (typer_app or app)(args=argv, prog_name=prog_name, standalone_mode=False)
    except KoembedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"error: {INTERRUPTED_MESSAGE}", file=sys.stderr)
        return INTERRUPTED
    except Terminated:
        print(f"error: {TERMINATED_MESSAGE}", file=sys.stderr)
        return Terminated.exit_code
    except SystemExit as exc:  # typer/click exit paths (e.g. --help)
        return int(exc.code or 0)
    except Exception as exc:  # usage errors, from click or from the copy of click that newer typer vendors
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
            print(f"error: {INTERRUPTED_MESSAGE}", file=sys.stderr)
        return code
    return 0


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
