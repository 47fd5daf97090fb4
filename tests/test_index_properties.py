"""Property: after any interleaving of add / upsert / remove / compact / reopen and writers killed with SIGKILL
at any commit step, the index holds exactly what a plain dict of the operations that committed holds."""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from koembed.index import Index  # noqa: E402

DIM = 8
IDS = [f"doc{i}" for i in range(12)]
# Where a killed writer dies: before its FAISS file is written, before the SQLite commit (the commit point),
# after it (before manifest.json is rewritten).
KILL_STEPS = {"_write_faiss": False, "_store_commit": False, "_write_manifest": True}


def _vector(doc: str, version: int) -> np.ndarray:
    seed = int(doc[3:]) * 1000 + version
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def _apply(index: Index, op: tuple) -> None:
    kind = op[0]
    if kind == "upsert":
        _, docs, version = op
        index.add_vectors(docs, np.stack([_vector(d, version) for d in docs]), [f"{d} v{version}" for d in docs],
                          [{"v": version} for _ in docs])
    elif kind == "remove":
        index.remove(op[1])
    elif kind == "compact":
        index.compact()


def _expect(reference: dict[str, int], op: tuple) -> None:
    if op[0] == "upsert":
        for d in op[1]:
            reference[d] = op[2]
    elif op[0] == "remove":
        for d in op[1]:
            reference.pop(d, None)


def _killed_writer(directory: str, op: tuple, step: str) -> None:
    """Run ``op`` in a fresh writer that SIGKILLs itself at ``step`` of its commit (never returns normally)."""
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(Index, step, die)
    with Index.open(directory, writable=True) as index:
        _apply(index, op)
    os._exit(3)  # the op made no commit (e.g. nothing to remove): report it apart from a kill


def _run_killed(directory: Path, op: tuple, step: str) -> bool:
    """Whether the writer was killed (True) or finished without committing anything (False)."""
    proc = multiprocessing.get_context("fork").Process(target=_killed_writer, args=(str(directory), op, step))
    proc.start()
    proc.join(60)
    assert proc.exitcode in (-signal.SIGKILL, 3), proc.exitcode
    return proc.exitcode == -signal.SIGKILL


docs_st = st.lists(st.sampled_from(IDS), min_size=1, max_size=5, unique=True)
ops_st = st.lists(st.one_of(
    st.tuples(st.just("upsert"), docs_st, st.integers(0, 3)),
    st.tuples(st.just("remove"), docs_st),
    st.tuples(st.just("compact")),
    st.tuples(st.just("reopen")),
    st.tuples(st.just("kill"), st.one_of(st.tuples(st.just("upsert"), docs_st, st.integers(4, 6)),
                                         st.tuples(st.just("remove"), docs_st)),
              st.sampled_from(sorted(KILL_STEPS))),
), min_size=1, max_size=10)


def _check(directory: Path, reference: dict[str, int]) -> None:
    with Index.open(directory) as index:
        assert index.count == len(reference)
        assert int(index.faiss.ntotal) - len(index.tombstones()) == len(reference)
        docs = {ext_id: (row, text) for row, ext_id, text, _ in index.store.iter_docs()}
        assert {d: int(t.split(" v")[1]) for d, (_, t) in docs.items()} == reference
        for d, (row, _) in docs.items():  # each document's vector is the one its last committed upsert gave
            want = _vector(d, reference[d])
            np.testing.assert_allclose(index.faiss.reconstruct(int(row)), want / np.linalg.norm(want), atol=1e-6)


@pytest.mark.parametrize("index_type", ["Flat", "HNSW8"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops_st)
def test_index_equals_a_reference_dict_after_any_interleaving(index_type, ops):
    import faiss

    faiss.omp_set_num_threads(1)  # forked writers must not inherit a busy OpenMP pool
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "ix"
        Index.create(d, DIM, index_type=index_type, model_name="property-vectors").close()
        reference: dict[str, int] = {}
        index = Index.open(d, writable=True)
        try:
            for op in ops:
                if op[0] == "kill":
                    index.close()
                    _, inner, step = op
                    if _run_killed(d, inner, step) and KILL_STEPS[step]:
                        _expect(reference, inner)
                    index = Index.open(d, writable=True)  # recovers: rolls back, or rolls forward
                elif op[0] == "reopen":
                    index.close()
                    index = Index.open(d, writable=True)
                else:
                    _apply(index, op)
                    _expect(reference, op)
        finally:
            index.close()
        _check(d, reference)
