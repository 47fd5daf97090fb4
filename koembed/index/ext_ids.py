"""Row id -> external id for search results, for one snapshot of an index.

A batch search's hits are spread over the whole document table, so fetching their ids from SQLite costs
one B-tree probe each (about 2 us on the benchmark machine): a sixth of a fast IVF search over 1M
documents. Reading the whole id column once (about 0.8 us a row) makes every later lookup a vectorised
gather. Which is cheaper depends on how many hits the process will ask for, which nobody knows
in advance, so the column is read once the probes already paid would have paid for it (the ski-rental
rule: never more than twice the cost of the better choice in hindsight). A one-shot CLI query never reads
it; a server or an evaluation loop does after a few batches. The table costs about 60 bytes a document.
"""

from __future__ import annotations

import numpy as np

from koembed.index.store import DocStore

# Measured on the benchmark machine (docs/benchmarks.md, "Search overhead"; quiet): one probe of the batched
# join costs 1.3-2.1 us, reading one row of the id column 0.76-0.85 us.
ROWS_PER_PROBE = 2


class ExtIds:
    """External ids of one snapshot's documents, looked up by row id (see the module docstring).

    ``count`` is the snapshot's number of documents (the break-even point); None (a writable index, whose
    documents change under it) never reads the column.
    """

    def __init__(self, store: DocStore, count: int | None) -> None:
        self.store = store
        self.count = count
        self.probed = 0
        self._rows: np.ndarray | None = None  # sorted row ids
        self._ext: np.ndarray | None = None  # their external ids (object array of str)
        self._dense: np.ndarray | None = None  # external id by row id, when row ids have few gaps

    @property
    def loaded(self) -> bool:
        return self._rows is not None

    def lookup(self, row_ids: np.ndarray) -> np.ndarray:
        """An object array shaped like ``row_ids`` holding each row's external id, None where there is none."""
        row_ids = np.asarray(row_ids, dtype=np.int64)
        flat = row_ids.ravel()
        if self._rows is None and self.count is not None:
            self.probed += int(np.count_nonzero(flat >= 0))
            if self.probed * ROWS_PER_PROBE >= self.count:
                self._load()
        if self._rows is None:
            docs = self.store.fetch(flat, ())
            out = np.array([d[0] if (d := docs.get(r)) is not None else None for r in flat.tolist()], dtype=object)
            return out.reshape(row_ids.shape)
        rows, ext = self._rows, self._ext
        if len(rows) == 0:
            return np.full(row_ids.shape, None, dtype=object)
        if self._dense is not None:  # row id -> slot, None for gaps; -1 (no hit) reads the None at the end
            return self._dense[np.where((flat >= 0) & (flat < len(self._dense) - 1), flat, -1)].reshape(row_ids.shape)
        pos = np.searchsorted(rows, flat).clip(max=len(rows) - 1)
        return np.where(rows[pos] == flat, ext[pos], None).reshape(row_ids.shape)  # type: ignore[index]

    def _load(self) -> None:
        rows = self.store.conn.execute("SELECT row_id, ext_id FROM docs").fetchall()
        row_ids = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
        ext = np.empty(len(rows), dtype=object)
        ext[:] = [e for _, e in rows]
        order = np.argsort(row_ids, kind="stable")
        self._rows, self._ext = row_ids[order], ext[order]
        top = int(self._rows[-1]) + 1 if len(rows) else 0
        # Row ids are dense unless many documents were replaced or removed since the last compaction: then a
        # table indexed by row id (a gather: 20x faster than the binary search) costs at most twice the rows.
        if 0 < top <= 2 * len(rows):
            dense = np.full(top + 1, None, dtype=object)
            dense[self._rows] = self._ext
            self._dense = dense
