"""The README.md written beside a trained model: base, data with licenses, hyperparameters, measured scores."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from koembed.atomic import atomic_write_text

# Path fragment -> (data set, license and attribution). Matched against the configured data files.
DATA_LICENSES: dict[str, tuple[str, str]] = {
    "korsts": ("KorSTS", "CC BY-SA 4.0; Ham et al. 2020, kakaobrain/KorNLUDatasets"),
    "kornli": ("KorNLI", "CC BY-SA 4.0; Ham et al. 2020, kakaobrain/KorNLUDatasets"),
    "klue": ("KLUE v1.1", "CC BY-SA 4.0; Park et al. 2021, KLUE-benchmark/KLUE"),
    "parakqc": ("ParaKQC", "CC BY-SA 4.0; Cho et al. 2020, warnikchow/paraKQC"),
    "question_pair": ("Korean Question Pair", "MIT; songys/Question_pair"),
    "kor_pair": ("Korean Question Pair", "MIT; songys/Question_pair"),
}


def data_licenses(files: list[str]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for f in files:
        low = f.lower()
        for frag, (name, lic) in DATA_LICENSES.items():
            if frag in low:
                seen.setdefault(name, lic)
    return sorted(seen.items())


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
        loss = ("CachedMultipleNegativesRankingLoss" if cfg["cached_mnrl"] else "MultipleNegativesRankingLoss") \
            if stage == "nli" else {"cosent": "CoSENTLoss", "cosine": "CosineSimilarityLoss"}[cfg["sts_loss"]]
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
    lines += [f"- {name}: {lic}" for name, lic in data_licenses(files)]
    lines += ["", "Models trained on CC BY-SA data should be shared under compatible terms; "
              "keep the attributions above.", ""]
    return "\n".join(lines)


def write_model_card(out: Path, config: Any, summary: dict[str, Any]) -> Path:
    path = Path(out) / "README.md"
    atomic_write_text(path, render_model_card(config, summary))
    return path
