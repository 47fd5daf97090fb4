"""``python -m distill run | mlm | presets``: thin wrappers over :func:`distill.minilm.distill`,
:func:`distill.mlm.train_mlm` and :data:`distill.student.PRESETS`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from distill.cli import app
from distill.minilm import DistillConfig
from distill.mlm import MLMConfig

_D, _M = DistillConfig(), MLMConfig()  # the defaults shown and used by the options below

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
    student: str = typer.Option(_D.student, "--student", help="Student preset (see `presets`) or CONFIG.json."),
    corpus: list[str] = _CORPUS,
    more_corpus: list[str] = _MORE,
    max_steps: int = typer.Option(..., "--max-steps", min=1, help="Optimizer steps."),
    output_dir: Path = typer.Option(..., "--output-dir", help="Output folder (model, logs, checkpoints)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --output-dir."),
    layer_map: str = typer.Option(_D.layer_map, "--layer-map",
                                  help="uniform | last (MiniLM v1) | 's:t,s:t,...' | 't,t,...' (0-based layers)."),
    relation_heads: int = typer.Option(_D.relation_heads, "--relation-heads", min=0,
                                       help="MiniLM v2 Q-Q/K-K/V-V relations with R relation heads (0 = v1)."),
    init_from_teacher: bool = typer.Option(False, "--init-from-teacher",
                                           help="Copy mapped teacher layers/embeddings where shapes match."),
    hidden_size: int = typer.Option(None, "--hidden-size", help="Override the student's hidden size."),
    layers: int = typer.Option(None, "--layers", help="Override the student's number of layers."),
    heads: int = typer.Option(None, "--heads", help="Override the student's attention heads."),
    intermediate_size: int = typer.Option(None, "--intermediate-size", help="Override the student's FFN size."),
    attention_path: str = typer.Option(_D.attention_path, "--attention-path", help="hooks | attentions (eager)."),
    batch_size: int = typer.Option(_D.batch_size, "--batch-size", min=1, help="Segments per process per micro-batch."),
    grad_accum: int = typer.Option(_D.grad_accum, "--grad-accum", min=1, help="Micro-batches per optimizer step."),
    lr: float = typer.Option(_D.lr, "--lr", help="Peak learning rate (AdamW)."),
    warmup_steps: int = typer.Option(_D.warmup_steps, "--warmup-steps",
                                     help="Linear warmup steps (-1: 4% of --max-steps)."),
    weight_decay: float = typer.Option(_D.weight_decay, "--weight-decay"),
    max_length: int = typer.Option(_D.max_length, "--max-length", help="Tokens per packed segment."),
    text_field: str = typer.Option(_D.text_field, "--text-field", help="Text field of jsonl/tsv/csv/parquet/Hub rows."),
    shard: str = typer.Option(_D.shard, "--shard", help=_SHARD_HELP),
    data_workers: int = typer.Option(_D.data_workers, "--data-workers", min=0, help=_WORKERS_HELP),
    checkpoint_every: int = typer.Option(_D.checkpoint_every, "--checkpoint-every",
                                         help="Steps between checkpoints (0: none)."),
    log_every: int = typer.Option(_D.log_every, "--log-every", min=1, help="Steps between log lines."),
    seed: int = typer.Option(_D.seed, "--seed"),
    mixed_precision: str = typer.Option(_D.mixed_precision, "--mixed-precision", help="auto | no | bf16 | fp16."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Distil a teacher BERT into a student with MiniLM self-attention (and value-relation) transfer."""
    params = dict(locals())
    from distill.minilm import distill

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
    max_steps: int = typer.Option(_M.max_steps, "--max-steps", min=1),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --output-dir."),
    hidden_size: int = typer.Option(None, "--hidden-size"),
    layers: int = typer.Option(None, "--layers"),
    heads: int = typer.Option(None, "--heads"),
    intermediate_size: int = typer.Option(None, "--intermediate-size"),
    mlm_probability: float = typer.Option(_M.mlm_probability, "--mlm-probability"),
    word_vectors: bool = typer.Option(False, "--word-vectors", help="Start the word embeddings from PPMI-SVD "
                                      "co-occurrence vectors of the corpus (one extra pass, about a minute)."),
    word_vector_window: int = typer.Option(_M.word_vector_window, "--word-vector-window", min=1),
    pre_layernorm: bool = typer.Option(False, "--pre-layernorm", help="Pretrain a pre-LayerNorm transformer "
                                       "(RobertaPreLayerNorm) of the same shape: takes a higher --lr."),
    batch_size: int = typer.Option(_M.batch_size, "--batch-size", min=1),
    grad_accum: int = typer.Option(_M.grad_accum, "--grad-accum", min=1),
    lr: float = typer.Option(_M.lr, "--lr"),
    warmup_steps: int = typer.Option(_M.warmup_steps, "--warmup-steps", help="-1: 4% of --max-steps."),
    weight_decay: float = typer.Option(_M.weight_decay, "--weight-decay"),
    max_length: int = typer.Option(_M.max_length, "--max-length"),
    text_field: str = typer.Option(_M.text_field, "--text-field"),
    shard: str = typer.Option(_M.shard, "--shard", help=_SHARD_HELP),
    data_workers: int = typer.Option(_M.data_workers, "--data-workers", min=0, help=_WORKERS_HELP),
    checkpoint_every: int = typer.Option(_M.checkpoint_every, "--checkpoint-every"),
    log_every: int = typer.Option(_M.log_every, "--log-every", min=1),
    seed: int = typer.Option(_M.seed, "--seed"),
    mixed_precision: str = typer.Option(_M.mixed_precision, "--mixed-precision"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Pretrain a BERT with masked LM on a corpus (to make a teacher where no pretrained one is available)."""
    params = dict(locals())
    from distill.mlm import train_mlm

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
