"""``auto`` decided on the vectors (issue 16): IVF only where it beats exact search at the recall target."""

from __future__ import annotations

import numpy as np
import pytest
from index_fixtures import build, exact_top, queries, recall_at, vectors

import koembed.index.spec as spec_module
from koembed.index import Index, search
from koembed.index.autotune import MIN_SPEEDUP, TARGET_RECALL

CROWDED_DIM = 256  # in few dimensions even noise has local structure that IVF can use


@pytest.fixture(autouse=True)
def _small_exact_threshold(monkeypatch):
    import faiss

    faiss.omp_set_num_threads(1)  # timings of a shared machine's oversubscribed OpenMP threads mean nothing
    # The same rule with a smaller exact threshold, so that auto proposes IVF for a test-sized corpus.
    monkeypatch.setattr(spec_module, "EXACT_MAX", 2_000)


def crowded(n: int, dim: int = CROWDED_DIM, seed: int = 0) -> np.ndarray:
    """Vectors all near one direction with isotropic noise: no cluster structure for IVF's lists to follow."""
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal(dim).astype(np.float32)
    x = mean / np.linalg.norm(mean) + rng.standard_normal((n, dim), dtype=np.float32) * np.float32(0.5 / np.sqrt(dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_clustered_vectors_get_ivf_at_the_recall_target(tmp_path):
    n = 20_000
    x, q = vectors(n), queries(200, n)
    with build(tmp_path / "ix", x, "auto") as index:
        cal = index.manifest.calibration
        ivf = cal["candidates"][1]
        assert index.manifest.spec.startswith("IVF") and cal["chosen"] == index.manifest.spec
        assert ivf["recall_at_10"] >= TARGET_RECALL and ivf["speedup_vs_flat"] >= MIN_SPEEDUP
        assert index.manifest.search_defaults["nprobe"] == ivf["nprobe"] < index.spec.nlist
        assert "recall@10" in index.info()["spec_reason"]
        found = [[h.id for h in hits] for hits in search(index, q, k=10, mode="dense")]
    assert recall_at(found, exact_top(x, q, 10)) >= TARGET_RECALL


def test_crowded_vectors_get_flat_and_the_reason(tmp_path):
    x = crowded(8_000)
    with build(tmp_path / "ix", x, "auto") as index:
        cal = index.manifest.calibration
        assert index.manifest.spec == "Flat" and cal["chosen"] == "Flat"
        ivf = cal["candidates"][1]
        assert ivf["spec"].startswith("IVF") and ivf["speedup_vs_flat"] < MIN_SPEEDUP
        assert index.info()["spec_reason"].startswith("auto: Flat;")
        q = crowded(50, seed=1)
        found = [[h.id for h in hits] for hits in search(index, q, k=10, mode="dense")]
    assert recall_at(found, exact_top(x, q, 10)) == 1.0
    # Reopened, the choice stands and later upserts keep it.
    with Index.open(tmp_path / "ix", writable=True) as index:
        index.add_vectors(["new"], crowded(1, seed=2), ["새 문서"])
        assert index.manifest.spec == "Flat" and index.count == 8_001


def test_without_room_for_float_vectors_sq8_stays(tmp_path):
    n = 8_000
    x = crowded(n)
    with build(tmp_path / "ix", x, "auto", memory_budget=4 * n * CROWDED_DIM - 1) as index:
        assert index.manifest.spec.endswith("SQ8")  # Flat is not affordable, however slow IVF is here
        assert index.manifest.calibration["chosen"] == index.manifest.spec
