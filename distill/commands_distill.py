"""``python -m distill run | mlm | presets``: thin wrappers over :func:`distill.train.distill`,
:func:`distill.mlm.train_mlm` and :data:`distill.student.PRESETS`."""

from __future__ import annotations

from pathlib import Path

import typer

from distill.cli import app

_CORPUS = typer.Option(..., "--corpus", help="Corpus files (txt a line a document, jsonl/tsv/csv/parquet with a text "
                       "field) or Hub dataset names (owner/name, hf:name[:config][@split]); repeat or list several.")


def _loop_kwargs(corpus, output_dir, max_steps, batch_size, grad_accum, lr, warmup_steps, weight_decay, max_length,
                 text_field, checkpoint_every, log_every, seed, mixed_precision, resume, quiet) -> dict:
    return dict(corpus=[str(c) for c in corpus], output_dir=str(output_dir), max_steps=max_steps,
                batch_size=batch_size, grad_accum=grad_accum, lr=lr, warmup_steps=warmup_steps,
                weight_decay=weight_decay, max_length=max_length, text_field=text_field,
                checkpoint_every=checkpoint_every, log_every=log_every, seed=seed, mixed_precision=mixed_precision,
                resume=resume, quiet=quiet)


def _size_overrides(hidden_size, layers, heads, intermediate_size) -> dict:
    given = {"hidden_size": hidden_size, "num_hidden_layers": layers, "num_attention_heads": heads,
             "intermediate_size": intermediate_size}
    return {k: v for k, v in given.items() if v is not None}


@app.command("run")
def run_cmd(
    teacher: str = typer.Option(..., "--teacher", help="Teacher BERT: a folder or a Hub id (klue/bert-base)."),
    student: str = typer.Option("kominilm-23m", "--student", help="Student preset (see `presets`) or CONFIG.json."),
    corpus: list[str] = _CORPUS,
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
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", help="Steps between checkpoints (0: none)."),
    log_every: int = typer.Option(10, "--log-every", min=1, help="Steps between log lines."),
    seed: int = typer.Option(42, "--seed"),
    mixed_precision: str = typer.Option("auto", "--mixed-precision", help="auto | no | bf16 | fp16."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Distil a teacher BERT into a student with MiniLM self-attention (and value-relation) transfer."""
    from distill.train import DistillConfig, distill

    cfg = DistillConfig(
        teacher=teacher, student=student, layer_map=layer_map, relation_heads=relation_heads,
        init_from_teacher=init_from_teacher, attention_path=attention_path,
        student_overrides=_size_overrides(hidden_size, layers, heads, intermediate_size),
        **_loop_kwargs(corpus, output_dir, max_steps, batch_size, grad_accum, lr, warmup_steps, weight_decay,
                       max_length, text_field, checkpoint_every, log_every, seed, mixed_precision, resume, quiet),
    )
    out = distill(cfg)
    typer.echo(str(out))


@app.command("mlm")
def mlm_cmd(
    corpus: list[str] = _CORPUS,
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
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    warmup_steps: int = typer.Option(-1, "--warmup-steps", help="-1: 4%% of --max-steps."),
    weight_decay: float = typer.Option(0.01, "--weight-decay"),
    max_length: int = typer.Option(128, "--max-length"),
    text_field: str = typer.Option("text", "--text-field"),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every"),
    log_every: int = typer.Option(10, "--log-every", min=1),
    seed: int = typer.Option(42, "--seed"),
    mixed_precision: str = typer.Option("auto", "--mixed-precision"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Pretrain a BERT with masked LM on a corpus (to make a teacher where no pretrained one is available)."""
    from distill.mlm import MLMConfig, train_mlm

    cfg = MLMConfig(
        config=config, tokenizer=str(tokenizer), mlm_probability=mlm_probability,
        config_overrides=_size_overrides(hidden_size, layers, heads, intermediate_size),
        **_loop_kwargs(corpus, output_dir, max_steps, batch_size, grad_accum, lr, warmup_steps, weight_decay,
                       max_length, text_field, checkpoint_every, log_every, seed, mixed_precision, resume, quiet),
    )
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
