"""The README.md written beside a trained model: base, data with licenses, hyperparameters, measured scores."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from koembed.atomic import atomic_write_text
from koembed.data.catalogue import licences_for
from koembed.training.losses import loss_class_name


def render_model_card(config: Any, summary: dict[str, Any]) -> str:
    cfg = asdict(config)
    files = [*(cfg["nli_files"] if "nli" in cfg["stages"] else []),
             *(cfg["sts_files"] if "sts" in cfg["stages"] else []), cfg["dev_file"]]
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: sentence-similarity",
        "language: ko",
        "tags: [sentence-transformers, sentence-similarity, korean, koembed]",
        "---",
        "",
        f"# {Path(cfg['output_dir']).name}",
        "",
        f"A Korean sentence-embedding model trained with koembed from `{cfg['base_model']}`: "
        f"stages {' -> '.join(cfg['stages'])}, mean pooling"
        + (", L2-normalised output" if cfg["normalize"] else "") + f", max sequence length {cfg['max_seq_length']}.",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "model = SentenceTransformer('PATH')  # or koembed.KoMiniLMEncoder('PATH')",
        "vectors = model.encode(['한국어 문장입니다.'])",
        "```",
        "",
        "## Scores (measured after training)",
        "",
        "| Task | Spearman x100 | Pearson x100 | Pairs |",
        "|---|---|---|---|",
    ]
    for task, s in summary.get("scores", {}).items():
        lines.append(f"| {task} | {s['spearman']:.2f} | {s['pearson']:.2f} | {s['n']} |")
    lines += ["", "## Training", "", "| Stage | Loss | Steps | Examples | Final train loss | KorSTS dev Spearman |",
              "|---|---|---|---|---|---|"]
    for stage, s in summary.get("stages", {}).items():
        loss = loss_class_name(stage, config)
        examples = ", ".join(f"{k} {v}" for k, v in s.get("examples", {}).items())
        lines.append(f"| {stage} | {loss} | {s['steps']} | {examples} | {s['train_loss']} | "
                     f"{s['korsts_dev_spearman']} |")
    lines += ["", "Data files (relative to the data folder):", ""]
    lines += [f"- nli: `{f}`" for f in (cfg["nli_files"] if "nli" in cfg["stages"] else [])]
    lines += [f"- sts: `{f}`" for f in (cfg["sts_files"] if "sts" in cfg["stages"] else [])]
    lines += [f"- dev (evaluation during training): `{cfg['dev_file']}`", ""]
    nli_train = any("nli" in f.lower() and "train" in Path(f).name for f in cfg["nli_files"])
    if "nli" in cfg["stages"] and not nli_train:
        lines += ["The NLI stage used no NLI *train* split (KorNLI's snli/multinli train files were not available): "
                  "dev splits and paraphrase pairs stood in, so expect less than the full recipe gives.", ""]
    lines += ["Hyperparameters (`koembed_train_config.json` holds all of them):", "", "```json",
              json.dumps({k: cfg[k] for k in ("stages", "nli", "sts", "max_seq_length", "seed", "cached_mnrl")},
                         indent=2), "```", "", "## Data licenses", ""]
    lines += [f"- {lic.name}: {lic.licence}; {lic.attribution}" for lic in licences_for(files)]
    lines += ["", "Models trained on CC BY-SA data should be shared under compatible terms; "
              "keep the attributions above.", ""]
    return "\n".join(lines)


def write_model_card(out: Path, config: Any, summary: dict[str, Any]) -> Path:
    path = Path(out) / "README.md"
    atomic_write_text(path, render_model_card(config, summary))
    return path
