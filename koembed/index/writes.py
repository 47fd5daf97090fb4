"""The changes a writer makes to an open index: train, add, remove, compact, add a lexical part.

Each runs inside ``_changing`` (:mod:`koembed.index.commit`), so a failure undoes every uncommitted change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np

from koembed.errors import IndexRefusedError, InputError
from koembed.index.commit import CommitProtocol
from koembed.index.generations import lists_file_of
from koembed.index.layout import lists_file_name
from koembed.index.lexical_part import Filled, LexicalPart, fill_from_store, new_info
from koembed.index.lexical_tables import create_tables
from koembed.index.manifest import Calibration, LexicalInfo
from koembed.index.spec import (
    CALIBRATION_RECALL,
    apply_search_defaults,
    can_remove,
    new_faiss_index,
    train_faiss,
)
from koembed.index.store import metadata_json
from koembed.lexical.analysers import DEFAULT_ANALYSER
from koembed.vectors import l2_normalize


class AddResult(TypedDict):
    """What :meth:`IndexWrites.add_vectors` did (the same keys whatever it was given)."""

    added: int  # new ids
    replaced: int  # ids that were stored: their vector, text and metadata replaced
    lexical_cut: int  # texts the lexical part read only the first koembed.index.lexical_part.MAX_CHARS of


class IndexWrites(CommitProtocol):
    """The changes a writer makes; each undone by :meth:`_changing` if it fails, made durable by :meth:`commit`."""

    def train(self, vectors: np.ndarray) -> None:
        """Train the quantisers (IVF / PQ / SQ) on a sample; a no-op for types that need no training."""
        self._require_writable()
        if self.faiss.is_trained:
            return
        if self.manifest.index_type == "auto" and self.spec.nlist:
            # auto proposed IVF from the count; the sample decides whether it beats exact search.
            from koembed.index.autotune import choose

            choice = choose(self.spec, self._prepare(vectors), self.dim)
            self.faiss = choice.index
            self.manifest.spec, self.manifest.spec_reason = choice.spec.factory, choice.spec.reason
            self.manifest.search_defaults = dict(choice.spec.search_defaults)
            self.manifest.calibration = choice.calibration
            apply_search_defaults(self.faiss, self.manifest.search_defaults)
            self.manifest.trained = True
            self._dirty = True
            return
        self._trained(*train_faiss(self.faiss, self.spec, self._prepare(vectors), self.directory))

    def adopt(self, faiss_index: Any, *, next_row_id: int) -> None:
        """Take a FAISS index built elsewhere as this index's vectors (koembed.scale merges parts into it).

        This index holds no vectors yet and was trained (:meth:`train`, which also chose the type for
        ``auto`` and calibrated nprobe): ``faiss_index`` was built from a copy of its trained FAISS index.
        Its ids must be row ids below ``next_row_id`` of documents the caller inserts into :attr:`store`;
        :meth:`commit` makes both durable. On-disk IVF lists must be in this folder, named
        :func:`~koembed.index.files.lists_file_name` of the next generation.
        """
        self._require_writable()
        if int(self.faiss.ntotal) or faiss_index.d != self.dim:
            raise IndexRefusedError(f"{self.directory}: only an index without vectors, of dimension "
                                    f"{faiss_index.d}, can adopt a FAISS index")
        lists = lists_file_of(faiss_index)
        if lists is not None and lists != lists_file_name(self.generation + 1):
            raise ValueError(f"on-disk lists {lists}: expected {lists_file_name(self.generation + 1)}")
        self.faiss = faiss_index
        self._tombstoning = not can_remove(faiss_index)
        self.manifest.next_row_id = int(next_row_id)
        apply_search_defaults(self.faiss, self.manifest.search_defaults)
        self._dirty = True

    def _trained(self, nprobe: int | None, sample: int) -> None:
        if nprobe is not None:
            self.manifest.search_defaults = dict(self.manifest.search_defaults, nprobe=nprobe)
            self.manifest.calibration = Calibration(nprobe=nprobe, target_recall_at_10=CALIBRATION_RECALL,
                                                    sample=sample)
            apply_search_defaults(self.faiss, self.manifest.search_defaults)
        self.manifest.trained = True
        self._dirty = True

    def add_vectors(self, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str],
                    metadata: Sequence[dict[str, Any] | None] | None = None, *, commit: bool = True) -> AddResult:
        """Upsert documents with precomputed vectors: an existing id gets its new vector, text and metadata.

        Vectors are L2-normalised (cosine). An untrained index is first trained on these vectors.
        Returns the counts of :class:`AddResult`.
        """
        self._require_writable()
        x = self._prepare(vectors)
        n = len(x)
        metadata = list(metadata) if metadata is not None else [None] * n
        if not (len(ids) == len(texts) == len(metadata) == n):
            raise InputError(f"add_vectors: {len(ids)} ids, {n} vectors, {len(texts)} texts and {len(metadata)} "
                             "metadata must have the same length")
        if n == 0:
            return AddResult(added=0, replaced=0, lexical_cut=0)
        last = {str(i): j for j, i in enumerate(ids)}  # the last occurrence of a repeated id wins
        keep = np.fromiter(sorted(last.values()), dtype=np.int64)
        if len(keep) < n:
            x = x[keep]
        rows = [(str(ids[j]), texts[j], metadata_json(metadata[j])) for j in keep]
        if not self.faiss.is_trained:
            self.train(x)
        old = self.store.lookup(r[0] for r in rows)
        old_row_ids = np.array(sorted(v[0] for v in old.values()), dtype=np.int64)
        start = int(self.manifest.next_row_id)
        row_ids = np.arange(start, start + len(rows), dtype=np.int64)
        with self._changing():
            self.store.begin()
            self.faiss.add_with_ids(x, row_ids)
            if len(old_row_ids):
                self._drop_vectors(old_row_ids)
                self.store.delete_rows(old_row_ids)
            self.store.insert((int(r), e, t, m) for r, (e, t, m) in zip(row_ids, rows, strict=True))
            cut = 0
            if self.lexical is not None:  # the tokens go in the same transaction as their documents
                if len(old_row_ids):
                    self.lexical.remove(self.store.conn, old_row_ids)
                cut = self.lexical.add(self.store.conn, row_ids, [t for _, t, _ in rows])
        self.manifest.next_row_id = start + len(rows)
        self._dirty = True
        if commit:
            self.commit()
        return AddResult(added=len(rows) - len(old), replaced=len(old), lexical_cut=cut)

    def remove(self, ids: Sequence[str], *, commit: bool = True) -> int:
        """Remove documents by id; returns how many existed. Unknown ids are ignored."""
        self._require_writable()
        found = self.store.lookup(str(i) for i in ids)
        if not found:
            return 0
        row_ids = np.array(sorted(v[0] for v in found.values()), dtype=np.int64)
        with self._changing():
            self.store.begin()
            self._drop_vectors(row_ids)
            self.store.delete_rows(row_ids)
            if self.lexical is not None:
                self.lexical.remove(self.store.conn, row_ids)
        self._dirty = True
        if commit:
            self.commit()
        return len(found)

    def compact(self) -> int:
        """Rebuild a tombstoned index without its dead vectors; returns how many were dropped."""
        self._require_writable()
        dead = self.tombstones()
        if not len(dead):
            return 0
        live = self.store.row_ids()
        fresh = new_faiss_index(self.spec, self.dim)
        apply_search_defaults(fresh, self.manifest.search_defaults)
        with self._changing():
            self.store.begin()
            for s in range(0, len(live), 65536):
                part = live[s : s + 65536]
                vecs = np.vstack([self.faiss.reconstruct(int(r)) for r in part]).astype(np.float32)
                if not fresh.is_trained:
                    fresh.train(vecs)
                fresh.add_with_ids(vecs, part)
            self.faiss = fresh
            self.store.clear_tombstones()
            self._tombstones_cache = None
        self._dirty = True
        self.commit()
        return len(dead)

    def add_lexical(self, analyser: str = DEFAULT_ANALYSER, *, progress: Any = None) -> Filled:
        """Give an index made without a lexical part one, from its stored texts (nothing is re-encoded).

        Returns how many documents were tokenised and cut (none if the index already has a lexical part
        with this analyser; another analyser is refused). ``progress(n)`` is called after each batch.
        """
        self._require_writable()
        if self.lexical is not None:
            self.lexical.check_analyser(analyser, self.directory)
            return Filled(0, 0)
        info = new_info(analyser)
        with self._changing():
            self.store.begin()
            self._start_lexical(info)
            done = fill_from_store(self.store.conn, self.lexical, progress)
        self._dirty = True
        self.commit()
        return done

    def _start_lexical(self, info: LexicalInfo) -> None:
        create_tables(self.store.conn)
        self.lexical = LexicalPart(info, None)

    def _drop_vectors(self, row_ids: np.ndarray) -> None:
        if self._tombstoning:
            self.store.add_tombstones(row_ids)
            self._tombstones_cache = None
        else:
            self.faiss.remove_ids(row_ids)

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            shape = "x".join(str(s) for s in x.shape)
            raise IndexRefusedError(f"{self.directory}: vectors of shape {shape} do not match the index's dimension "
                                    f"{self.dim}; nothing was changed")
        if not np.isfinite(x).all():
            raise InputError("vectors contain NaN or infinity; nothing was changed")
        return np.ascontiguousarray(l2_normalize(x))
