"""The ``koembed`` command line: a thin layer over the library (one module per command group).

Heavy libraries are imported inside the commands, never here, so ``koembed --help`` and the
ONNX paths start without torch.
"""

from __future__ import annotations

import importlib
import sys

from koembed.cli.app import app

# Each module registers its commands on ``app`` when imported. ``koembed CMD`` imports only CMD's module
# (the others cost start-up time: training config, the index builder, the server); --help and unknown
# names import all, so typer can list them or suggest one. tests/test_cli_startup.py checks this map
# against what the modules register.
COMMANDS = {
    "koembed.cli.encode": ("encode", "version"),
    "koembed.cli.train": ("train", "eval"),
    "koembed.cli.index": ("index", "search", "info", "remove", "compact", "add-lexical"),
    "koembed.cli.serve": ("serve",),
}
COMMAND_MODULES = list(COMMANDS)


def command_modules(argv: list[str]) -> list[str]:
    """The command modules ``koembed ARGV`` needs: the named command's own, or all of them."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return next(([module] for module, names in COMMANDS.items() if first in names), COMMAND_MODULES)


def main(argv: list[str] | None = None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    for name in command_modules(argv):
        importlib.import_module(name)
    from koembed.cli.app import run

    return run(argv)


__all__ = ["app", "main"]
