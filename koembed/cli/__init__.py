"""The ``koembed`` command line: a thin layer over the library (one module per command group).

Heavy libraries are imported inside the commands, never here, so ``koembed --help`` and the
ONNX paths start without torch.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time, and a Ctrl-C then is a traceback (koembed.cli.interrupt)
    from typing import Any

# Each module registers its commands on ``app`` when imported. ``koembed CMD`` imports only CMD's module
# (the others cost start-up time: training config, the index builder, the server); --help and unknown
# names import all, so typer can list them or suggest one. tests/test_cli_startup.py checks this map
# against what the modules register.
COMMANDS = {
    "koembed.cli.encode": ("encode", "version"),
    "koembed.cli.train": ("train", "eval"),
    "koembed.cli.index": ("index", "search", "info", "remove", "compact", "add-lexical"),
    "koembed.cli.serve": ("serve",),
    "koembed.cli.models": ("models", "import-e5"),
}
COMMAND_MODULES = list(COMMANDS)


def command_modules(argv: list[str]) -> list[str]:
    """The command modules ``koembed ARGV`` needs: the named command's own, or all of them."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return next(([module] for module, names in COMMANDS.items() if first in names), COMMAND_MODULES)


def main(argv: list[str] | None = None) -> int:
    """``koembed ARGV`` (default: the process's arguments); returns the exit code (docs/errors.md)."""
    program = argv is None  # called as the program: the process ends when this returns
    argv = argv if argv is not None else sys.argv[1:]
    previous = None
    try:
        try:
            # Every import happens in here, after the handler: a Ctrl-C during start-up is one line too.
            from koembed.cli import interrupt

            previous = interrupt.install()
            import importlib

            for name in command_modules(argv):
                importlib.import_module(name)
            from koembed.cli.app import run
        except BaseException as exc:
            from koembed.cli import interrupt

            if not (isinstance(exc, KeyboardInterrupt) or interrupt.fired()):
                raise
            print(f"error: {interrupt.INTERRUPTED_MESSAGE}", file=sys.stderr)
            return interrupt.INTERRUPTED
        return run(argv)
    finally:
        handlers = sys.modules.get("koembed.cli.interrupt")
        if handlers is not None and program:  # the answer is out: a Ctrl-C during shutdown just ends the process
            handlers.quiet_exit()
        elif handlers is not None:
            handlers.restore(previous)


def __getattr__(name: str) -> Any:
    if name == "app":  # the Typer app, imported on use: ``koembed`` catches Ctrl-C before typer loads
        from koembed.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
