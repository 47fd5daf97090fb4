"""``auto`` decided on the user's own vectors: the fastest affordable index that meets the recall target, else Flat.

The count alone (:func:`koembed.index.spec.resolve_spec`) proposes an IVF index for a large corpus, but
whether IVF pays depends on the vectors: on well-separated clusters a few lists hold a query's
neighbours, while the embeddings of a weakly trained model are crowded (every vector close to their
mean), so the lists needed for the same recall approach all of them and IVF ends up slower than exact
search (docs/benchmarks.md, ## Index). So when the training sample arrives, :func:`choose`:

1. holds out ``HELD_OUT`` of the sample's vectors as queries; their exact top-10 among the rest is the truth;
2. trains the proposed IVF on the rest, adds it, and finds the smallest nprobe whose recall@10 on the
   held-out queries reaches ``CALIBRATION_RECALL`` (above the promised ``TARGET_RECALL``: room for
   sampling noise; a lossy code such as SQ8 that cannot get there aims just under its best);
3. times that search against exact search (Flat) over the same vectors, best of ``TIMING_REPEATS``;
4. keeps IVF only if it is at least ``MIN_SPEEDUP`` times faster than Flat at that recall; otherwise
   picks Flat, unless the float vectors do not fit the memory budget (the proposal was IVF-SQ8), in
   which case no affordable alternative exists and IVF-SQ8 stays with its calibrated nprobe.

Both costs grow in proportion to the corpus (list scans and the exact product alike), so the ratio
measured on the sample carries over; the sample is sparser than the corpus, so its neighbours spread
over more lists and the nprobe found errs towards probing more. HNSW is not a candidate: it builds an
order of magnitude slower than IVF on CPU, cannot delete, and on the crowded real vectors measured it
needed an efSearch at which it was no faster than Flat for recall@10 0.95.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from koembed.index.manifest import Calibration
from koembed.index.spec import CALIBRATION_RECALL, IndexSpec, new_faiss_index, tune_training

TARGET_RECALL = 0.95  # recall@10 against exact search that auto promises
K = 10
HELD_OUT = 1000
# Below this advantage timing noise and the recall given up are not worth it: exact search is kept.
MIN_SPEEDUP = 1.2
TIMING_REPEATS = 3
LOSSY_SLACK = 0.005


@dataclass
class Choice:
    spec: IndexSpec
    index: Any  # a trained, empty FAISS index for ``spec``, ids = row ids (see new_faiss_index)
    calibration: Calibration


def choose(proposed: IndexSpec, x: np.ndarray, dim: int) -> Choice:
    """Pick ``auto``'s index for the L2-normalised sample ``x``, given the count-based proposal (an IVF spec)."""
    import faiss

    n = len(x)
    n_queries = min(HELD_OUT, max(4 * K, n // 10))
    order = np.random.default_rng(0).permutation(n)
    queries = np.ascontiguousarray(x[order[:n_queries]])
    base = np.ascontiguousarray(x[order[n_queries:]])

    flat = faiss.IndexFlatIP(dim)
    flat.add(base)
    flat_s = _best_time(lambda: flat.search(queries, K))
    truth = flat.search(queries, K)[1]
    flat.reset()  # frees the sample copy; the truth is kept

    index = new_faiss_index(proposed, dim)
    train = base
    if proposed.train_size() and len(base) > proposed.train_size():
        train = base[np.random.default_rng(1).choice(len(base), proposed.train_size(), replace=False)]
    tune_training(index)
    index.train(train)
    index.add_with_ids(base, np.arange(len(base), dtype=np.int64))
    nlist = int(faiss.extract_index_ivf(index).nlist)
    nprobe, recall = _smallest_nprobe(index, nlist, queries, truth)
    ivf_s = _best_time(lambda: index.search(queries, K, params=_params(nprobe)))
    speedup = flat_s / ivf_s if ivf_s > 0 else float("inf")
    flat_affordable = ",Flat" in proposed.factory  # IVF-SQ8 was proposed because float vectors do not fit
    measured = {"target_recall_at_10": CALIBRATION_RECALL, "promised_recall_at_10": TARGET_RECALL,
                "sample": len(base), "queries": n_queries,
                "min_speedup": MIN_SPEEDUP,
                "candidates": [{"spec": "Flat", "recall_at_10": 1.0, "speedup_vs_flat": 1.0},
                               {"spec": proposed.factory, "nprobe": nprobe, "recall_at_10": round(recall, 4),
                                "speedup_vs_flat": round(speedup, 2)}]}
    on = f"{n_queries} held-out vectors of the {len(base)}-vector training sample"
    if flat_affordable and not (recall >= TARGET_RECALL and speedup >= MIN_SPEEDUP):
        reason = (f"auto: Flat; {proposed.factory} needed nprobe {nprobe} for recall@10 {recall:.3f} on {on}, "
                  f"{speedup:.2f}x Flat's speed (< {MIN_SPEEDUP}x): exact search is faster or as fast")
        spec = IndexSpec("Flat", {}, reason)
        return Choice(spec, new_faiss_index(spec, dim), measured | {"chosen": "Flat"})
    if recall >= TARGET_RECALL:
        reason = (f"auto: {proposed.factory} at nprobe {nprobe}: recall@10 {recall:.3f} at {speedup:.1f}x Flat's "
                  f"speed on {on}")
    else:
        reason = (f"auto: {proposed.factory} (float vectors exceed the memory budget); recall@10 {recall:.3f} at "
                  f"nprobe {nprobe} on {on}, below {TARGET_RECALL}")
    index.reset()  # keeps the trained quantiser, drops the sample's vectors
    spec = IndexSpec(proposed.factory, dict(proposed.search_defaults, nprobe=nprobe), reason)
    return Choice(spec, index, measured | {"chosen": proposed.factory, "nprobe": nprobe})


def _params(nprobe: int) -> Any:
    import faiss

    params = faiss.SearchParametersIVF()
    params.nprobe = int(nprobe)
    return params


def _recall(index: Any, nprobe: int, queries: np.ndarray, truth: np.ndarray) -> float:
    got = index.search(queries, K, params=_params(nprobe))[1]
    return float(np.mean([len(np.intersect1d(a, b)) / K for a, b in zip(got, truth, strict=True)]))


def _smallest_nprobe(index: Any, nlist: int, queries: np.ndarray, truth: np.ndarray) -> tuple[int, float]:
    """The smallest nprobe reaching CALIBRATION_RECALL, or within LOSSY_SLACK of the best recall the code gives
    when that is lower; recall only grows with nprobe, so a binary search. Returns it and its recall."""
    lo, hi = 1, nlist
    best = (nlist, _recall(index, nlist, queries, truth))
    goal = min(CALIBRATION_RECALL, best[1] - LOSSY_SLACK)
    while lo < hi:
        mid = (lo + hi) // 2
        r = _recall(index, mid, queries, truth)
        if r >= goal:
            hi, best = mid, (mid, r)
        else:
            lo = mid + 1
    return best


def _best_time(fn) -> float:
    fn()  # warm-up: first-touch page faults and thread start-up are not search cost
    times = []
    for _ in range(TIMING_REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
