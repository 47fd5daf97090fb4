"""Sweep the sentence-training settings of a recipe over several base models, choosing on KorSTS dev.

Each point of the sweep is the recipe's ``sentence`` block with a few fields replaced
(``nli.lr=2e-4 sts.lr=1e-4``); every (base, point) pair is one ``koembed.training.train`` run, run
``--jobs`` at a time in separate processes. The table reports KorSTS dev (what a choice may use)
and KorSTS test (reported only, never used to choose).

    python examples/benchmarks/sentence_sweep.py --recipe nano \
        --base d=runs/recipe-nano/student --base b=runs/recipe-nano/random_student/model \
        --point "nli.lr=1e-4 sts.lr=5e-5" --point "nli.lr=2e-4 sts.lr=1e-4" -o runs/sweep
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def apply_point(sentence: dict[str, Any], point: str) -> dict[str, Any]:
    """``"nli.lr=2e-4 sts.epochs=2 nli.max_train_samples=none"`` applied to a copy of the sentence block."""
    out = copy.deepcopy(sentence)
    for item in point.split():
        key, _, raw = item.partition("=")
        value = None if raw.lower() == "none" else json.loads(raw)
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    from koembed.training import TrainConfig, train

    cfg = TrainConfig.from_dict({**job["sentence"], "base_model": job["base"], "data_dir": job["data_dir"],
                                 "output_dir": job["out"], "resume": True, "quiet": True})
    scores = train(cfg).scores
    return {"base": job["name"], "point": job["point"],
            "korsts_dev": scores["korsts-dev"]["spearman"],
            "korsts_test": scores.get("korsts-test", {}).get("spearman")}


def main(argv: list[str] | None = None) -> int:
    from distill.recipe.run import RecipeConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="nano", help="recipe name or JSON whose sentence block is the starting point")
    ap.add_argument("--base", action="append", required=True, help="NAME=PATH of a base model (repeatable)")
    ap.add_argument("--point", action="append", required=True, help="space-separated KEY=VALUE overrides")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("-o", "--output-dir", required=True)
    args = ap.parse_args(argv)

    sentence = RecipeConfig.load(args.recipe).sentence
    out = Path(args.output_dir)
    jobs = []
    for base in args.base:
        name, _, path = base.partition("=")
        for i, point in enumerate(args.point):
            jobs.append({"name": name, "base": path, "point": point, "sentence": apply_point(sentence, point),
                         "data_dir": args.data_dir, "out": str(out / f"{name}-p{i}")})
    # spawn, not fork: each worker initialises its own CUDA context.
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = list(pool.map(run_one, jobs))
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print("| base | point | KorSTS dev | KorSTS test |\n|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['base']} | `{r['point']}` | {r['korsts_dev']:.2f} | {r['korsts_test']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
