"""``python -m distill bench`` and ``python -m distill report``: thin wrappers over distill.bench.run / .report."""

from __future__ import annotations

import sys

import typer

from distill.bench.run import BenchConfig
from distill.cli import app

_B = BenchConfig(models=[])  # the defaults shown and used by the options below


@app.command()
def bench(
    models: list[str] | None = typer.Argument(
        None, help="Model folders or Hub ids (klue/bert-base, BM-K/KoMiniLM); label one as name=path."
    ),
    tasks: str = typer.Option(_B.tasks, "--tasks", help="'all' (the seven seed tasks), 'extras', 'every', or t1,t2."),
    seeds: int = typer.Option(_B.seeds, "--seeds", min=1, help="Runs per task (seeds 42, 43, ...): mean ± std."),
    output_dir: str = typer.Option(_B.output_dir, "--output-dir", "-o", help="Results folder (resumes if present)."),
    max_train_samples: int | None = typer.Option(None, "--max-train-samples", min=1, help="Cap on training examples."),
    max_eval_samples: int | None = typer.Option(None, "--max-eval-samples", min=1, help="Cap on dev and test."),
    epochs: float | None = typer.Option(None, "--epochs", min=1, help="Override every task's default epochs."),
    max_length: int | None = typer.Option(None, "--max-length", min=16, help="Override every task's max tokens."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Override every task's total batch."),
    learning_rate: float | None = typer.Option(None, "--lr", help="Override every task's learning rate."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Korean data folder; it must exist (default: "
                                        "$KOEMBED_DATA_DIR, else ../shared/data). docs/data.md lists the data sets."),
    hub: bool = typer.Option(_B.use_hub, "--hub/--no-hub",
                             help="Load a split from its catalogued Hub dataset when its local files are missing."),
    device: str | None = typer.Option(None, "--device", help="'cpu' to ignore a GPU (default: what torch finds)."),
    list_tasks: bool = typer.Option(False, "--list-tasks", help="List the registered tasks and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Fine-tune MODELS on the Korean tasks (checkpoint chosen on dev, scored on test); one JSON per run."""
    if list_tasks:
        from distill.bench.tasks import describe_tasks

        print(describe_tasks())
        return
    from distill.bench.run import run_bench

    config = BenchConfig(
        models=list(models or []), output_dir=output_dir, tasks=tasks, seeds=seeds,
        max_train_samples=max_train_samples, max_eval_samples=max_eval_samples, epochs=epochs,
        max_length=max_length, batch_size=batch_size, learning_rate=learning_rate, data_dir=data_dir,
        use_hub=hub, device=device, quiet=quiet,
    )
    out = run_bench(config)
    if not quiet:
        print(f"results in {out}; table: python -m distill report {out}", file=sys.stderr)


@app.command()
def report(
    results_dir: str = typer.Argument(..., help="A folder written by 'python -m distill bench'."),
    plot: str | None = typer.Option(None, "--plot", help="Also write a PNG bar chart comparing the models here."),
) -> None:
    """Print the Markdown table (mean ± std over seeds, average, #params) of a results folder."""
    from distill.bench.report import plot_report, render_report

    print(render_report(results_dir), end="")
    if plot:
        plot_report(results_dir, plot)
        print(f"chart written to {plot}", file=sys.stderr)
