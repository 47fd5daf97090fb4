"""How hybrid fusion transfers from paragraphs to short texts: ``convex`` against ``coverage`` at powers 1 and 2.

For each fusion the dense weight W is tuned on KorQuAD dev's tuning half (as ``tune_dense_weight.py`` does) and
then, at that W, measured on three things it was not tuned on:

- KorQuAD dev's report half (question -> paragraph);
- paraphrase retrieval among short texts: KorSTS **train** pairs scored >= 4 (sentence1 -> its sentence2, among
  every distinct sentence2 of the file; a train split, so no reported STS number is touched);
- the three queries of ``make demo`` (``examples/demo.py``) over ``examples/texts.txt``: the first hit of each.

Everything runs through koembed's own index and ``search()``; every text is encoded once (``CachedEncoder``).

    python examples/benchmarks/fusion_sweep.py --model koembed/models/kominilm-e5-ko --out docs/results/fusion.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tune_dense_weight import GRID, CachedEncoder

from koembed.atomic import atomic_write_text
from koembed.evaluate import RetrievalData
from koembed.index import search
from koembed.korean_data import read_korsts
from koembed.lexical import fusion
from koembed.model_source import default_model
from koembed.paths import data_dir as default_data_dir
from koembed.search_eval import build_corpus_index, evaluate_search, korquad_halves
from koembed.system import machine_summary

EXAMPLES = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(EXAMPLES))
from demo import QUERIES as DEMO_QUERIES  # noqa: E402 (one source for the demo's queries)

VARIANTS = {"convex": ("convex", 1), "coverage p=1": ("coverage", 1), "coverage p=2": ("coverage", 2)}


def paraphrases(data_dir: Path) -> RetrievalData:
    rows = read_korsts(data_dir / "korsts" / "sts-train.tsv")
    docs = {f"s{i}": t for i, t in enumerate(dict.fromkeys(r["sentence2"] for r in rows))}
    doc_of = {t: d for d, t in docs.items()}
    keep = [r for r in rows if r["score"] >= 4.0 and r["sentence1"] != r["sentence2"]]
    return RetrievalData(docs, {f"q{i}": r["sentence1"] for i, r in enumerate(keep)},
                         {f"q{i}": {doc_of[r["sentence2"]]} for i, r in enumerate(keep)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="Model folder or name (default: the embedded model).")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=None, help="Write the results as JSON here.")
    args = ap.parse_args(argv)
    from koembed.encoder import KoMiniLMEncoder

    data_dir = default_data_dir(args.data_dir)
    print(f"# {machine_summary()}", flush=True)
    start = time.perf_counter()
    halves = korquad_halves(data_dir)
    para = paraphrases(data_dir)
    demo_texts = [t for t in (EXAMPLES / "texts.txt").read_text(encoding="utf-8").splitlines() if t.strip()]
    encoder = KoMiniLMEncoder(args.model or default_model())
    cached = CachedEncoder(encoder, [], args.batch_size)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="koembed-fusion-") as tmp:
        kq = build_corpus_index(Path(tmp) / "kq", halves["tune"].corpus, cached, batch_size=args.batch_size)
        st = build_corpus_index(Path(tmp) / "st", para.corpus, cached, batch_size=args.batch_size)
        dm = build_corpus_index(Path(tmp) / "dm", {f"t{i}": t for i, t in enumerate(demo_texts)}, cached)
        try:
            for name, (method, power) in VARIANTS.items():
                fusion.COVERAGE_POWER = power

                def mrr(data, index, w, method=method):
                    return evaluate_search(data, encoder=cached, index=index, mode="hybrid", dense_weight=w,
                                           fusion=method)["mrr@10"]

                tune = {w: mrr(halves["tune"], kq, w) for w in GRID}
                best = max(GRID, key=lambda w: (tune[w], -w))
                firsts = []
                for q in DEMO_QUERIES:
                    hit = search(dm, [q], k=1, mode="hybrid", encoder=cached, dense_weight=best, fusion=method)
                    firsts.append(hit[0][0].text)
                results[name] = {"dense_weight": best, "korquad_tune": round(tune[best], 4),
                                 "korquad_report": round(mrr(halves["report"], kq, best), 4),
                                 "paraphrase": round(mrr(para, st, best), 4),
                                 "paraphrase_by_w": {f"{w:.2f}": round(mrr(para, st, w), 4) for w in GRID[::2]},
                                 "demo_first_hits": dict(zip(DEMO_QUERIES, firsts, strict=True))}
                r = results[name]
                print(f"{name:<13} W={best:.2f}  KorQuAD tune {r['korquad_tune']:.4f} report {r['korquad_report']:.4f}"
                      f"  paraphrases {r['paraphrase']:.4f}  demo: {[f[:14] for f in firsts]}", flush=True)
        finally:
            for ix in (kq, st, dm):
                ix.close()
    out = {"model": encoder.model_name, "machine": machine_summary(), "variants": results,
           "paraphrase_set": f"KorSTS train pairs scored >= 4: {len(para.queries)} queries, {len(para.corpus)} texts",
           "seconds": round(time.perf_counter() - start, 1),
           "command": "python examples/benchmarks/fusion_sweep.py " + " ".join(argv or sys.argv[1:])}
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(out, ensure_ascii=False, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
