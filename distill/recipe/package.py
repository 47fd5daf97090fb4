"""Ship a trained sentence model inside the koembed package: fp16 weights, its ONNX graph, a model card, its scores.

The weights are stored in float16 (half the bytes) while ``config.json`` keeps ``float32`` as the
compute dtype, so every loader (transformers, sentence-transformers, koembed) upcasts them on load
and CPU inference stays in fp32, which is the fast path on CPUs without fp16/bf16 units.

The exported ONNX graph ships in ``onnx/`` (fp16-valued weights stored in fp16 there too), checked
against torch on real sentences, so koembed's default backend never exports (nor imports torch).
Re-ship the graph of a packaged model with ``python -m distill.recipe.package ship-onnx DIR``.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

from koembed.atomic import atomic_write_text
from koembed.model_card import MODEL_CARD

CARD_JSON = MODEL_CARD  # koembed.model_card names it and reads it


def _fp16_safetensors(path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(path))
    save_file({k: (v.astype("float16") if v.dtype.kind == "f" else v) for k, v in tensors.items()}, str(path),
              metadata={"format": "pt"})
    path.chmod(0o644)  # shipped inside the package: readable by every user


def store_weights_fp16(folder: Path) -> dict[str, Any]:
    """fp16 weights in every safetensors file, ``config.json`` kept at float32 compute; returns the config."""
    for weights in folder.rglob("*.safetensors"):
        _fp16_safetensors(weights)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["dtype"] = "float32"
    config.pop("torch_dtype", None)
    atomic_write_text(config_path, json.dumps(config, indent=2) + "\n")
    return config


def package_model(model_dir: Path, target: Path, run_dir: Path, data_dir: Path | None = None) -> dict[str, Any]:
    """Copy ``model_dir`` (a sentence-transformers folder) to ``target`` with fp16 weights and a model card."""
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_dir, staging, ignore=shutil.ignore_patterns("checkpoint-*", "runs", "*.tmp", "onnx"))
    from distill.tokenizer import make_tokenizer_folder_nfc_safe

    make_tokenizer_folder_nfc_safe(staging)
    store_weights_fp16(staging)
    from koembed.model_source import ModelSource, model_fingerprint

    card = _card_data(run_dir, model_dir)
    card["fingerprint"] = model_fingerprint(ModelSource(card["name"], staging, "sentence-transformers"))
    # Scored again as shipped (fp16 storage): this is the number the test suite guards.
    from koembed.evaluate import run_task

    card["korsts_test_as_shipped"] = run_task(str(staging), "korsts-test", data_dir)["spearman"]
    card["onnx"] = ship_onnx(staging, data_dir)
    size = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file())
    card["size_bytes_on_disk"] = size
    atomic_write_text(staging / CARD_JSON, json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(staging / "README.md", render_card(card))
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return {"path": str(target), "size_bytes": size}


def ship_onnx(model_dir: Path, data_dir: Path | None = None) -> dict[str, Any]:
    """Export ``model_dir``'s ONNX graph into ``model_dir/onnx`` and check it against torch on real sentences.

    Refuses (and removes the graph) when the mean cosine to torch is below ``SHIPPED_MIN_COSINE``.
    """
    import numpy as np

    from koembed import KoMiniLMEncoder
    from koembed.backends.onnx.cache import SHIPPED_DIR
    from koembed.backends.onnx.export import SHIPPED_MIN_COSINE, ship_graph

    manifest = ship_graph(model_dir)
    texts = agreement_texts(data_dir)
    onnx_enc = KoMiniLMEncoder(str(model_dir), backend="onnx")
    shipped = Path(model_dir).resolve() / SHIPPED_DIR
    if onnx_enc._backend.folder != shipped:
        raise RuntimeError(f"{shipped}: the onnx backend did not pick up the graph just shipped")
    got = onnx_enc.encode(texts, show_progress=False)
    ref = KoMiniLMEncoder(str(model_dir), backend="torch").encode(texts, show_progress=False)
    cos = (got * ref).sum(1) / np.maximum(np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1), 1e-12)
    if not cos.mean() >= SHIPPED_MIN_COSINE:
        shutil.rmtree(shipped)
        raise RuntimeError(f"{model_dir}: the ONNX graph agrees with torch at mean cosine {cos.mean():.6f} "
                           f"(< {SHIPPED_MIN_COSINE}) on {len(texts)} sentences; not shipped")
    return {"mean_cos_vs_torch": round(float(cos.mean()), 7), "min_cos_vs_torch": round(float(cos.min()), 7),
            "texts": len(texts), "fused": manifest["fused"], "max_abs_diff_at_export": manifest["max_abs_diff"],
            "bytes": sum(f.stat().st_size for f in shipped.iterdir())}


def agreement_texts(data_dir: Path | None = None, n: int = 1000) -> list[str]:
    """Real sentences for backend agreement checks: KorSTS test (both sides), else the repository's example texts."""
    from koembed.korean_data import read_korsts
    from koembed.paths import REPO_ROOT
    from koembed.paths import data_dir as default_data_dir

    korsts = Path(data_dir or default_data_dir()) / "korsts" / "sts-test.tsv"
    if korsts.is_file():
        return [s for row in read_korsts(korsts) for s in (row["sentence1"], row["sentence2"])][:n]
    lines = (REPO_ROOT / "examples" / "texts.txt").read_text(encoding="utf-8").splitlines()
    return [t for t in lines if t.strip()][:n]


def _card_data(run_dir: Path, model_dir: Path) -> dict[str, Any]:
    def stage(name: str) -> dict[str, Any]:
        p = run_dir / name / "stage.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}

    recipe = json.loads((run_dir / "recipe_config.json").read_text(encoding="utf-8"))
    from distill.recipe.corpus import RAW_TEXT_SOURCES

    return {
        "name": "kominilm-nano-sts",
        "recipe": recipe,
        "corpus_sources": [{"name": s.name, "path": s.path, "license": s.licence.licence} for s in RAW_TEXT_SOURCES],
        "sentence_sources": sentence_sources(model_dir),
        "corpus_lines": stage("corpus").get("result", {}).get("lines"),
        "teacher": stage("teacher").get("result"),
        "student": stage("student").get("result"),
        "scores": stage("evaluate").get("result"),
        "stage_seconds": {s.name: stage(s.name).get("seconds") for s in sorted(run_dir.iterdir()) if s.is_dir()},
    }


def sentence_sources(model_dir: Path) -> list[dict[str, str]]:
    """The data files the sentence model was trained on (its saved training config), with their licences."""
    from koembed.data import licence_for
    from koembed.training.run import CONFIG_NAME

    cfg = json.loads((Path(model_dir) / CONFIG_NAME).read_text(encoding="utf-8"))
    files = [f for stage in ("nli", "sts") if stage in cfg["stages"] for f in cfg[f"{stage}_files"]]
    out = []
    for path in files:
        lic = licence_for(path)
        if lic is None:
            raise ValueError(f"{path}: no data set of the catalogue (koembed.data) holds it")
        out.append({"path": path, "dataset": lic.name, "license": lic.licence, "attribution": lic.attribution})
    return out


def _limits(card: dict[str, Any]) -> str:
    """What the scores say, written from them (the card is regenerated with every run)."""
    scores = card.get("scores") or {}
    a, b, d = ((scores.get(key) or {}).get("korsts-test") for key in ("a_tfidf", "b_random", "d_distilled"))
    mlm, teacher = card["recipe"].get("mlm", {}), card.get("teacher") or {}
    tokens = mlm.get("max_steps", 0) * mlm.get("batch_size", 0) * card["recipe"].get("max_length", 0)
    lines = []
    if None not in (a, b, d):
        gap = d - b
        verdict = ("beats" if gap > 0 else "trails") + f" the same architecture from random init by {abs(gap):.2f}"
        floor = "above" if d > a else "below"
        lines.append(f"Read the table first. On KorSTS test the distilled student {verdict} points and sits "
                     f"{floor} the TF-IDF character n-gram baseline ({d:.2f} vs {a:.2f}); a gap of a point or "
                     "less does not show that distillation transferred knowledge.")
    gain = (teacher.get("context_gain") or {}).get("gain")
    uses = "" if gain is None else f"; seeing the context lowers its masked-token loss by {gain:.2f} nats"
    lines.append(f"The teacher saw {tokens / 1e6:.1f}M tokens of masked-LM training (final loss "
                 f"{teacher.get('final_loss', float('nan')):.2f}{uses}), far from a fully pretrained BERT; "
                 "see docs/recipe.md for the measurements and what a longer run needs.")
    return "\n".join(textwrap.fill(x, 105) for x in lines)


def render_card(card: dict[str, Any]) -> str:
    scores = card.get("scores") or {}
    d = scores.get("d_distilled", {})
    def fmt(x: Any, digits: int) -> str:
        return f"{x:.{digits}f}" if isinstance(x, int | float) else "-"

    rows = []
    for key, label in (("a_tfidf", "(a) TF-IDF char_wb 1-3"), ("b_random", "(b) student arch., random init"),
                       ("c_teacher", "(c) MLM teacher"), ("d_distilled", "(d) distilled student (this model)")):
        s = scores.get(key, {})
        r = s.get("korquad-retrieval", {})
        cells = [fmt(s.get("korsts-test"), 2), fmt(r.get("mrr@10"), 3), fmt(r.get("recall@10"), 3)]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    student = card["recipe"].get("student", {})
    kind = "pre-LayerNorm transformer" if card["recipe"].get("mlm", {}).get("pre_layernorm") else "BERT"
    paths = dict.fromkeys((s["path"], s["license"]) for s in card["corpus_sources"])
    sources = "\n".join(f"- `{path}` ({lic})" for path, lic in paths)
    sentence = "\n".join(f"- `{s['path']}` ({s['dataset']}: {s['license']}, {s['attribution']})"
                         for s in card.get("sentence_sources", []))
    share_alike = any("BY-SA" in s["license"] for s in [*card["corpus_sources"], *card.get("sentence_sources", [])])
    terms = ("Because CC BY-SA sources were used, this model is shared under CC BY-SA 4.0 with the attribution "
             "above." if share_alike else "")
    return f"""---
language: ko
library_name: sentence-transformers
pipeline_tag: sentence-similarity
license: cc-by-sa-4.0
---
# kominilm-nano-sts

koembed's embedded default model: a small Korean sentence encoder made end to end on two CPU cores by
`python -m distill recipe nano` (a scale model of KLUE-BERT-base -> KoMiniLM). Weights stored in fp16
({card['size_bytes_on_disk'] / 1e6:.1f} MB on disk), computed in fp32.

Architecture: BERT, {student.get('num_hidden_layers')} layers, hidden {student.get('hidden_size')},
{student.get('num_attention_heads')} heads, FFN {student.get('intermediate_size')}, vocabulary
{card['recipe'].get('vocab_size')} WordPiece (trained on the corpus below), mean pooling, L2-normalised.

## Recipe
1. WordPiece tokenizer on the raw text corpus below.
2. MLM teacher ({kind}, {card['recipe'].get('teacher')}) pretrained on the same corpus with `distill mlm`.
3. Student distilled from the teacher with MiniLM attention + value-relation KL (`distill run`).
4. Sentence training with `koembed.training`: an NLI/pair stage (KorNLI XNLI dev, KLUE-NLI dev, paraKQC,
   Question Pair train) then KorSTS train (CoSENT).

## Scores (measured by the recipe's evaluate stage)
| model | KorSTS test Spearman x100 | KorQuAD dev MRR@10 | Recall@10 |
|---|---|---|---|
{chr(10).join(rows)}

Retention (d)/(c) on KorSTS test: {fmt(scores.get('retention_d_over_c'), 3)}.
KorSTS dev Spearman of this model: {fmt(d.get('korsts-dev'), 2)}. KorSTS test Spearman as shipped
(fp16 weights): {fmt(card.get('korsts_test_as_shipped'), 2)}.

## Data and licences
Raw text for tokenizer, MLM and distillation:
{sources}

Sentence training:
{sentence}

{terms}

## Limits
{_limits(card)}

A scale model trained for a few CPU hours on a few tens of MB of mostly informal web text (reviews and comments):
it is far weaker than KoMiniLM trained on 20 GB, and its vocabulary is tuned to that text. Use it for
demos, tests and offline defaults; for production quality train from `BM-K/KoMiniLM` with `koembed train`.
No evaluation split (KorSTS dev/test, XNLI test, NSMC/QP test, PAWS-X, KLUE dev, KorQuAD dev) entered any
training stage.
"""


def main(argv: list[str]) -> None:
    """``ship-onnx DIR``: (re)ship the ONNX graph of an already packaged model and record the check in its card."""
    if len(argv) != 2 or argv[0] != "ship-onnx":
        raise SystemExit("usage: python -m distill.recipe.package ship-onnx MODEL_DIR")
    model_dir = Path(argv[1])
    result = ship_onnx(model_dir)
    card_path = model_dir / CARD_JSON
    if card_path.is_file():
        card = json.loads(card_path.read_text(encoding="utf-8"))
        card["onnx"] = result
        atomic_write_text(card_path, json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
