"""Tune a sentence model's hybrid-search dense weight on KorQuAD dev, report it on the other half, record it.

The weight W of the default fusion (``coverage``: ``W * z(dense) + (1 - W) * c * z(lexical)``,
koembed.lexical.fusion) is chosen on the tuning half of KorQuAD dev (the first half of its articles;
``koembed.search_eval.korquad_halves``) by MRR@10, from a grid of 0.00-1.00 in steps of 0.05; ``convex`` (no
coverage scaling) is tuned the same way beside it, for comparison. The other half reports lexical, dense,
each fusion with its W, hybrid with the default weight for unknown models, and RRF. Everything runs
through koembed's own index and ``search()``: the paragraphs indexed with their vectors and bigram lexical
part, the questions searched in each mode.

    python examples/benchmarks/tune_dense_weight.py                       # the embedded model, print only
    python examples/benchmarks/tune_dense_weight.py --write               # also record W in the model folder

``--write`` sets ``search`` in the model folder's ``koembed_model.json`` (the tuned weight, how it was
measured, the report-half scores); ``koembed search`` reads the weight from there. That file is not part
of the model's fingerprint, so indexes built with the model stay valid.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from koembed.atomic import atomic_write_text
from koembed.index.modes import DEFAULT_DENSE_WEIGHT, DEFAULT_FUSION
from koembed.model_card import MODEL_CARD
from koembed.model_source import default_model
from koembed.search_eval import build_corpus_index, evaluate_search, korquad_halves
from koembed.system import machine_summary

GRID = [round(w, 2) for w in np.arange(0.0, 1.0001, 0.05)]
TUNED = (DEFAULT_FUSION, *(f for f in ("coverage", "convex") if f != DEFAULT_FUSION))
SHOWN = ("mrr@10", "recall@1", "recall@10", "recall@100", "ndcg@10")


class CachedEncoder:
    """The model's encoder with every text (paragraphs and questions) encoded once per prompt, for all the runs."""

    def __init__(self, encoder, texts: list[str], batch_size: int) -> None:
        self.encoder = encoder
        self.source, self.fingerprint, self.dim = encoder.source, encoder.fingerprint, encoder.dim
        self.model_name, self.dense_weight = encoder.model_name, encoder.dense_weight
        self.prompt_for, self.role_prompts = encoder.prompt_for, encoder.role_prompts
        self.batch_size = batch_size
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def encode(self, texts, batch_size: int = 64, prompt: str | None = None, **_):
        prompt = self.encoder.prompts.resolve(None, prompt)
        todo = list(dict.fromkeys(t for t in texts if (prompt, t) not in self._cache))
        if todo:
            for t, v in zip(todo, self.encoder.encode(todo, batch_size=self.batch_size, prompt=prompt), strict=True):
                self._cache[(prompt, t)] = v
        return np.stack([self._cache[(prompt, t)] for t in texts])

    def encode_with_stats(self, texts, batch_size: int = 64, show_progress=None, prompt: str | None = None, **_):
        from koembed.encoder import EncodeStats, Encoding

        return Encoding(self.encode(texts, batch_size, prompt=prompt), EncodeStats(texts=len(texts)),
                        np.zeros(len(texts), np.int64), prompt or "")


def _line(name: str, m: dict) -> str:
    return f"{name:>26}  " + "  ".join(f"{k} {m[k]:.4f}" for k in SHOWN)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="Model folder (default: the embedded model).")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--write", action="store_true", help="Record the tuned weight in the model folder.")
    args = ap.parse_args(argv)
    from koembed.encoder import KoMiniLMEncoder

    model = args.model or default_model()
    print(f"# {machine_summary()}", flush=True)
    start = time.perf_counter()
    halves = korquad_halves(args.data_dir)
    tune, report = halves["tune"], halves["report"]
    encoder = KoMiniLMEncoder(model)
    cached = CachedEncoder(encoder, [*tune.corpus.values(), *tune.queries.values(), *report.queries.values()],
                           args.batch_size)
    print(f"# {encoder.model_name}: {len(tune.corpus)} paragraphs; {len(tune.queries)} tuning and "
          f"{len(report.queries)} report questions", flush=True)
    with tempfile.TemporaryDirectory(prefix="koembed-tune-") as tmp:
        index = build_corpus_index(Path(tmp) / "ix", tune.corpus, cached, batch_size=args.batch_size)
        try:
            grids, bests = {}, {}
            for fusion in TUNED:
                grid = grids[fusion] = {}
                for w in GRID:
                    grid[w] = evaluate_search(tune, encoder=cached, index=index, mode="hybrid", dense_weight=w,
                                              fusion=fusion)["mrr@10"]
                    print(f"tune  {fusion:<8} W={w:.2f}  MRR@10 {grid[w]:.4f}", flush=True)
                bests[fusion] = max(GRID, key=lambda w: (grid[w], -w))  # ties: the smaller dense weight
                print(f"# {fusion}: best on the tuning half W={bests[fusion]:.2f} "
                      f"(MRR@10 {grid[bests[fusion]]:.4f})", flush=True)
            grid, best = grids[DEFAULT_FUSION], bests[DEFAULT_FUSION]
            runs = {"lexical": {"mode": "lexical"}, "dense": {"mode": "dense"}}
            for fusion in TUNED:
                runs[f"{fusion} W={bests[fusion]:.2f}"] = {"mode": "hybrid", "dense_weight": bests[fusion],
                                                           "fusion": fusion}
            runs |= {f"{DEFAULT_FUSION} W={DEFAULT_DENSE_WEIGHT} (default)": {"mode": "hybrid",
                                                                            "dense_weight": DEFAULT_DENSE_WEIGHT},
                     "hybrid rrf": {"mode": "hybrid", "fusion": "rrf"}}
            reported = {}
            for name, kw in runs.items():
                m = evaluate_search(report, encoder=cached, index=index, **kw)
                reported[name] = {k: round(m[k], 4) for k in SHOWN}
                print("report " + _line(name, m), flush=True)
        finally:
            index.close()
    record = {"dense_weight": best, "fusion": DEFAULT_FUSION, "analyser": "bigram",
              "tuned_on": f"KorQuAD 1.0 dev, tuning half (first half of its articles, {len(tune.queries)} questions), "
                          "MRR@10 over W = 0.00..1.00 step 0.05",
              "tune_mrr@10": {f"{w:.2f}": round(v, 4) for w, v in grid.items()},
              "other_fusions": {f: {"dense_weight": bests[f], "tune_mrr@10": round(grids[f][bests[f]], 4)}
                                for f in TUNED if f != DEFAULT_FUSION},
              "report_half": reported, "command": "python examples/benchmarks/tune_dense_weight.py --write",
              "seconds": round(time.perf_counter() - start, 1)}
    if args.write:
        card = Path(encoder.source.path) / MODEL_CARD
        data = json.loads(card.read_text(encoding="utf-8")) if card.is_file() else {}
        data["search"] = record
        atomic_write_text(card, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        print(f"# wrote search.dense_weight={best} to {card}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
