"""The Typer app, and the one place that turns a ``KoembedError`` into ``error: ...`` + an exit code."""

from __future__ import annotations

import sys

import typer

from koembed.errors import KoembedError

app = typer.Typer(
    name="koembed",
    help="Korean sentence embeddings and retrieval on KoMiniLM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def run(argv: list[str], typer_app: typer.Typer | None = None, prog_name: str = "koembed") -> int:
    """Run ``typer_app`` (koembed's by default) on ``argv``; user errors print one line, never a traceback."""
    try:
        (typer_app or app)(args=argv, prog_name=prog_name, standalone_mode=False)
    except KoembedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # typer/click exit paths (e.g. --help)
        return int(exc.code or 0)
    except Exception as exc:  # usage errors, from click or from the copy of click that newer typer vendors
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        if type(exc).__name__ == "Abort":
            print("aborted", file=sys.stderr)
            return 1
        raise
    return 0
