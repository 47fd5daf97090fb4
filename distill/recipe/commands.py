"""``python -m distill recipe NAME``: run a committed end-to-end recipe (see :mod:`distill.recipe.run`)."""

from __future__ import annotations

import sys

import typer

from distill.cli import app
from distill.recipe.run import RecipeConfig


@app.command("recipe")
def recipe_command(
    name: str = typer.Argument(RecipeConfig.name,
                               help="recipe name (distill/recipe/recipes/NAME.json) or a recipe JSON file"),
    output_dir: str = typer.Option(None, "--output-dir", "-o", help="override the recipe's output folder"),
    data_dir: str = typer.Option(None, "--data-dir", help="Korean data folder (default ../shared/data)"),
    only: str = typer.Option(None, "--only", help="comma-separated stages to run (others are skipped)"),
    threads: int | None = typer.Option(None, "--threads", min=0,
                                       help="torch threads, 0 = all cores (default: the recipe's threads)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """Run tokenizer -> MLM teacher -> distillation -> sentence training -> evaluation -> package -> bench.

    Finished stages are skipped on a rerun and interrupted ones resume from their checkpoints.
    """
    from distill.recipe.run import Recipe, load_recipe_json

    data = load_recipe_json(name)
    stages = only.split(",") if only else None
    if data.get("kind") == "e5-student":
        from distill.recipe.e5_student import E5StudentConfig, run_e5_student

        run_e5_student(_overridden(E5StudentConfig.from_dict(data, name), output_dir, data_dir, threads, quiet), stages)
        return
    cfg = _overridden(RecipeConfig.load(name), output_dir, data_dir, threads, quiet)
    Recipe(cfg, log=lambda m: print(m, file=sys.stderr, flush=True)).run(stages)


def _overridden(cfg, output_dir: str | None, data_dir: str | None, threads: int | None, quiet: bool):
    """The command line's settings over a recipe's (any recipe config has these four fields)."""
    if output_dir:
        cfg.output_dir = output_dir
    if data_dir:
        cfg.data_dir = data_dir
    if threads is not None:
        cfg.threads = threads
    cfg.quiet = cfg.quiet or quiet
    return cfg
