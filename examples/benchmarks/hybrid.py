"""Hybrid search cost (issue 15): what the lexical part adds to `koembed index` and to search, on NSMC.

The 200k NSMC reviews (ratings_train.txt + ratings_test.txt, one TSV each) are indexed with the
embedded model through ``build_index`` (what ``koembed index`` runs), once with the lexical part (the
default) and once with ``--no-lexical``; then 1,000 other reviews (raw_neutral_reviews.tsv) are
searched in one batch, k=10, in each mode. Reported, all from one run so that a loaded machine weighs
on both sides of each ratio:

- build wall time with and without the lexical part, and the lexical part's own share of the lexical
  build (time inside tokenising + token inserts and the BM25 file writes, measured in the same run);
- index size on disk with and without it;
- per-query search time: dense, lexical, hybrid (convex at W 0.5, so the fusion runs in full, and at the
  model's own weight) and RRF, through ``koembed.index.search`` with the model loaded once (so: query
  encoding or tokenising, FAISS / BM25, fusion, fetching texts and metadata from SQLite); and bm25s (its
  numpy backend, one thread) on the same analyser's tokens, tokenising included, as the anchor for
  lexical search (examples/benchmarks/lexical_engines.py compares the engines alone);
- memory of the BM25 build for ``--memory-docs`` documents (NSMC's tokens repeated; Python's tracemalloc
  peak, which numpy's arrays are counted in).

    python examples/benchmarks/hybrid.py                         # 200k documents: two builds, ~20 min on 2 cores
    python examples/benchmarks/hybrid.py --docs 20000 --memory-docs 200000

Targets: lexical adds <= 25% to build time and <= 50% to disk; lexical search at least as fast as bm25s;
hybrid <= 1.5x dense per query. Results: docs/search.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from koembed.korean_data import RowReport, read_nsmc
from koembed.paths import data_dir as default_data_dir
from koembed.system import machine_summary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_queries import neutral_reviews  # noqa: E402
from timing import best_run, dir_bytes  # noqa: E402


def write_documents(data_dir: Path, out: Path, limit: int | None) -> int:
    """NSMC reviews as JSONL (id, text, label), the input both builds read."""
    rows = [r | {"file": f} for f in ("ratings_train.txt", "ratings_test.txt")
            for r in read_nsmc(data_dir / "nsmc" / f, RowReport())]
    rows = rows[:limit] if limit else rows
    with out.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({"id": f"{r['file'][8:-4]}-{r['line']}", "text": r["sentence1"],
                                 "metadata": {"label": r["label"]}}, ensure_ascii=False) + "\n")
    return len(rows)


def build(inp: Path, out: Path, encoder, lexical: bool) -> tuple[float, float, float]:
    """Build the index; returns (wall seconds, seconds inside the lexical part, seconds encoding)."""
    from koembed.index import IndexConfig, build_index
    from koembed.index.lexical_part import LexicalPart

    spent = {"lexical": 0.0, "encode": 0.0}

    def timed(fn, key):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t0
        return wrapper

    real = (LexicalPart.add, LexicalPart.remove, LexicalPart.write, encoder.encode)
    LexicalPart.add, LexicalPart.remove, LexicalPart.write = (timed(f, "lexical") for f in real[:3])
    encoder.encode = timed(real[3], "encode")
    try:
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        build_index(IndexConfig(input=str(inp), output=str(out), lexical=lexical), encoder)
        wall = time.perf_counter() - t0
    finally:
        LexicalPart.add, LexicalPart.remove, LexicalPart.write = real[:3]
        encoder.encode = real[3]
    return wall, spent["lexical"], spent["encode"]


def search_times(index_dir: Path, queries: list[str], encoder, repeat: int) -> dict[str, float]:
    from koembed.index import Index, search
    from koembed.index.modes import dense_weight_for

    runs = {"dense": {"mode": "dense"}, "lexical": {"mode": "lexical"},
            "hybrid W=0.5": {"mode": "hybrid", "dense_weight": 0.5},
            f"hybrid W={dense_weight_for(encoder)} (model's)": {"mode": "hybrid"},
            "hybrid rrf": {"mode": "hybrid", "fusion": "rrf"}}
    out = {}
    with Index.open(index_dir) as ix:
        search(ix, queries[:10], k=10, encoder=encoder, mode="hybrid")  # warm the caches and the BM25 file
        for name, kw in runs.items():
            secs, _ = best_run(lambda kw=kw: search(ix, queries, k=10, encoder=encoder, **kw), repeat)
            out[name] = 1000 * secs / len(queries)
    return out


def bm25s_time(index_dir: Path, queries: list[str], repeat: int) -> tuple[float, float]:
    """bm25s on the index's own tokens: (ms per query, seconds to build)."""
    import bm25s

    from koembed.index import Index
    from koembed.lexical.bm25 import K1, B

    with Index.open(index_dir) as ix:
        analyser = ix.lexical.analyser
        docs = analyser.many(t for _, _, t, _ in ix.store.iter_docs())
    t0 = time.perf_counter()
    retriever = bm25s.BM25(k1=K1, b=B)
    retriever.index(docs, show_progress=False)
    build_s = time.perf_counter() - t0

    def run():  # tokenising included, as it is in koembed's lexical search
        known = retriever.vocab_dict
        kept = [[t for t in q if t in known] for q in analyser.many(queries)]
        return retriever.retrieve([q for q in kept if q], k=10, show_progress=False, n_threads=1)

    secs, _ = best_run(run, repeat)
    return 1000 * secs / len(queries), build_s


def bm25_build_memory(index_dir: Path, n_docs: int) -> dict[str, float]:
    """Peak memory of building the BM25 matrix of ``n_docs`` documents (the index's token lists, repeated)."""
    from koembed.index import Index
    from koembed.index import lexical_tables as tables
    from koembed.lexical.bm25 import BM25Matrix

    with Index.open(index_dir) as ix:
        row_ids, lengths, ids = tables.read_all(ix.store.conn)
        vocab = tables.vocab_size(ix.store.conn)
    reps = -(-n_docs // len(row_ids))
    lengths = np.tile(lengths, reps)[:n_docs]
    ids = np.tile(ids, reps)[: int(lengths.sum())]
    tracemalloc.start()
    t0 = time.perf_counter()
    m = BM25Matrix.build(np.arange(n_docs), lengths, ids, vocab)
    secs = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    inputs = lengths.nbytes + ids.nbytes
    return {"docs": n_docs, "postings": m.nnz, "peak_mb": peak / 1e6, "inputs_mb": inputs / 1e6,
            "file_mb": (m.data.nbytes + m.indices.nbytes + m.indptr.nbytes + m.row_ids.nbytes) / 1e6,
            "seconds": secs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--docs", type=int, default=None, help="only the first N reviews (default: all 200k)")
    ap.add_argument("--repeat", type=int, default=3, help="searches: best of N")
    ap.add_argument("--memory-docs", type=int, default=1_000_000)
    ap.add_argument("--workdir", default=None, help="where to build (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="append the results as one JSON line to this file")
    ap.add_argument("--reuse", action="store_true", help="search the indexes already built in --workdir")
    ap.add_argument("--memory-from", default=None, help="only measure the BM25 build memory, from this index's tokens")
    args = ap.parse_args(argv)
    if args.memory_from:
        m = bm25_build_memory(Path(args.memory_from), args.memory_docs)
        print(f"# {machine_summary()}\nBM25 build of {m['docs']} documents ({m['postings']} postings): peak "
              f"{m['peak_mb']:.0f} MB traced (inputs {m['inputs_mb']:.0f} MB, file {m['file_mb']:.0f} MB), "
              f"{m['seconds']:.1f} s", flush=True)
        return 0
    from koembed.encoder import KoMiniLMEncoder

    data_dir = default_data_dir(args.data_dir)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="koembed-hybrid-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {machine_summary()}", flush=True)
    n = write_documents(data_dir, work / "nsmc.jsonl", args.docs)
    queries = neutral_reviews(data_dir)
    encoder = KoMiniLMEncoder()
    print(f"# {n} documents, {len(queries)} queries, model {encoder.model_name} ({encoder.backend_name})",
          flush=True)
    res: dict = {"machine": machine_summary(), "docs": n, "queries": len(queries)}
    # The dense-only build runs first: if the machine gets busier during the run, that counts against the
    # lexical build, never for it.
    if not args.reuse:
        res["build_dense_s"], _, enc_dense = build(work / "nsmc.jsonl", work / "dense-ix", encoder, lexical=False)
        res["build_hybrid_s"], res["lexical_part_s"], enc_hybrid = build(work / "nsmc.jsonl", work / "hybrid-ix",
                                                                         encoder, lexical=True)
        res["encode_s"] = {"dense build": enc_dense, "hybrid build": enc_hybrid}
        print(f"build: dense-only {res['build_dense_s']:.1f} s, with lexical {res['build_hybrid_s']:.1f} s "
              f"({100 * (res['build_hybrid_s'] / res['build_dense_s'] - 1):+.1f}%); inside the lexical part "
              f"{res['lexical_part_s']:.1f} s = {100 * res['lexical_part_s'] / res['build_hybrid_s']:.1f}% of its "
              f"build; encoding {enc_dense:.1f} / {enc_hybrid:.1f} s", flush=True)
    res["bytes_dense"], res["bytes_hybrid"] = dir_bytes(work / "dense-ix"), dir_bytes(work / "hybrid-ix")
    print(f"size: dense-only {res['bytes_dense'] / 1e6:.1f} MB, with lexical {res['bytes_hybrid'] / 1e6:.1f} MB "
          f"(+{100 * (res['bytes_hybrid'] / res['bytes_dense'] - 1):.1f}%)", flush=True)
    res["ms_per_query"] = search_times(work / "hybrid-ix", queries, encoder, args.repeat)
    res["ms_per_query"]["bm25s (same tokens)"], res["bm25s_build_s"] = bm25s_time(work / "hybrid-ix", queries,
                                                                                  args.repeat)
    dense = res["ms_per_query"]["dense"]
    for name, ms in res["ms_per_query"].items():
        print(f"search {name:>28}: {ms:7.2f} ms/query  ({ms / dense:.2f}x dense)", flush=True)
    if args.memory_docs:
        res["bm25_build_memory"] = bm25_build_memory(work / "hybrid-ix", args.memory_docs)
        m = res["bm25_build_memory"]
        print(f"BM25 build of {m['docs']} documents ({m['postings']} postings): peak {m['peak_mb']:.0f} MB traced "
              f"(inputs {m['inputs_mb']:.0f} MB, file {m['file_mb']:.0f} MB), {m['seconds']:.1f} s", flush=True)
    if args.json:
        with open(args.json, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(res) + "\n")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
