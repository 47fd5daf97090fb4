"""The ``koembed`` command line: a thin layer over the library (one module per command group).

Heavy libraries are imported inside the commands, never here, so ``koembed --help`` and the
ONNX paths start without torch.
"""

from __future__ import annotations

import importlib
import sys

from koembed.cli.app import app

# Each module registers its commands on ``app`` when imported.
COMMAND_MODULES = ["koembed.cli.encode", "koembed.cli.train", "koembed.cli.index", "koembed.cli.serve"]


def main(argv: list[str] | None = None) -> int:
    for name in COMMAND_MODULES:
        importlib.import_module(name)
    from koembed.cli.app import run

    return run(argv if argv is not None else sys.argv[1:])


__all__ = ["app", "main"]
