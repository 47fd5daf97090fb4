"""``koembed encode``: a text file (one text per line) to a .npy / .jsonl / .parquet vector file."""

from __future__ import annotations

import os
import sys

import typer

from koembed.backends import BACKENDS
from koembed.cli.app import app
from koembed.file_encoding import DEFAULT_CHUNK_SIZE


@app.command()
def encode(
    input: str = typer.Argument(..., help="UTF-8 text file, one text per line, or '-' for stdin."),
    output: str | None = typer.Option(
        None, "-o", "--output",
        help="OUT ending in .npy (default INPUT.npy), .jsonl or .parquet; '-' writes JSONL to stdout.",
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Hub id or local model folder (default: embedded)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Texts per forward pass."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps (default: cpu)."),
    max_seq_length: int | None = typer.Option(
        None, "--max-seq-length", min=2, help="Truncate longer texts to this many tokens (they are counted)."
    ),
    normalize: bool = typer.Option(True, "--normalize/--no-normalize", help="L2-normalise the vectors."),
    backend: str = typer.Option("torch", "--backend", help=f"Inference backend: {', '.join(sorted(BACKENDS))}."),
    workers: int = typer.Option(1, "--workers", min=1, help="Encoding processes, each with cores/N threads."),
    errors: str = typer.Option(
        "strict", "--errors", help="'strict': stop at the first non-UTF-8 line; 'replace': replace bad bytes."
    ),
    chunk_size: int = typer.Option(DEFAULT_CHUNK_SIZE, "--chunk-size", min=1, help="Lines read and written at a time."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
) -> None:
    """Encode each line of INPUT into one vector (rows aligned with lines; empty lines kept and counted)."""
    from koembed.file_encoding import encode_file

    try:
        report = encode_file(
            input, output, model=model, batch_size=batch_size, device=device, max_seq_length=max_seq_length,
            normalize=normalize, backend=backend, errors=errors, chunk_size=chunk_size, workers=workers,
            show_progress=False if quiet else None,
        )
    except BrokenPipeError:
        # `koembed encode f -o - | head`: the reader left; stop quietly like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(141) from None  # 128 + SIGPIPE, as a shell reports it
    if not quiet:
        print(report.summary(), file=sys.stderr)


@app.command()
def version() -> None:
    """Print the koembed version."""
    from koembed import __version__

    print(f"koembed {__version__}")
