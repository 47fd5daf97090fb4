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
        self.loaded = False
        # Once loaded, one of two forms: a table indexed by row id (None for gaps, and one None slot at the
        # end that -1 reads), or sorted row ids beside their external ids for a binary search.
        self._table: np.ndarray | None = None
        self._rows: np.ndarray | None = None
        self._ext: np.ndarray | None = None

    def lookup(self, row_ids: np.ndarray) -> np.ndarray:
        """An object array shaped like ``row_ids`` holding each row's external id, None where there is none."""
        row_ids = np.asarray(row_ids, dtype=np.int64)
        flat = row_ids.ravel()
        if not self.loaded and self.count is not None:
            self.probed += int(np.count_nonzero(flat >= 0))
            if self.probed * ROWS_PER_PROBE >= self.count:
                self._load()
        if self._table is not None:
            table = self._table
            return table[np.where((flat >= 0) & (flat < len(table) - 1), flat, -1)].reshape(row_ids.shape)
        if self._rows is not None:
            rows = self._rows
            pos = np.searchsorted(rows, flat).clip(max=len(rows) - 1)
            return np.where(rows[pos] == flat, self._ext[pos], None).reshape(row_ids.shape)  # type: ignore[index]
        docs = self.store.fetch(flat, ())
        out = np.array([d[0] if (d := docs.get(r)) is not None else None for r in flat.tolist()], dtype=object)
        return out.reshape(row_ids.shape)

    def _load(self) -> None:
        rows = self.store.conn.execute("SELECT row_id, ext_id FROM docs").fetchall()
        row_ids = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
        ext = np.empty(len(rows), dtype=object)
        ext[:] = [e for _, e in rows]
        top = int(row_ids.max()) + 1 if len(rows) else 0
        # Row ids are dense unless many documents were replaced or removed since the last compaction: then the
        # table indexed by row id (a gather: 20x faster than the binary search) costs at most twice the rows.
        if top <= 2 * len(rows):
            self._table = np.full(top + 1, None, dtype=object)
            self._table[row_ids] = ext
        else:
            order = np.argsort(row_ids, kind="stable")
            self._rows, self._ext = row_ids[order], ext[order]
        self.loaded = True
