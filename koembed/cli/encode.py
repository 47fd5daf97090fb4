"""``koembed encode``: a text file (one text per line), or records, to a .npy / .jsonl / .parquet vector file."""

from __future__ import annotations

import dataclasses
import os
import sys

import typer

from koembed.backends import BACKEND_CHOICES
from koembed.cli.app import app
from koembed.errors import InputError
from koembed.file_encoding import EncodeFileConfig
from koembed.scale.job_config import EncodeJobConfig

# The defaults are the config dataclasses' (input and output have none: they are required).
_F = {f.name: f.default for f in dataclasses.fields(EncodeFileConfig)}
_R = {f.name: f.default for f in dataclasses.fields(EncodeJobConfig)}
RAY = "Ray only (--engine ray)"


@app.command()
def encode(
    input: str = typer.Argument(
        ..., help="UTF-8 text file, one text per line, or '-' for stdin; records from .jsonl, .json (an array), "
        ".csv, .tsv, .parquet, a folder or a quoted pattern ('docs/*.jsonl'); with --engine ray also a URI "
        "pyarrow opens (s3://...)."),
    output: str | None = typer.Option(
        None, "-o", "--output",
        help="OUT ending in .npy (default INPUT.npy), .jsonl or .parquet; '-' writes JSONL to stdout.",
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Hub id or local model folder (default: embedded)."),
    batch_size: int = typer.Option(_F["batch_size"], "--batch-size", min=1, help="Texts per forward pass."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps (default: cpu)."),
    max_seq_length: int | None = typer.Option(
        None, "--max-seq-length", min=2, help="Truncate longer texts to this many tokens (they are counted)."
    ),
    normalize: bool = typer.Option(_F["normalize"], "--normalize/--no-normalize", help="L2-normalise the vectors."),
    backend: str = typer.Option(_F["backend"], "--backend", help=f"Inference backend: {', '.join(BACKEND_CHOICES)} "
                                "(auto: onnx when onnxruntime is installed and the device is the CPU, else torch)."),
    workers: int = typer.Option(_F["workers"], "--workers", min=1,
                                help="Encoding processes, each with cores/N threads."),
    errors: str = typer.Option(
        _F["errors"], "--errors", help="'strict': stop at the first non-UTF-8 line; 'replace': replace bad bytes."
    ),
    chunk_size: int = typer.Option(_F["chunk_size"], "--chunk-size", min=1, help="Lines read and written at a time."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
    prompt: str | None = typer.Option(None, "--prompt", help="Name of the model's prompt put before each text "
                                      "(e.g. query or document; default: the model's default prompt, if any)."),
    engine: str = typer.Option("local", "--engine", help="local: this process (and --workers); ray: a Ray cluster "
                               "writing a sharded vector set folder OUT (docs/scale.md)."),
    fmt: str | None = typer.Option(None, "--format", help="txt|jsonl|json|tsv|csv|parquet (default: from the "
                                   "suffix; a .txt that looks like a table is refused: pass tsv or txt)."),
    text_field: str = typer.Option(_R["text_field"], "--text-field", help="Records: the field / column holding the "
                                   "text."),
    id_field: str = typer.Option(_R["id_field"], "--id-field", help="Records: the field / column holding the id."),
    metadata_field: str = typer.Option(_R["metadata_field"], "--metadata-field",
                                       help="Records: the field / column holding a metadata object."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Records: skip and count malformed records."),
    address: str | None = typer.Option(None, "--address", rich_help_panel=RAY,
                                       help="Ray cluster address (default: a local Ray)."),
    num_workers: int | None = typer.Option(None, "--num-workers", min=1, rich_help_panel=RAY, help="Encoding actors "
                                           "(default: cluster CPUs / --cpus-per-worker, or GPUs / --gpus-per-worker)."),
    cpus_per_worker: int = typer.Option(_R["cpus_per_worker"], "--cpus-per-worker", min=1, rich_help_panel=RAY,
                                        help="CPU threads per actor."),
    gpus_per_worker: float = typer.Option(_R["gpus_per_worker"], "--gpus-per-worker", min=0.0, rich_help_panel=RAY,
                                          help="GPUs per actor (0: CPU)."),
    shard_rows: int = typer.Option(_R["shard_rows"], "--shard-rows", min=1, rich_help_panel=RAY,
                                   help="Input rows per shard (unit of resume)."),
    vectors_only: bool = typer.Option(False, "--vectors-only", rich_help_panel=RAY,
                                      help="Store ids and vectors, not texts."),
) -> None:
    """Encode each line of INPUT into one vector (rows aligned with lines; empty lines kept and counted), or
    each record of a .jsonl/.json/.csv/.tsv/.parquet file or folder (its text field; id, line and metadata kept
    in .jsonl/.parquet output; empty and --skip-bad records skipped and counted).

    With --engine ray: encode records (id, text, metadata) into Parquet shards + manifest.json in the folder OUT;
    rerun the same command to resume.
    """
    if engine == "ray":
        from koembed.scale import encode_distributed

        if prompt is not None:
            raise InputError("--prompt applies to --engine local only")
        if output is None or output == "-" or workers != 1:
            raise InputError("--engine ray needs -o OUT_DIR (a folder) and takes --num-workers, not --workers")
        job = EncodeJobConfig(
            input=input, output=output, model=model, backend=backend, device=device, max_seq_length=max_seq_length,
            normalize=normalize, batch_size=batch_size, fmt=fmt, text_field=text_field, id_field=id_field,
            metadata_field=metadata_field, skip_bad=skip_bad, errors=errors, with_text=not vectors_only,
            shard_rows=shard_rows, address=address, num_workers=num_workers, cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker)
        result = encode_distributed(job, quiet=quiet)
        if not quiet:
            print(result.summary(), file=sys.stderr)
        return
    if engine != "local":
        raise InputError(f"--engine {engine!r}: choose local or ray")
    from koembed.file_encoding import default_output, run_encode_file

    config = EncodeFileConfig(input=input, output=default_output(input, output), model=model, batch_size=batch_size,
                              device=device, max_seq_length=max_seq_length, normalize=normalize, backend=backend,
                              errors=errors, chunk_size=chunk_size, workers=workers, fmt=fmt, text_field=text_field,
                              id_field=id_field, metadata_field=metadata_field, skip_bad=skip_bad, prompt_name=prompt)
    try:
        report = run_encode_file(config, show_progress=False if quiet else None)
    except BrokenPipeError:
        # `koembed encode f -o - | head`: the reader left; stop quietly like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(141) from None  # 128 + SIGPIPE, as a shell reports it
    if not quiet:
        print(report.summary(), file=sys.stderr)


@app.command()
def version(quiet: bool = typer.Option(False, "--quiet", "-q", help="Print the version number alone.")) -> None:
    """Print the koembed version (also: koembed --version)."""
    from koembed import __version__

    print(__version__ if quiet else f"koembed {__version__}")
