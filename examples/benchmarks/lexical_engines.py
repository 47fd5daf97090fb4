"""Lexical engines and Korean analysers, measured side by side (issue 15): which engine, which tokens.

Two parts, both on real data from the shared data folder (``--data-dir`` or ``$KOEMBED_DATA_DIR``):

1. **Quality** on KorQuAD 1.0 dev (question -> its paragraph; 5,774 questions, 960 paragraphs):
   MRR@10, Recall@1/10/100 on the tuning and the report half (``koembed.search_eval.korquad_halves``)
   for each analyser with ``bm25s`` (its defaults: Lucene BM25, k1 1.5, b 0.75), koembed's BM25 (the
   same scores; k1 1.2 and 1.5) and SQLite FTS5 (``bm25()``: Robertson idf, k1 1.2, b 0.75), all over
   the same tokens.
2. **Speed and size** on the 200k NSMC reviews (ratings_train + ratings_test) as documents and 1,000
   other reviews (raw_neutral_reviews.tsv) as queries, in full and cut to their first three words:
   tokenising, building, on-disk size and per-query latency at k=10 for FTS5 (contentless table, tokens
   pre-tokenised, one query at a time, each ``detail`` level) and for bm25s on the same tokens
   (one thread, one batch). Build and query times are the best of ``--repeat`` runs; ratios come
   from the same run, so a loaded machine affects both sides.

    python examples/benchmarks/lexical_engines.py                       # everything (about 10 minutes)
    python examples/benchmarks/lexical_engines.py --part quality --analysers bigram,kiwi
    python examples/benchmarks/lexical_engines.py --part speed --docs 50000

Results and the engine choice: docs/search.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np

from koembed.evaluate import ranking_metrics
from koembed.index import lexical_tables as tables
from koembed.lexical.analysers import ANALYSERS, Analyser
from koembed.lexical.bm25 import K1, B, BM25Matrix
from koembed.paths import data_dir as default_data_dir
from koembed.search_eval import korquad_halves
from koembed.system import machine_summary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_queries import neutral_reviews  # noqa: E402
from timing import best_run, dir_bytes  # noqa: E402


def _bigram_words(text: str) -> list[str]:
    """The issue's first alternative: bigrams within each space-separated word, one-syllable words whole."""
    out: list[str] = []
    for word in unicodedata.normalize("NFC", text).lower().split():
        out += [word] if len(word) == 1 else [word[i : i + 2] for i in range(len(word) - 1)]
    return out


# Variants measured here only: the winner is registered as ``bigram`` in koembed.lexical.analysers.
VARIANTS = {
    "bigram-words": Analyser("bigram-words", "bigrams within words, one-syllable words whole", _bigram_words),
}


def analyser(name: str) -> Analyser:
    return VARIANTS[name] if name in VARIANTS else ANALYSERS.get(name)


# -- engines ---------------------------------------------------------------------------------------------
def bm25s_build(doc_tokens: list[list[str]], **params):
    import bm25s

    retriever = bm25s.BM25(**params)
    retriever.index(doc_tokens, show_progress=False)
    return retriever


def bm25s_search(retriever, query_tokens: list[list[str]], k: int) -> list[list[int]]:
    # bm25s drops query tokens it has never seen; a query left with none is answered with nothing.
    known = retriever.vocab_dict
    kept = [[t for t in q if t in known] for q in query_tokens]
    nonempty = [i for i, q in enumerate(kept) if q]
    out: list[list[int]] = [[] for _ in kept]
    if nonempty:
        docs, _ = retriever.retrieve([kept[i] for i in nonempty], k=min(k, retriever.scores["num_docs"]),
                                     show_progress=False, n_threads=1)
        for i, row in zip(nonempty, docs, strict=True):
            out[i] = [int(d) for d in row]
    return out


def fts5_build(path: str, doc_tokens: list[list[str]], detail: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"CREATE VIRTUAL TABLE lex USING fts5(tokens, content='', detail={detail}, "
                 "tokenize='unicode61 remove_diacritics 0')")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO lex (rowid, tokens) VALUES (?, ?)",
                     ((i, " ".join(t)) for i, t in enumerate(doc_tokens)))
    conn.execute("INSERT INTO lex (lex) VALUES ('optimize')")
    conn.execute("COMMIT")
    return conn


def fts5_query(tokens: list[str]) -> str:
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in dict.fromkeys(tokens))


def fts5_search(conn: sqlite3.Connection, query_tokens: list[list[str]], k: int) -> list[list[int]]:
    q = "SELECT rowid FROM lex WHERE lex MATCH ? ORDER BY rank LIMIT ?"
    return [[r[0] for r in conn.execute(q, (fts5_query(t), k))] if t else [] for t in query_tokens]


# -- part 1: quality -------------------------------------------------------------------------------------
def koembed_build(doc_tokens: list[list[str]], k1: float = K1) -> tuple[sqlite3.Connection, BM25Matrix]:
    """The index's path: tokens into SQLite tables (as ``koembed index`` stores them), then the BM25 matrix."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    tables.create_tables(conn)
    conn.execute("BEGIN")
    tables.insert(conn, enumerate(doc_tokens), tables.load_vocab(conn))
    conn.execute("COMMIT")
    row_ids, lengths, ids = tables.read_all(conn)
    return conn, BM25Matrix.build(row_ids, lengths, ids, tables.vocab_size(conn), k1=k1)


def koembed_search(built: tuple[sqlite3.Connection, BM25Matrix], query_tokens: list[list[str]],
                   k: int) -> list[list[int]]:
    conn, matrix = built
    rows, _, _ = matrix.search(tables.encode_queries(conn, query_tokens), k)
    return [[int(r) for r in row] for row in rows]


def quality(names: list[str], data_dir: Path, fts5: bool) -> list[dict]:
    halves = korquad_halves(data_dir)
    corpus = halves["tune"].corpus
    doc_ids = list(corpus)
    qids = [q for h in halves.values() for q in h.queries]
    queries = {q: t for h in halves.values() for q, t in h.queries.items()}
    k = min(100, len(doc_ids))
    print(f"# KorQuAD dev: {len(doc_ids)} paragraphs; questions: tune half {len(halves['tune'].queries)}, "
          f"report half {len(halves['report'].queries)}", flush=True)
    rows = []
    for name in names:
        an = analyser(name)
        t0 = time.perf_counter()
        docs = an.many(corpus[d] for d in doc_ids)
        q_tokens = an.many(queries[q] for q in qids)
        tok_s = time.perf_counter() - t0
        engines = ["bm25s", "koembed k1=1.2", "koembed k1=1.5"] + (["fts5"] if fts5 else [])
        for engine in engines:
            if engine == "bm25s":
                found = bm25s_search(bm25s_build(docs), q_tokens, k)
            elif engine == "fts5":
                found = fts5_search(fts5_build(":memory:", docs, "full"), q_tokens, k)
            else:
                found = koembed_search(koembed_build(docs, float(engine.split("=")[1])), q_tokens, k)
            ranked = dict(zip(qids, ([doc_ids[i] for i in r] for r in found), strict=True))
            row = {"part": "quality", "analyser": name, "engine": engine, "tokenise_s": tok_s}
            line = f"{name:>15} {engine:>15}"
            for half, data in halves.items():
                m = ranking_metrics(ranked, data.qrels)
                row[half] = {key: m[key] for key in ("mrr@10", "recall@1", "recall@10", "recall@100")}
                line += (f"  {half}: MRR@10 {m['mrr@10']:.3f} R@1 {m['recall@1']:.3f} R@10 {m['recall@10']:.3f} "
                         f"R@100 {m['recall@100']:.3f}")
            print(line, flush=True)
            rows.append(row)
    return rows


# -- part 2: speed and size ------------------------------------------------------------------------------
def nsmc_texts(data_dir: Path, limit: int | None) -> tuple[list[str], list[str]]:
    from koembed.korean_data import RowReport, read_nsmc

    report = RowReport()
    docs = [r["sentence1"] for f in ("ratings_train.txt", "ratings_test.txt")
            for r in read_nsmc(data_dir / "nsmc" / f, report)]
    queries = neutral_reviews(data_dir)
    print(f"# NSMC: {len(docs)} documents ({report.total_bad} empty or malformed rows skipped), "
          f"{len(queries)} queries", file=sys.stderr)
    return docs[:limit] if limit else docs, queries


def speed(name: str, data_dir: Path, limit: int | None, repeat: int, details: list[str], fts5_queries: int,
          work: Path) -> list[dict]:
    docs, queries = nsmc_texts(data_dir, limit)
    an = analyser(name)
    tok_s, doc_tokens = best_run(lambda: an.many(docs), 1)
    query_sets = {"review": an.many(queries), "3 words": an.many(" ".join(q.split()[:3]) for q in queries)}
    mean_tokens = {k: round(float(np.mean([len(set(t)) for t in v])), 1) for k, v in query_sets.items()}
    text_bytes = sum(len(d.encode()) for d in docs)
    print(f"# analyser {name}: tokenised {len(docs)} documents in {tok_s:.1f} s; {text_bytes / 1e6:.1f} MB of text; "
          f"distinct tokens per query: {mean_tokens}", flush=True)
    rows: list[dict] = []
    top10: dict[str, list] = {}

    def report(engine: str, build_s: float, size: int, results: dict[str, tuple[float, list]], n_queries: int,
               **extra: float) -> None:
        row = {"part": "speed", "analyser": name, "engine": engine, "docs": len(docs), "build_s": build_s,
               "bytes": size, "tokenise_s": tok_s, "queries_timed": n_queries, **extra}
        for qname, (secs, ranked) in results.items():
            row[f"ms_per_query[{qname}]"] = 1000 * secs / n_queries
            top10[f"{engine}/{qname}"] = ranked
        rows.append(row)
        lat = "  ".join(f"{q}: {row[f'ms_per_query[{q}]']:7.2f} ms/query" for q in results)
        more = "".join(f"  {k} {v:.1f} s" for k, v in extra.items())
        print(f"{engine:>20}  build {build_s:6.1f} s  size {size / 1e6:7.1f} MB  {lat}{more}", flush=True)

    # bm25s with koembed's BM25 (Lucene, k1 1.2, b 0.75), and with FTS5's (Robertson idf) for the overlap check.
    for label, params in (("bm25s", {"k1": K1, "b": B}), ("bm25s robertson", {"method": "robertson", "k1": 1.2})):
        def build_save(params: dict = params, out: Path = work / label.replace(" ", "-")):
            r = bm25s_build(doc_tokens, **params)
            r.save(str(out), show_progress=False)
            return r, out

        build_s, (retriever, out) = best_run(build_save, repeat)
        results = {q: best_run(lambda t=t, r=retriever: bm25s_search(r, t, 10), repeat) for q, t in query_sets.items()}
        report(label, build_s, dir_bytes(out), results, len(queries))

    # koembed: the tokens into SQLite tables as an index stores them, then the BM25 matrix file.
    def koembed_build_file() -> tuple[sqlite3.Connection, BM25Matrix, float, float]:
        db, mat = work / "koembed.sqlite", work / "koembed.bm25.safetensors"
        db.unlink(missing_ok=True)
        conn = sqlite3.connect(str(db), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        tables.create_tables(conn)
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        tables.insert(conn, enumerate(doc_tokens), tables.load_vocab(conn))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        t1 = time.perf_counter()
        row_ids, lengths, ids = tables.read_all(conn)
        BM25Matrix.build(row_ids, lengths, ids, tables.vocab_size(conn)).save(mat)
        return conn, BM25Matrix.load(mat), t1 - t0, time.perf_counter() - t1

    build_s, (conn, matrix, insert_s, matrix_s) = best_run(koembed_build_file, repeat)

    def koembed_query(t: list[list[str]]) -> list[list[int]]:
        return [list(r) for r in matrix.search(tables.encode_queries(conn, t), 10)[0]]

    results = {q: best_run(lambda t=t: koembed_query(t), repeat) for q, t in query_sets.items()}
    size = (work / "koembed.sqlite").stat().st_size + (work / "koembed.bm25.safetensors").stat().st_size
    report("koembed", build_s, size, results, len(queries), tokens_into_sqlite_s=insert_s, matrix_s=matrix_s)
    conn.close()

    for detail in details:
        path = work / f"fts5-{detail}.sqlite"

        def build(path: Path = path, detail: str = detail) -> sqlite3.Connection:
            path.unlink(missing_ok=True)
            return fts5_build(str(path), doc_tokens, detail)

        build_s, fts = best_run(build, repeat)
        results = {q: best_run(lambda t=t, c=fts: fts5_search(c, t[:fts5_queries], 10), 1)
                   for q, t in query_sets.items()}
        report(f"fts5 detail={detail}", build_s, path.stat().st_size, results, min(fts5_queries, len(queries)))
        fts.close()
    for engine in ("koembed", "fts5 detail=full"):
        if f"{engine}/review" in top10:  # agreement of the top 10 with bm25s on the same tokens
            same = [len(set(a) & set(b)) / max(len(b), 1) for a, b in
                    zip(top10[f"{engine}/review"], top10["bm25s/review" if engine == "koembed"
                                                          else "bm25s robertson/review"], strict=False)]
            print(f"# top-10 agreement of {engine} with bm25s on the same tokens and BM25 variant "
                  f"(ties aside): {np.mean(same):.3f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--part", choices=("quality", "speed", "all"), default="all")
    ap.add_argument("--analysers", default="bigram,bigram-runs,bigram-raw,bigram-words,kiwi",
                    help="comma-separated analysers for the quality part")
    ap.add_argument("--speed-analyser", default="bigram")
    ap.add_argument("--docs", type=int, default=None, help="use only the first N NSMC documents")
    ap.add_argument("--details", default="full,column", help="FTS5 detail levels to build")
    ap.add_argument("--fts5-queries", type=int, default=200, help="time FTS5 on the first N queries (it is slow)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-fts5-quality", action="store_true")
    ap.add_argument("--json", default=None, help="append result rows as JSON lines to this file")
    args = ap.parse_args(argv)
    import bm25s

    data_dir = default_data_dir(args.data_dir)
    if not (data_dir / "korquad").is_dir():
        print(f"error: no KorQuAD under {data_dir}; pass --data-dir or set KOEMBED_DATA_DIR", file=sys.stderr)
        return 2
    print(f"# {machine_summary()}; SQLite {sqlite3.sqlite_version}, bm25s {bm25s.__version__}", flush=True)
    rows: list[dict] = []
    if args.part in ("quality", "all"):
        rows += quality(args.analysers.split(","), data_dir, not args.no_fts5_quality)
    if args.part in ("speed", "all"):
        with tempfile.TemporaryDirectory(prefix="koembed-lexical-bench-") as tmp:
            details = [d for d in args.details.split(",") if d]
            rows += speed(args.speed_analyser, data_dir, args.docs, args.repeat, details, args.fts5_queries, Path(tmp))
    if args.json:
        with open(args.json, "a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row | {"machine": machine_summary(), "pid": os.getpid()}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
