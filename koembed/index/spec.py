"""Index types: the ``auto`` rule, aliases, FAISS factory strings, training sizes and search parameters.

Every index measures cosine similarity as the inner product of L2-normalised vectors. The FAISS ids
of an index are koembed's row ids: IVF indexes take ids natively, every other type is wrapped in
``IndexIDMap2`` (which also gives ``reconstruct`` by id). Types whose FAISS class cannot delete
(HNSW) get tombstones instead; see :mod:`koembed.index.core`.

The ``auto`` rule (documented in docs/index.md), for ``n`` expected vectors of dimension ``d`` and a
memory budget ``B`` (half the machine's RAM unless given):

- ``n <= 100,000`` and ``4*n*d <= B``: ``Flat`` (exact; a batch of queries is one BLAS product).
- otherwise ``nlist`` = the power of two nearest ``4*sqrt(n)`` (at least 64, at most ``n/39``), and
  - ``IVF{nlist},Flat`` if the float vectors fit (``4*n*d <= B``),
  - ``IVF{nlist},SQ8`` otherwise (one byte a dimension, 4x smaller); if even that exceeds the budget,
    read-only opens memory-map the file and the OS pages in the probed lists.

``auto`` never picks product quantisation: at ``d/4`` bytes a vector its recall@10 against exact
search is far below 0.95 (0.69 on the clustered test vectors); ask for ``ivfpq`` when memory matters
more than recall. Nor HNSW: on CPU it builds an order of magnitude slower than IVF and cannot delete
(koembed keeps tombstones); ask for ``hnsw`` when query latency matters most.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from koembed.errors import IndexRefusedError, InputError

EXACT_MAX = 100_000
DEFAULT_HNSW_M = 32
DEFAULT_EF_SEARCH = 128
DEFAULT_EF_CONSTRUCTION = 80
# nprobe before training: a fraction of nlist. Training replaces it with a calibrated value.
NPROBE_FRACTION = 1 / 32
# Calibration aims above 0.95 to leave room for quantisation loss (SQ8) and sampling noise.
CALIBRATION_RECALL = 0.98
MIN_NPROBE = 8
# k-means on 100k points for at most 10 iterations: centroids good enough for routing (recall is
# checked by the tests and benchmark) at a fraction of FAISS's default cost (25 iterations, 256 points
# a list), which is minutes on 2 cores for 4096 lists.
TRAIN_PER_LIST = 40
TRAIN_MAX = 100_000
KMEANS_ITER = 10
PQ_TRAIN_MIN = 10_000  # 8-bit PQ codebooks want ~39 x 256 points

ALIASES = ("auto", "flat", "hnsw", "ivf", "ivfsq", "ivfpq")


@dataclass(frozen=True)
class IndexSpec:
    """A resolved index type: the FAISS factory string and the search parameters used by default."""

    factory: str
    search_defaults: dict[str, int] = field(default_factory=dict)
    reason: str = ""

    @property
    def nlist(self) -> int | None:
        m = re.search(r"IVF(\d+)", self.factory)
        return int(m.group(1)) if m else None

    @property
    def is_hnsw(self) -> bool:
        return self.factory.startswith("HNSW") or ",HNSW" in self.factory

    def train_size(self) -> int:
        """How many vectors training wants (0 = no training)."""
        need = 0
        if self.nlist:
            need = TRAIN_PER_LIST * self.nlist
        if re.search(r"PQ\d+", self.factory):
            need = max(need, PQ_TRAIN_MIN)
        if need == 0 and re.search(r"(SQ\d|OPQ|PCA|LSH)", self.factory):
            need = PQ_TRAIN_MIN
        return min(need, TRAIN_MAX)

    def min_train(self) -> int:
        """The fewest training vectors FAISS accepts for this type."""
        return max(self.nlist or 1, 256 if re.search(r"PQ\d+", self.factory) else 1)


def memory_budget() -> int:
    """Half the machine's physical memory, in bytes (the default budget of the ``auto`` rule)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def choose_nlist(n: int) -> int:
    target = 4 * math.sqrt(max(n, 1))
    nlist = 2 ** round(math.log2(target))
    return int(max(64, min(nlist, 65536, max(64, n // 39))))


def default_nprobe(nlist: int) -> int:
    return int(min(nlist, max(MIN_NPROBE, round(nlist * NPROBE_FRACTION))))


def pq_m(dim: int) -> int:
    """About ``dim/4`` sub-quantisers, a divisor of ``dim``."""
    target = max(1, dim // 4)
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return min(divisors, key=lambda m: (abs(m - target), -m))


def _ivf(factory_tail: str, n: int, dim: int, reason: str) -> IndexSpec:
    nlist = choose_nlist(n)
    tail = factory_tail.format(m=pq_m(dim))
    return IndexSpec(f"IVF{nlist},{tail}", {"nprobe": default_nprobe(nlist)}, reason)


def resolve_spec(index_type: str, n: int, dim: int, budget: int | None = None) -> IndexSpec:
    """Turn ``auto``, an alias or a FAISS factory string into an :class:`IndexSpec` for ``n`` vectors."""
    budget = memory_budget() if budget is None else budget
    kind = index_type.strip()
    low = kind.lower()
    if low == "auto":
        if n <= EXACT_MAX and 4 * n * dim <= budget:
            return IndexSpec("Flat", {}, f"auto: {n} vectors <= {EXACT_MAX}, exact search")
        if 4 * n * dim <= budget:
            return _ivf("Flat", n, dim, f"auto: {n} vectors > {EXACT_MAX}, float vectors fit in memory")
        fits = "fits" if n * dim <= budget else "exceeds it too: memory-mapped when searched"
        return _ivf("SQ8", n, dim, f"auto: float vectors exceed the memory budget, 8-bit scalar quantiser {fits}")
    if low == "flat":
        return IndexSpec("Flat", {}, "requested")
    if low == "hnsw":
        return IndexSpec(f"HNSW{DEFAULT_HNSW_M}", {"efSearch": DEFAULT_EF_SEARCH}, "requested")
    if low == "ivf":
        return _ivf("Flat", n, dim, "requested")
    if low == "ivfsq":
        return _ivf("SQ8", n, dim, "requested")
    if low == "ivfpq":
        return _ivf("PQ{m}", n, dim, "requested")
    return factory_spec(kind, dim)


def factory_spec(factory: str, dim: int) -> IndexSpec:
    """Validate a FAISS factory string (by building it) and attach default search parameters."""
    import faiss

    if "IDMap" in factory:
        raise InputError(f"index type {factory!r}: leave out IDMap, koembed manages ids itself")
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else "rejected"
        raise InputError(f"index type {factory!r} is not a valid FAISS factory string for dimension {dim} "
                         f"({first}); use {', '.join(ALIASES)} or e.g. 'IVF1024,Flat'") from None
    defaults: dict[str, int] = {}
    try:
        ivf = faiss.extract_index_ivf(index)
        defaults["nprobe"] = default_nprobe(ivf.nlist)
    except RuntimeError:
        pass
    if re.search(r"HNSW\d+", factory):
        defaults["efSearch"] = DEFAULT_EF_SEARCH
    return IndexSpec(factory, defaults, "requested")


def new_faiss_index(spec: IndexSpec, dim: int) -> Any:
    """An empty FAISS index for ``spec`` whose ids are koembed row ids."""
    import faiss

    index = faiss.index_factory(dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
    hnsw = _hnsw_of(index)
    if hnsw is not None:
        hnsw.efConstruction = max(hnsw.efConstruction, DEFAULT_EF_CONSTRUCTION)
    if _ivf_of(index) is None:
        return faiss.IndexIDMap2(index)
    tune_training(index)
    return index


def train_faiss(index: Any, spec: IndexSpec, x: np.ndarray, where: object) -> tuple[int | None, int]:
    """Train ``index`` on normalised vectors ``x`` (sampled down to ``spec.train_size()``).

    Returns the calibrated nprobe (None for non-IVF types) and the number of training vectors.
    """
    if len(x) < spec.min_train():
        raise IndexRefusedError(f"{where}: index type {spec.factory} needs at least {spec.min_train()} "
                                f"training vectors, got {len(x)}; use index type flat (--index-type "
                                f"flat) or a smaller IVF")
    if spec.train_size() and len(x) > spec.train_size():
        x = x[np.random.default_rng(0).choice(len(x), spec.train_size(), replace=False)]
    tune_training(index)
    try:
        index.train(x)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1][:160]
        raise IndexRefusedError(f"{where}: training {spec.factory} on {len(x)} vectors failed ({reason}); "
                                "use more documents or a simpler index type (--index-type)") from None
    return calibrate_nprobe(index, x), len(x)


def tune_training(index: Any) -> None:
    """IVF k-means settings (not saved in FAISS files, so set again before every training)."""
    ivf = _ivf_of(index)
    if ivf is not None:
        ivf.cp.niter = KMEANS_ITER
        ivf.cp.min_points_per_centroid = 1  # training sizes are chosen here; silence FAISS's advice


def _ivf_of(index: Any) -> Any:
    import faiss

    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _hnsw_of(index: Any) -> Any:
    import faiss

    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIDMap2 | faiss.IndexIDMap):
        index = faiss.downcast_index(index.index)
    return getattr(index, "hnsw", None)


def can_remove(index: Any) -> bool:
    """Whether the FAISS index deletes ids itself (else koembed keeps tombstones)."""
    try:
        index.remove_ids(np.zeros(0, dtype=np.int64))
        return True
    except RuntimeError:
        return False


def search_params(index: Any, *, nprobe: int | None = None, ef_search: int | None = None, sel: Any = None) -> Any:
    """FAISS search parameters (nprobe / efSearch / an id selector) for ``index``, or None if none apply."""
    import faiss

    inner = faiss.downcast_index(index)
    pre = None
    if isinstance(inner, faiss.IndexIDMap2 | faiss.IndexIDMap):
        inner = faiss.downcast_index(inner.index)
    if isinstance(inner, faiss.IndexPreTransform):
        pre = faiss.SearchParametersPreTransform()
        inner = faiss.downcast_index(inner.index)
    if _ivf_of(inner) is not None:
        params = faiss.SearchParametersIVF()
        if nprobe:
            params.nprobe = int(nprobe)
        else:
            params.nprobe = int(_ivf_of(inner).nprobe)
    elif getattr(inner, "hnsw", None) is not None:
        params = faiss.SearchParametersHNSW()
        params.efSearch = int(ef_search or inner.hnsw.efSearch)
    else:
        if sel is None:
            return None
        params = faiss.SearchParameters()
    if sel is not None:
        params.sel = sel
    if pre is not None:
        pre.index_params = params
        pre._keep = params  # the SWIG object does not own index_params
        return pre
    return params


def apply_search_defaults(index: Any, defaults: dict[str, int]) -> None:
    """Set the stored default nprobe / efSearch on a loaded index."""
    ivf = _ivf_of(index)
    if ivf is not None and "nprobe" in defaults:
        ivf.nprobe = int(defaults["nprobe"])
    hnsw = _hnsw_of(index)
    if hnsw is not None and "efSearch" in defaults:
        hnsw.efSearch = int(defaults["efSearch"])


def calibrate_nprobe(index: Any, sample: np.ndarray, *, target: float = CALIBRATION_RECALL, k: int = 10,
                     n_queries: int = 256) -> int | None:
    """The smallest nprobe at which an IVF index finds ``target`` of the exact top-``k`` within ``sample``.

    Sample points serve as queries against the rest of the sample: a true neighbour is found iff its
    list is among the query's ``nprobe`` nearest lists, so recall for every nprobe follows from list
    ranks alone, without building anything. The sample is sparser than the full corpus, so its
    neighbours lie farther away, in more lists: the estimate errs towards probing more.
    Returns None for indexes that are not a bare IVF (e.g. behind an OPQ transform).
    """
    import faiss

    ivf = faiss.downcast_index(index)
    if not isinstance(ivf, faiss.IndexIVF) or len(sample) < 4 * k:
        return None
    n = len(sample)
    nq = min(n_queries, n // 4)
    qi = np.random.default_rng(0).choice(n, nq, replace=False)
    q = np.ascontiguousarray(sample[qi])
    sims = q @ sample.T
    sims[np.arange(nq), qi] = -np.inf
    nn = np.argpartition(-sims, k, axis=1)[:, :k]
    del sims
    _, lists = ivf.quantizer.search(np.ascontiguousarray(sample[nn.ravel()]), 1)
    _, order = ivf.quantizer.search(q, ivf.nlist)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(ivf.nlist)[None, :].repeat(nq, axis=0), axis=1)
    needed = np.take_along_axis(rank, lists.reshape(nq, k), axis=1).ravel() + 1  # nprobe that finds each
    return int(min(ivf.nlist, max(1, np.quantile(needed, target, method="higher"))))
