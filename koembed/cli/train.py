"""``koembed train`` (NLI then STS on SentenceTransformerTrainer) and ``koembed eval`` (STS / retrieval tasks)."""

from __future__ import annotations

import json
import sys

import typer

from koembed.cli.app import app
from koembed.data.tasks import EMBEDDING_KINDS, TASKS
from koembed.errors import InputError
from koembed.evaluate import BATCH_SIZE
from koembed.index.modes import DEFAULT_FUSION, FUSIONS, MODES
from koembed.training.run import STAGES, STS_LOSSES, TrainConfig

_D = TrainConfig()
_TASK_NAMES = ", ".join(n for n, t in TASKS.items() if t.kind in EMBEDDING_KINDS)
_DATA_DIR_HELP = ("Folder that relative data paths are taken from; it must exist (default: $KOEMBED_DATA_DIR, "
                  "else ../shared/data; data sets missing there come from the Hugging Face Hub).")
_HUB_HELP = "Load a catalogued data set from the Hugging Face Hub when its local files are missing."


@app.command("train")
def train_cmd(
    output: str = typer.Option(..., "-o", "--output", help="Output folder (a sentence-transformers model)."),
    base: str | None = typer.Option(None, "--base", help=f"Base model: Hub id or folder (default: {_D.base_model})."),
    stages: str | None = typer.Option(None, "--stages", help=f"Comma-separated, from {', '.join(STAGES)} "
                                      f"(default: {','.join(_D.stages)})."),
    epochs: float | None = typer.Option(None, "--epochs", help=f"Epochs per stage (default: nli {_D.nli.epochs:g}, "
                                        f"sts {_D.sts.epochs:g})."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Batch size for every stage "
                                          f"(default: nli {_D.nli.batch_size}, sts {_D.sts.batch_size})."),
    lr: float | None = typer.Option(None, "--lr",
                                    help=f"Learning rate (default: nli {_D.nli.lr:g}, sts {_D.sts.lr:g})."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop each stage after N steps (overrides epochs)."),
    max_train_samples: int | None = typer.Option(None, "--max-train-samples", min=1,
                                                 help="Use at most N examples per data source (seeded sample)."),
    eval_steps: int | None = typer.Option(None, "--eval-steps", min=0,
                                          help="KorSTS dev score every N steps; 0 = end only "
                                          f"(default: {_D.eval_steps})."),
    save_steps: int | None = typer.Option(None, "--save-steps", min=1,
                                          help=f"Checkpoint every N steps (default: {_D.save_steps})."),
    seed: int | None = typer.Option(None, "--seed", help=f"Random seed (default: {_D.seed})."),
    max_seq_length: int | None = typer.Option(None, "--max-seq-length", min=8,
                                              help=f"Truncate to N tokens (default: {_D.max_seq_length})."),
    data_dir: str | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    hub: bool | None = typer.Option(None, "--hub/--no-hub", help=_HUB_HELP + " (default: on)"),
    nli_files: list[str] | None = typer.Option(
        None, "--nli-files", help="NLI-stage data, repeatable: DATASET:SPLIT (kornli:dev, klue-nli:train, ...), "
        "FORMAT:PATH or PATH (kornli TSV, klue-nli JSON, parakqc, question-pair), or hub:NAME "
        f"(default: {' '.join(_D.nli_files)})."),
    sts_files: list[str] | None = typer.Option(None, "--sts-files", help="STS-stage data, repeatable, as "
                                               f"--nli-files (default: {' '.join(_D.sts_files)})."),
    dev_file: str | None = typer.Option(None, "--dev-file", help="STS data scored during training, as --sts-files "
                                        f"(default: {_D.dev_file})."),
    sts_loss: str | None = typer.Option(None, "--sts-loss", help=f"{' or '.join(STS_LOSSES)} "
                                        f"(default: {_D.sts_loss})."),
    cached_mnrl: bool = typer.Option(False, "--cached-mnrl", help="GradCache MNRL: large NLI batches, small memory."),
    mini_batch_size: int | None = typer.Option(None, "--mini-batch-size", min=1,
                                                 help=f"GradCache mini-batch (default {_D.mini_batch_size})."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (default: cuda if available)."),
    config: str | None = typer.Option(None, "--config", help="Start from a TrainConfig JSON; flags override it."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in the same -o folder."),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="Keep OUT/checkpoints when done."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or logs."),
) -> None:
    """Train a sentence-embedding model: NLI (MultipleNegativesRankingLoss) then KorSTS (CoSENT)."""
    from koembed.training import train

    cfg = (TrainConfig.load(config) if config else TrainConfig()).with_overrides(
        base_model=base, stages=stages, max_seq_length=max_seq_length, seed=seed, eval_steps=eval_steps,
        save_steps=save_steps, data_dir=data_dir, use_hub=hub, nli_files=nli_files or None,
        sts_files=sts_files or None, dev_file=dev_file,
        sts_loss=sts_loss, mini_batch_size=mini_batch_size, device=device, cached_mnrl=cached_mnrl or None,
        output_dir=output, resume=resume, quiet=quiet, keep_checkpoints=keep_checkpoints,
        epochs=epochs, batch_size=batch_size, lr=lr, max_steps=max_steps, max_train_samples=max_train_samples)
    result = train(cfg)
    if not quiet:
        for task, s in result.scores.items():
            print(f"{task}: Spearman {s['spearman']:.2f}  Pearson {s['pearson']:.2f}  (n={s['n']})", file=sys.stderr)
    print(result.output_dir)


@app.command("eval")
def eval_cmd(
    model: str = typer.Argument(..., help="Model folder or Hub id."),
    task: list[str] = typer.Option(["korsts"], "--task", "-t", help=f"{_TASK_NAMES} (korsts = korsts-test); "
                                   "repeatable; docs/data.md lists their data."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
    output: str | None = typer.Option(None, "-o", "--output", help="Also write the results to this JSON file."),
    max_samples: int | None = typer.Option(None, "--max-samples", min=1, help="First N pairs / queries only."),
    data_dir: str | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    hub: bool = typer.Option(True, "--hub/--no-hub", help=_HUB_HELP),
    batch_size: int = typer.Option(BATCH_SIZE, "--batch-size", min=1),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (default: cpu)."),
    mode: str | None = typer.Option(None, "--mode", help="Retrieval through a koembed index and search: "
                                    f"{'|'.join(MODES)} (default without --index: exact cosine ranking)."),
    index: str | None = typer.Option(None, "--index", help="Retrieval: search this existing index (its hits are "
                                     "matched to the task's documents by text) instead of indexing the corpus."),
    dense_weight: float | None = typer.Option(None, "--dense-weight", min=0.0, max=1.0,
                                              help="Hybrid: the dense weight (default: the model's, else 0.5)."),
    fusion: str = typer.Option(DEFAULT_FUSION, "--fusion", help=f"Hybrid: {' or '.join(FUSIONS)}."),
    half: str | None = typer.Option(None, "--half", help="korquad-retrieval: only the questions of the 'tune' "
                                    "(first) or 'report' (second) half of its articles."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars; only the results."),
) -> None:
    """Evaluate MODEL: Spearman/Pearson x100 on STS tasks, Recall@k / MRR@10 / nDCG@10 on retrieval."""
    if quiet:  # tqdm (every progress bar here, and the Hub's) reads this
        import os

        os.environ["TQDM_DISABLE"] = "1"
    from koembed.encoder import KoMiniLMEncoder
    from koembed.evaluate import embedding_task, run_task, save_results
    from koembed.paths import data_dir as resolve_data_dir

    specs = [embedding_task(t) for t in task]  # fail on a typo before loading the model
    resolve_data_dir(data_dir)  # and on a data folder that does not exist
    if not specs:
        raise InputError("give at least one --task")
    searched = mode is not None or index is not None or half is not None
    if searched and any(s.kind != "retrieval" for s in specs):
        raise InputError("--mode, --index and --half apply to retrieval tasks only")
    encoder = None if mode == "lexical" else KoMiniLMEncoder(model, device=device)
    results = {}
    for spec in specs:
        if searched:
            from koembed.search_eval import evaluate_search, task_data

            data = task_data(spec.name, data_dir, half=half, max_samples=max_samples)
            r = {"task": spec.name, **evaluate_search(data, encoder=encoder, index=index, mode=mode,
                                                     dense_weight=dense_weight, fusion=fusion,
                                                     batch_size=batch_size)}
        else:
            r = run_task(encoder, spec.name, data_dir=data_dir, max_samples=max_samples, batch_size=batch_size,
                         use_hub=hub)
        results[spec.name] = r | {"model": model}
    if output:
        save_results(results, output)
    if as_json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return
    for name, r in results.items():
        metrics = {k: v for k, v in r.items() if isinstance(v, float) and k != "seconds"}
        shown = "  ".join(f"{k} {v:.2f}" if k in ("spearman", "pearson") else f"{k} {v:.4f}"
                          for k, v in metrics.items())
        print(f"{name}" + (f" [{r['mode']}]" if "mode" in r else "") + f": {shown}")
