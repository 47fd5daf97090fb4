"""Readers against a committing writer: every search must see exactly one committed generation.

    python tests/index_stress.py --seconds 300 --readers 2 --docs 2000 [--index-type Flat|HNSW16]

One writer process upserts new documents, replaces existing ones (new row ids, new vectors) and removes
some, committing after every operation; reader processes search the same directory the whole time,
either opening the index per search (as ``koembed search`` does) or keeping one ``Index`` open and
calling ``refresh()`` before each search (as a server does). A document's vector is a function of its
id and version (both in its text), so a reader can recompute, from the snapshot it searched, exactly
which documents that generation held and what the top k must be. Every search is checked:

- it raised nothing (no false corruption verdict, no missing file);
- it returned ``min(k, documents)`` hits (no hit dropped because its row was replaced or removed);
- each hit's score is its query's cosine with the vector its text names (FAISS and SQLite agree);
- for exact types, the hits are that generation's exact top k.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

DIM = 32
VERSIONS = 97  # version -> offset row; any fixed table works, the text names the exact version
K = 10


def _tables(dim: int = DIM, max_docs: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    base = rng.standard_normal((max_docs, dim), dtype=np.float32) if max_docs <= 200_000 else None
    offsets = rng.standard_normal((VERSIONS, dim), dtype=np.float32) * np.float32(0.6)
    return base, offsets


_BASE, _OFFSETS = _tables(max_docs=100_000)


def doc_vectors(nums: np.ndarray, versions: np.ndarray) -> np.ndarray:
    x = _BASE[nums] + _OFFSETS[versions % VERSIONS]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def doc_text(num: int, version: int) -> str:
    return f"문서 {num} 판 {version}"


def parse_text(text: str) -> tuple[int, int]:
    parts = text.split()
    return int(parts[1]), int(parts[3])


def create(directory: Path, n_docs: int, index_type: str) -> None:
    from koembed.index import Index

    nums = np.arange(n_docs)
    vers = np.zeros(n_docs, dtype=np.int64)
    with Index.create(directory, DIM, index_type=index_type, expected_count=n_docs, model_name="stress-vectors",
                      model_fingerprint="5" * 32) as index:
        index.add_vectors([f"d{i}" for i in nums], doc_vectors(nums, vers), [doc_text(i, 0) for i in nums],
                          [{"v": 0} for _ in nums])


def writer(directory: str, seconds: float, n_docs: int, batch: int, seed: int, out: multiprocessing.Queue) -> None:
    """Upsert new ids, replace existing ones, remove some; one commit per operation; compact now and then."""
    from koembed.index import Index

    rng = np.random.default_rng(seed)
    live = {i: 0 for i in range(n_docs)}  # num -> version
    next_num = n_docs
    version = 0
    counts = {"commits": 0, "added": 0, "replaced": 0, "removed": 0, "compactions": 0, "errors": 0}
    deadline = time.monotonic() + seconds
    try:
        with Index.open(directory, writable=True) as index:
            while time.monotonic() < deadline:
                version += 1
                op = rng.choice(["add", "replace", "remove", "mixed"], p=[0.25, 0.35, 0.25, 0.15])
                if len(live) > 1.2 * n_docs:
                    op = "remove"
                elif len(live) < 0.8 * n_docs:
                    op = "add"
                keys = np.fromiter(live, dtype=np.int64)
                if op in ("replace", "mixed", "remove"):
                    chosen = rng.choice(keys, size=min(batch, len(keys) - 1), replace=False)
                if op == "remove":
                    index.remove([f"d{i}" for i in chosen])
                    for i in chosen:
                        del live[int(i)]
                    counts["removed"] += len(chosen)
                else:
                    nums = np.arange(next_num, next_num + batch) if op == "add" else chosen
                    if op == "mixed":
                        nums = np.concatenate([chosen[: batch // 2], np.arange(next_num, next_num + batch // 2)])
                    next_num = max(next_num, int(nums.max()) + 1)
                    vers = np.full(len(nums), version, dtype=np.int64)
                    r = index.add_vectors([f"d{i}" for i in nums], doc_vectors(nums, vers),
                                          [doc_text(int(i), version) for i in nums],
                                          [{"v": version} for _ in nums])
                    counts["added"] += r["added"]
                    counts["replaced"] += r["replaced"]
                    for i in nums:
                        live[int(i)] = version
                counts["commits"] += 1
                if version % 25 == 0 and len(index.tombstones()):
                    index.compact()
                    counts["compactions"] += 1
                    counts["commits"] += 1
    except Exception:  # reported to the parent, which fails the run
        counts["errors"] += 1
        counts["error"] = traceback.format_exc(limit=3)
    out.put(("writer", counts))


def _check(hits: list, query: np.ndarray, snapshot: tuple[np.ndarray, np.ndarray, list[str]], exact: bool,
           k: int) -> str | None:
    """None if ``hits`` are a correct answer from the generation whose documents are ``snapshot``."""
    vecs, _, ids = snapshot
    want = min(k, len(ids))
    if len(hits) != want:
        return f"short: {len(hits)} hits of {want}"
    for h in hits:
        num, ver = parse_text(h.text)
        if h.id != f"d{num}":
            return f"hit {h.id} has the text of d{num}"
        expected = float(doc_vectors(np.array([num]), np.array([ver]))[0] @ query)
        if abs(expected - h.score) > 1e-4:
            return f"hit {h.id}: score {h.score:.5f}, its text's vector gives {expected:.5f} (mixed generations)"
    if exact:
        sims = vecs @ query
        kth = np.sort(sims)[-want]
        if hits[-1].score < kth - 1e-4:
            return f"not the exact top {k}: last score {hits[-1].score:.5f} < {kth:.5f}"
    return None


def _snapshot_docs(index) -> tuple[np.ndarray, np.ndarray, list[str]]:
    nums, vers, ids = [], [], []
    for _row, ext_id, text, _meta in index.store.iter_docs():
        n, v = parse_text(text)
        nums.append(n)
        vers.append(v)
        ids.append(ext_id)
    nums_a, vers_a = np.array(nums, dtype=np.int64), np.array(vers, dtype=np.int64)
    vecs = doc_vectors(nums_a, vers_a) if len(nums) else np.zeros((0, DIM), np.float32)
    return vecs, nums_a, ids


def reader(directory: str, seconds: float, mode: str, exact: bool, seed: int, out: multiprocessing.Queue) -> None:
    """Search until the deadline; ``mode`` is "open" (an Index per search) or "refresh" (one, refreshed)."""
    import faiss

    from koembed.index import Index, search

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(seed)
    stats = {"mode": mode, "searches": 0, "failures": 0, "short": 0, "wrong": 0, "generations": set(),
             "examples": []}
    cache: dict[int, tuple] = {}
    deadline = time.monotonic() + seconds
    held = Index.open(directory) if mode == "refresh" else None
    try:
        while time.monotonic() < deadline:
            q = doc_vectors(rng.integers(0, 1000, 1), rng.integers(0, VERSIONS, 1))
            q = q + rng.standard_normal(q.shape, dtype=np.float32) * np.float32(0.3)
            q = (q / np.linalg.norm(q)).astype(np.float32)
            stats["searches"] += 1
            try:
                if held is not None:
                    held.refresh()
                    index = held
                else:
                    index = Index.open(directory)
                try:
                    hits = search(index, q, k=K)[0]
                    gen = index.generation
                    if gen not in cache:
                        cache.clear()
                        cache[gen] = _snapshot_docs(index)
                    problem = _check(hits, q[0], cache[gen], exact, K)
                finally:
                    if held is None:
                        index.close()
            except Exception as exc:  # every failure is counted and shown
                stats["failures"] += 1
                if len(stats["examples"]) < 5:
                    stats["examples"].append(f"{type(exc).__name__}: {str(exc)[:300]}")
                continue
            stats["generations"].add(gen)
            if problem is not None:
                stats["short" if problem.startswith("short") else "wrong"] += 1
                if len(stats["examples"]) < 5:
                    stats["examples"].append(f"generation {gen}: {problem}")
    finally:
        if held is not None:
            held.close()
    stats["generations"] = len(stats["generations"])
    out.put(("reader", stats))


def run(directory: Path, *, seconds: float = 20.0, readers: int = 2, docs: int = 2000, batch: int = 40,
        index_type: str = "Flat", modes: tuple[str, ...] = ("open", "refresh")) -> dict:
    """Build a fresh index in ``directory``, run the writer and readers for ``seconds``, return the totals."""
    create(directory, docs, index_type)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    exact = index_type.startswith("Flat")
    procs = [ctx.Process(target=writer, args=(str(directory), seconds, docs, batch, 7, out))]
    procs += [ctx.Process(target=reader, args=(str(directory), seconds, modes[i % len(modes)], exact, 100 + i, out))
              for i in range(readers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    total = {"index_type": index_type, "seconds": seconds, "readers": readers, "docs": docs, "searches": 0,
             "failures": 0, "short": 0, "wrong": 0, "generations_seen": 0, "examples": [], "searches_by_mode": {}}
    for role, r in results:
        if role == "writer":
            total["writer"] = r
            continue
        for key in ("searches", "failures", "short", "wrong"):
            total[key] += r[key]
        by_mode = total["searches_by_mode"]
        by_mode[r["mode"]] = by_mode.get(r["mode"], 0) + r["searches"]
        total["generations_seen"] += r["generations"]
        total["examples"] += r["examples"]
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=40)
    ap.add_argument("--index-type", default="Flat")
    ap.add_argument("--dir", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        total = run(Path(tmp) / "ix", seconds=args.seconds, readers=args.readers, docs=args.docs, batch=args.batch,
                    index_type=args.index_type)
    total["cpus"] = os.cpu_count()
    total["load_average_after"] = round(os.getloadavg()[0], 1)
    print(json.dumps(total, ensure_ascii=False, indent=2))
    sys.exit(1 if total["failures"] or total["short"] or total["wrong"] or total["writer"]["errors"] else 0)


if __name__ == "__main__":
    main()
