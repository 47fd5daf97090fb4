"""Train the sentence models this machine can train (no pretrained Korean checkpoint offline) and score them.

Without Hub access there is no KoMiniLM checkpoint here, so each preset starts from a *randomly
initialised* BERT whose WordPiece tokenizer is trained on the training-side text only (KorSTS train
plus the local NLI-stage stand-ins), then runs ``koembed.training`` (NLI stand-in -> KorSTS) and
reports KorSTS test Spearman x100 with the TF-IDF baseline measured in the same run. These rows
show what the recipe does from scratch in CPU minutes; a pretrained base is what gets near the
anchors in docs/training.md.

    python examples/benchmarks/train_sts_models.py --preset tiny  OUT_DIR
    python examples/benchmarks/train_sts_models.py --preset small OUT_DIR --json docs/results/train_small.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

# Presets: base architecture and per-stage schedule. Steps are bounded so a run stays under ~15 CPU minutes.
PRESETS = {
    "tiny": {"arch": dict(vocab_size=2000, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128),
             "nli": dict(epochs=1, batch_size=32, lr=2e-3, max_steps=150),
             "sts": dict(epochs=1, batch_size=16, lr=2e-3)},
    "small": {"arch": dict(vocab_size=8000, hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
              "nli": dict(epochs=1, batch_size=64, lr=5e-4), "sts": dict(epochs=2, batch_size=16, lr=3e-4)},
    # "small" needs roughly 30x the compute of "tiny": an hour or more on 2 shared cores, minutes on a GPU.
}


def tokenizer_texts(data_dir: Path) -> list[str]:
    """Training-side sentences only: never a split that is reported (KorSTS dev/test, xnli test)."""
    from koembed.training.data import READERS, parse_spec
    from koembed.training.run import LOCAL_NLI_FILES

    texts: list[str] = []
    for spec in ["korsts/sts-train.tsv", *LOCAL_NLI_FILES]:
        fmt, path = parse_spec(spec, data_dir)
        for row in READERS[fmt][0](path, None):
            texts += [row["sentence1"], row["sentence2"]]
    return texts


def _capped(stage: dict, max_steps: int | None) -> dict:
    return stage | {"max_steps": max_steps} if max_steps is not None else stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=None, help="cap each stage (smoke runs)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    import torch

    from distill.tiny import build_tiny_bert
    from koembed.baselines import tfidf_sts
    from koembed.evaluate import load_sts_pairs, run_task, save_results
    from koembed.korean_data import read_korsts
    from koembed.paths import data_dir
    from koembed.training import StageConfig, TrainConfig, train


    torch.set_num_threads(args.threads)
    preset = PRESETS[args.preset]
    root = data_dir()
    start = time.perf_counter()
    base = build_tiny_bert(tokenizer_texts(root), args.out / "base", max_position_embeddings=128, **preset["arch"])
    untrained = run_task(str(base), "korsts-test")["spearman"]
    cfg = TrainConfig(base_model=str(base), output_dir=str(args.out / "model"), device="cpu",
                      nli=StageConfig(**_capped(preset["nli"], args.max_steps)),
                      sts=StageConfig(**_capped(preset["sts"], args.max_steps)),
                      eval_steps=0, save_steps=500, logging_steps=25, quiet=args.quiet)
    result = train(cfg)
    out, results = result.output_dir, result.as_dict()
    train_pairs = read_korsts(root / "korsts" / "sts-train.tsv")
    fit_texts = [s for p in train_pairs for s in (p["sentence1"], p["sentence2"])]
    tfidf = tfidf_sts(load_sts_pairs("korsts-test", root), fit_texts)["spearman"]
    report = {
        "preset": args.preset, "arch": preset["arch"], "max_steps": args.max_steps,
        "config": f"{out}/koembed_train_config.json",
        "korsts_test_spearman": results["scores"]["korsts-test"]["spearman"],
        "korsts_dev_spearman": results["scores"]["korsts-dev"]["spearman"],
        "untrained_korsts_test_spearman": round(untrained, 2), "tfidf_korsts_test_spearman": round(tfidf, 2),
        "stages": results["stages"], "wall_seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
                   f"{args.threads}, load avg {os.getloadavg()[0]:.1f}",
    }
    if args.json:
        save_results(report, args.json)
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
