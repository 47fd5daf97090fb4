"""``python -m distill run | mlm | presets``: thin wrappers over :func:`distill.minilm.distill`,
:func:`distill.mlm.train_mlm` and :data:`distill.student.PRESETS`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from distill.cli import app

_CORPUS = typer.Option(..., "--corpus", help="Corpus files (txt a line a document, jsonl/tsv/csv/parquet with a text "
                       "field) or Hub dataset names (owner/name, hf:NAME, hf:NAME:CONFIG@SPLIT); several may follow "
                       "one --corpus.")
# Paths after the first one of ``--corpus a.txt b.txt`` (or a shell glob) arrive as extra arguments.
_MORE = typer.Argument(None, help="More corpus paths (as in --corpus a.txt b.txt, or --corpus shards/*.txt).",
                       show_default=False, metavar="PATH")

_SHARD_HELP = ("documents: each process tokenises its own blocks of documents (scales; resume with the same number "
               "of processes) | stream: every process walks the whole stream (same batches for any number).")

_WORKERS_HELP = ("Worker processes per training process that read/tokenise/pack their own share of the corpus "
                 "(0: one background thread). A GPU needs several: see docs/distill.md.")


def _config(cls: type, params: dict, **extra):
    """Build ``cls`` (a config dataclass) from a command's parameters: options are named like its fields."""
    names = {f.name for f in dataclasses.fields(cls)}
    kw = {k: str(v) if isinstance(v, Path) else v for k, v in params.items() if k in names}
    kw["corpus"] = [str(c) for c in [*params["corpus"], *(params.get("more_corpus") or [])]]
    return cls(**{**kw, **extra})


def _size_overrides(hidden_size, layers, heads, intermediate_size) -> dict:
    given = {"hidden_size": hidden_size, "num_hidden_layers": layers, "num_attention_heads": heads,
             "intermediate_size": intermediate_size}
    return {k: v for k, v in given.items() if v is not None}


@app.command("run")
def run_cmd(
    teacher: str = typer.Option(..., "--teacher", help="Teacher BERT: a folder or a Hub id (klue/bert-base)."),
    student: str = typer.Option("kominilm-23m", "--student", help="Student preset (see `presets`) or CONFIG.json."),
    corpus: list[str] = _CORPUS,
    more_corpus: list[str] = _MORE,
    max_steps: int = typer.Option(..., "--max-steps", min=1, help="Optimizer steps."),
    output_dir: Path = typer.Option(..., "--output-dir", help="Output folder (model, logs, checkpoints)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --output-dir."),
    layer_map: str = typer.Option("uniform", "--layer-map",
                                  help="uniform | last (MiniLM v1) | 's:t,s:t,...' | 't,t,...' (0-based layers)."),
    relation_heads: int = typer.Option(0, "--relation-heads", min=0,
                                       help="MiniLM v2 Q-Q/K-K/V-V relations with R relation heads (0 = v1)."),
    init_from_teacher: bool = typer.Option(False, "--init-from-teacher",
                                           help="Copy mapped teacher layers/embeddings where shapes match."),
    hidden_size: int = typer.Option(None, "--hidden-size", help="Override the student's hidden size."),
    layers: int = typer.Option(None, "--layers", help="Override the student's number of layers."),
    heads: int = typer.Option(None, "--heads", help="Override the student's attention heads."),
    intermediate_size: int = typer.Option(None, "--intermediate-size", help="Override the student's FFN size."),
    attention_path: str = typer.Option("hooks", "--attention-path", help="hooks (default) | attentions (eager)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Segments per process per micro-batch."),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1, help="Micro-batches per optimizer step."),
    lr: float = typer.Option(5e-4, "--lr", help="Peak learning rate (AdamW)."),
    warmup_steps: int = typer.Option(-1, "--warmup-steps", help="Linear warmup steps (-1: 4%% of --max-steps)."),
    weight_decay: float = typer.Option(0.01, "--weight-decay"),
    max_length: int = typer.Option(128, "--max-length", help="Tokens per packed segment."),
    text_field: str = typer.Option("text", "--text-field", help="Text field of jsonl/tsv/csv/parquet/Hub rows."),
    shard: str = typer.Option("documents", "--shard", help=_SHARD_HELP),
    data_workers: int = typer.Option(0, "--data-workers", min=0, help=_WORKERS_HELP),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", help="Steps between checkpoints (0: none)."),
    log_every: int = typer.Option(10, "--log-every", min=1, help="Steps between log lines."),
    seed: int = typer.Option(42, "--seed"),
    mixed_precision: str = typer.Option("auto", "--mixed-precision", help="auto | no | bf16 | fp16."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Distil a teacher BERT into a student with MiniLM self-attention (and value-relation) transfer."""
    params = dict(locals())
    from distill.minilm import DistillConfig, distill

    sizes = _size_overrides(hidden_size, layers, heads, intermediate_size)
    cfg = _config(DistillConfig, params, student_overrides=sizes)
    typer.echo(str(distill(cfg)))


@app.command("mlm")
def mlm_cmd(
    corpus: list[str] = _CORPUS,
    more_corpus: list[str] = _MORE,
    config: str = typer.Option(..., "--config", help="Preset name or CONFIG.json of the BERT to pretrain."),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="Hugging Face tokenizer folder."),
    output_dir: Path = typer.Option(..., "--output-dir", help="Output folder (model, logs, checkpoints)."),
    max_steps: int = typer.Option(1000, "--max-steps", min=1),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --output-dir."),
    hidden_size: int = typer.Option(None, "--hidden-size"),
    layers: int = typer.Option(None, "--layers"),
    heads: int = typer.Option(None, "--heads"),
    intermediate_size: int = typer.Option(None, "--intermediate-size"),
    mlm_probability: float = typer.Option(0.15, "--mlm-probability"),
    word_vectors: bool = typer.Option(False, "--word-vectors", help="Start the word embeddings from PPMI-SVD "
                                      "co-occurrence vectors of the corpus (one extra pass, about a minute)."),
    word_vector_window: int = typer.Option(5, "--word-vector-window", min=1),
    pre_layernorm: bool = typer.Option(False, "--pre-layernorm", help="Pretrain a pre-LayerNorm transformer "
                                       "(RobertaPreLayerNorm) of the same shape: takes a higher --lr."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    warmup_steps: int = typer.Option(-1, "--warmup-steps", help="-1: 4%% of --max-steps."),
    weight_decay: float = typer.Option(0.01, "--weight-decay"),
    max_length: int = typer.Option(128, "--max-length"),
    text_field: str = typer.Option("text", "--text-field"),
    shard: str = typer.Option("documents", "--shard", help=_SHARD_HELP),
    data_workers: int = typer.Option(0, "--data-workers", min=0, help=_WORKERS_HELP),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every"),
    log_every: int = typer.Option(10, "--log-every", min=1),
    seed: int = typer.Option(42, "--seed"),
    mixed_precision: str = typer.Option("auto", "--mixed-precision"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Pretrain a BERT with masked LM on a corpus (to make a teacher where no pretrained one is available)."""
    params = dict(locals())
    from distill.mlm import MLMConfig, train_mlm

    cfg = _config(MLMConfig, params, config_overrides=_size_overrides(hidden_size, layers, heads, intermediate_size))
    typer.echo(str(train_mlm(cfg)))


@app.command("presets")
def presets_cmd(as_json: bool = typer.Option(False, "--json", help="Print the presets as JSON keyed by name.")) -> None:
    """The student presets (the seed's KoMiniLM configs)."""
    from distill.student import PRESETS, presets_json

    if as_json:
        typer.echo(presets_json())
        return
    for name, fields in PRESETS.items():
        typer.echo(f"{name}: " + ", ".join(f"{k}={fields[k]}" for k in ("num_hidden_layers", "hidden_size",
                                                                          "num_attention_heads", "intermediate_size")))
