"""``python -m distill``: distillation (run, mlm, presets) and the benchmark suite (bench, report).

Commands live in their own modules and register on ``app`` when imported; this file only
assembles them and turns user errors into one-line messages.
"""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="distill",
    help="Distil KoMiniLM backbones (MiniLM self-attention distillation) and benchmark them on Korean tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module registers its commands on ``app`` when imported.
COMMAND_MODULES: list[str] = [
    "distill.commands_distill", "distill.bench.commands", "distill.recipe.commands", "distill.recipe.e5_vocab",
]


def main(argv: list[str] | None = None) -> int:
    from koembed.cli.app import run

    for name in COMMAND_MODULES:
        importlib.import_module(name)
    return run(argv if argv is not None else sys.argv[1:], typer_app=app, prog_name="python -m distill")
