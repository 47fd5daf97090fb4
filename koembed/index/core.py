"""A persistent, crash-safe vector index: a directory holding a FAISS file, a SQLite store and a manifest.

Layout of an index directory::

    manifest.json          format, model name and fingerprint, dim, metric, spec, count, file checksums
    docs.sqlite            documents (string id <-> int64 row id, text, metadata) + the committed manifest
    index.000042.faiss     the FAISS index of generation 42 (ids = row ids)

A commit (generation g -> g+1) happens in this order:

1. the FAISS index is written to a new file ``index.{g+1}.faiss`` (temp file, fsync, rename);
2. the document changes and the new manifest (naming that file and its checksum) commit in ONE SQLite
   transaction: this is the commit point;
3. ``manifest.json`` is rewritten atomically (a copy for people and tools: koembed reads the store's);
4. the files of generation g-1 are deleted; g's stay one more commit, for readers that took their
   snapshot just before this commit and have not opened them yet.

``kill -9`` before step 2 leaves generation g intact (the WAL's uncommitted frames are ignored; the new
FAISS file is an orphan, deleted on the next write). After step 2 the store already describes g+1 and
its FAISS file is complete; the next writer rewrites ``manifest.json``. Either way the index opens in a
consistent state. A read-only Index is a snapshot of one generation (see :meth:`Index.open` and
:meth:`Index.refresh`; docs/index.md, *Readers during writes*).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from koembed.atomic import atomic_path, atomic_write_text
from koembed.errors import IndexRefusedError, InputError
from koembed.index.failures import writing
from koembed.index.files import (
    CREATING,
    MANIFEST,
    STORE,
    abandon_new_index,
    faiss_file_name,
    file_checksum,
    lexical_file_name,
    lists_file_name,
    lists_file_of,
    load_generation,
    lock_dir,
    now,
    prepare_new_index,
    read_faiss,
    read_lexical,
    read_manifest,
    remove_orphans,
    unlock_dir,
)
from koembed.index.manifest import Manifest, ModelInfo
from koembed.index.spec import (
    CALIBRATION_RECALL,
    IndexSpec,
    apply_search_defaults,
    can_remove,
    new_faiss_index,
    resolve_spec,
    train_faiss,
)
from koembed.index.store import DocStore, metadata_json
from koembed.lexical.analysers import DEFAULT_ANALYSER
from koembed.lexical.part import LexicalPart, fill_from_store, new_info
from koembed.lexical.tables import create_tables
from koembed.vectors import l2_normalize


class Index:
    """An open index directory. Use :meth:`create` or :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, directory: Path, manifest: Manifest, store: DocStore, faiss_index: Any,
                 writable: bool, lock_fd: int | None, lexical: Any = None) -> None:
        self.directory = directory
        self.manifest = manifest
        self.store = store
        self.faiss = faiss_index
        self.lexical = lexical  # koembed.lexical.part.LexicalPart, or None for an index without a lexical part
        self.writable = writable
        self._lock_fd = lock_fd
        self._dirty = False
        self._tombstoning = not can_remove(faiss_index)
        self._tombstones_cache: np.ndarray | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | os.PathLike, dim: int, *, index_type: str = "auto", expected_count: int = 0,
               model_name: str | None = None, model_fingerprint: str | None = None, backend: str | None = None,
               memory_budget: int | None = None, config: dict[str, Any] | None = None,
               analyser: str | None = DEFAULT_ANALYSER) -> Index:
        """Create an empty index in ``directory`` (absent or empty) for ``dim``-dimensional vectors.

        ``analyser`` names the analyser of its lexical part (:mod:`koembed.lexical.analysers`); None makes an
        index without one (dense search only).

        An existing empty folder (or a link to one) is filled, keeping its owner and mode. Creation holds
        the writer lock, so of two processes creating the same index one gets a clear refusal; until
        ``manifest.json`` appears the folder is not an index, and a create that was killed is finished
        over by the next one (see :func:`~koembed.index.files.prepare_new_index`).
        """
        d = Path(directory)
        if dim < 1:
            raise InputError(f"dimension must be positive, got {dim}")
        spec = resolve_spec(index_type, max(expected_count, 0), dim, memory_budget)
        lock_fd = prepare_new_index(d)
        try:
            with writing(d, "no index was created; the folder holds only what it held before"):
                manifest = Manifest(dim=int(dim), spec=spec.factory, index_type=index_type,
                                    model=ModelInfo(model_name, model_fingerprint, backend), spec_reason=spec.reason,
                                    search_defaults=dict(spec.search_defaults), created=now(), updated=now(),
                                    config=config or {}, lexical=new_info(analyser) if analyser else None)
                index = cls(d, manifest, DocStore(d / STORE), new_faiss_index(spec, dim), True, lock_fd)
                if analyser:
                    index._start_lexical(manifest.lexical)
                index.manifest.trained = bool(index.faiss.is_trained)
                index._dirty = True
                index.commit()
                index.store.close()
                (d / CREATING).unlink()
        except BaseException:
            abandon_new_index(d)
            unlock_dir(lock_fd)
            raise
        return cls._open(d, writable=True, verify=True, mmap=None, lock_fd=lock_fd)

    @classmethod
    def open(cls, directory: str | os.PathLike, *, writable: bool = False, verify: bool = True,
             mmap: bool | None = None) -> Index:
        """Open an index, verifying its FAISS file; refuse anything that is not a consistent koembed index.

        A read-only Index is a snapshot: it sees the generation committed when it was opened (FAISS file
        and documents alike) until :meth:`refresh` or :meth:`close`, whatever writers commit meanwhile.
        """
        return cls._open(Path(directory), writable=writable, verify=verify, mmap=mmap)

    @classmethod
    def _open(cls, d: Path, *, writable: bool, verify: bool, mmap: bool | None, lock_fd: int | None = None) -> Index:
        # Read before the store's snapshot, so it can only be older than the snapshot, never newer.
        on_disk = read_manifest(d)  # refuses folders that are not (yet) koembed indexes, with the reason
        if writable and lock_fd is None:
            lock_fd = lock_dir(d)
        store = None
        try:
            if not (d / STORE).is_file():
                raise IndexRefusedError(f"{d / STORE}: missing; the index is incomplete, rebuild it")
            with writing(d, "nothing was changed"):
                store = DocStore(d / STORE, readonly=not writable)
            committed, fi, lexical = load_generation(d, store, verify=verify, mmap=False if writable else mmap)
            if on_disk.generation > committed.generation:
                raise IndexRefusedError(f"{d}: {MANIFEST} (generation {on_disk.generation}) is newer than {STORE} "
                                        f"(generation {committed.generation}); rebuild the index")
            index = cls(d, committed, store, fi, writable, lock_fd, lexical)
            if writable:
                with writing(d, f"the index is unchanged (generation {committed.generation})"):
                    if on_disk.generation < committed.generation:  # killed after the SQLite commit: finish it
                        index._write_manifest()
                    index._remove_orphans()
        except BaseException:
            if store is not None:
                store.close()
            unlock_dir(lock_fd)
            raise
        return index

    def refresh(self) -> bool:
        """Move a read-only Index to the latest committed generation; returns whether it changed.

        Cheap when nothing was committed (one SQLite read). A reader that stays open (a server) calls
        this before each search: holding an old snapshot keeps the writer from recycling its WAL file.
        """
        if self.writable:
            return False
        current = self.generation
        self.store.snapshot()
        if self.store.committed_manifest().generation == current:
            return False
        self.manifest, self.faiss, self.lexical = load_generation(self.directory, self.store, verify=True, mmap=None)
        self._tombstoning = not can_remove(self.faiss)
        self._tombstones_cache = None
        return True

    def close(self) -> None:
        self.store.rollback()
        self.store.close()
        unlock_dir(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- properties ----------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.manifest.dim)

    @property
    def count(self) -> int:
        return self.store.count()

    @property
    def spec(self) -> IndexSpec:
        return IndexSpec(self.manifest.spec, dict(self.manifest.search_defaults))

    @property
    def generation(self) -> int:
        return int(self.manifest.generation)

    @property
    def has_changes(self) -> bool:
        """Whether there are changes that :meth:`commit` has not yet made durable."""
        return self._dirty

    @property
    def is_trained(self) -> bool:
        return bool(self.faiss.is_trained)

    def tombstones(self) -> np.ndarray:
        if self._tombstones_cache is None:
            self._tombstones_cache = self.store.tombstones()
        return self._tombstones_cache

    # -- refusals ------------------------------------------------------------------------------------
    def check_model(self, fingerprint: str | None, dim: int | None = None, *, allow_mismatch: bool = False,
                    name: str | None = None) -> None:
        """Refuse a model whose vectors would not be comparable with the index's."""
        self.manifest.check_model(self.directory, fingerprint, dim, allow_mismatch=allow_mismatch, name=name)

    # -- writes --------------------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if not self.writable:
            raise IndexRefusedError(f"{self.directory}: opened read-only; open with writable=True to change it")

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

    def adopt(self, faiss_index: Any, *, next_row_id: int, trained_on: tuple[int | None, int] | None = None) -> None:
        """Take a FAISS index built elsewhere (koembed.scale's merged parts) as this new index's vectors.

        Its ids must be row ids below ``next_row_id`` of documents the caller inserts into :attr:`store`;
        :meth:`commit` makes both durable. ``trained_on`` is :func:`train_faiss`'s ``(nprobe, sample
        size)`` from training it. On-disk IVF lists must be in this folder, named
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
        if trained_on is not None:
            self._trained(*trained_on)
        apply_search_defaults(self.faiss, self.manifest.search_defaults)
        self._dirty = True

    def _trained(self, nprobe: int | None, sample: int) -> None:
        if nprobe is not None:
            self.manifest.search_defaults = dict(self.manifest.search_defaults, nprobe=nprobe)
            self.manifest.calibration = {"nprobe": nprobe, "target_recall_at_10": CALIBRATION_RECALL,
                                         "sample": sample}
            apply_search_defaults(self.faiss, self.manifest.search_defaults)
        self.manifest.trained = True
        self._dirty = True

    def add_vectors(self, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str],
                    metadata: Sequence[dict[str, Any] | None] | None = None, *, commit: bool = True) -> dict[str, int]:
        """Upsert documents with precomputed vectors: an existing id gets its new vector, text and metadata.

        Vectors are L2-normalised (cosine). An untrained index is first trained on these vectors.
        Returns counts ``{"added": ..., "replaced": ...}``.
        """
        self._require_writable()
        x = self._prepare(vectors)
        n = len(x)
        metadata = list(metadata) if metadata is not None else [None] * n
        if not (len(ids) == len(texts) == len(metadata) == n):
            raise InputError(f"add_vectors: {len(ids)} ids, {n} vectors, {len(texts)} texts and {len(metadata)} "
                             "metadata must have the same length")
        if n == 0:
            return {"added": 0, "replaced": 0}
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
            if self.lexical is not None:  # the tokens go in the same transaction as their documents
                if len(old_row_ids):
                    self.lexical.remove(self.store.conn, old_row_ids)
                self.lexical.add(self.store.conn, row_ids, [t for _, t, _ in rows])
        self.manifest.next_row_id = start + len(rows)
        self._dirty = True
        if commit:
            self.commit()
        return {"added": len(rows) - len(old), "replaced": len(old)}

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

    def add_lexical(self, analyser: str = DEFAULT_ANALYSER, *, progress: Any = None) -> int:
        """Give an index made without a lexical part one, from its stored texts (nothing is re-encoded).

        Returns how many documents were tokenised (0 if the index already has a lexical part with this
        analyser; another analyser is refused). ``progress(n)`` is called after each batch.
        """
        self._require_writable()
        if self.lexical is not None:
            self.lexical.check_analyser(analyser, self.directory)
            return 0
        info = new_info(analyser)
        with self._changing():
            self.store.begin()
            self._start_lexical(info)
            done = fill_from_store(self.store.conn, self.lexical, progress)
        self._dirty = True
        self.commit()
        return done

    def _start_lexical(self, info: dict[str, Any]) -> None:
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

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Uncommitted changes: any failure undoes them all, and a full disk or read-only file is one line."""
        with writing(self.directory, lambda: f"nothing was committed; the index is unchanged "
                                             f"(generation {self.generation})"):
            try:
                yield
            except BaseException:
                self._abort()
                raise

    def _abort(self) -> None:
        """Undo uncommitted changes: roll SQLite back and reload the last committed FAISS file."""
        self.store.rollback()
        self.manifest = self.store.committed_manifest()
        self.faiss = read_faiss(self.directory, self.manifest, mmap=False)
        apply_search_defaults(self.faiss, self.manifest.search_defaults)
        self.lexical = read_lexical(self.directory, self.manifest, verify=False)
        self._tombstones_cache = None
        self._dirty = False

    # -- commit protocol (see the module docstring) --------------------------------------------------
    def commit(self) -> None:
        """Make every change since the last commit durable; a no-op when nothing changed."""
        if not self._dirty:
            return
        self._require_writable()
        previous = self.manifest.faiss_file
        previous_lexical = (self.manifest.lexical or {}).get("file")
        previous_lists = self.manifest.lists_file
        gen = self.generation + 1
        name = faiss_file_name(gen)
        lexical_name = None
        with writing(self.directory, f"nothing was committed; the index is unchanged (generation {gen - 1})"):
            try:
                self._write_faiss(name)
                files = {name: file_checksum(self.directory / name)}
                lists = lists_file_of(self.faiss)  # on-disk IVF lists: adopted, then carried by later commits
                if lists:
                    files[lists] = (self.manifest.files[lists] if lists == previous_lists
                                    else file_checksum(self.directory / lists))
                if self.lexical is not None:  # its BM25 file, rewritten only when documents changed
                    lexical_name = self._write_lexical(gen) if self.lexical.dirty else previous_lexical
                    files[lexical_name] = (self.manifest.files[lexical_name] if lexical_name == previous_lexical
                                           else file_checksum(self.directory / lexical_name))
                m = self.manifest.copy(generation=gen, faiss_file=name, ntotal=int(self.faiss.ntotal),
                                       files=files, updated=now(), trained=bool(self.faiss.is_trained),
                                       lexical=None if self.lexical is None else dict(self.lexical.info),
                                       lists_file=lists)
                self.store.begin()
                m.count = self.store.count()
                m.tombstones = len(self.store.tombstones())
                self.store.set_state("manifest", m.to_dict())
                self._store_commit()
            except BaseException:
                if gen > 0:  # back to what the store says is committed (a create has nothing to go back to)
                    self._abort()
                if self.generation != gen:  # the new files belong to no commit
                    (self.directory / name).unlink(missing_ok=True)
                    if lexical_name and lexical_name != previous_lexical:
                        (self.directory / lexical_name).unlink(missing_ok=True)
                raise
        self.manifest = m
        self._dirty = False
        if self.lexical is not None:
            self.lexical.committed()
        with writing(self.directory, f"generation {gen} is committed, but {MANIFEST} still describes the one "
                                     "before it (the next write repairs it)"):
            self._write_manifest()
        # The previous generation's file stays until the next commit: a reader that took its snapshot just
        # before this commit may not have opened that file yet.
        keep = {name, previous or name} | {f for f in (lexical_name, previous_lexical, lists, previous_lists) if f}
        remove_orphans(self.directory, keep=keep)

    def _write_faiss(self, name: str) -> None:
        import faiss

        with atomic_path(self.directory / name) as tmp:
            faiss.write_index(self.faiss, str(tmp))

    def _write_lexical(self, generation: int) -> str:
        return self.lexical.write(self.store.conn, self.directory, generation)

    def _store_commit(self) -> None:
        self.store.commit()

    def _write_manifest(self) -> None:
        # No checksum of docs.sqlite: in WAL mode its bytes change whenever SQLite checkpoints, and the
        # store's integrity is SQLite's job (a damaged page is refused when read).
        self.manifest.files.pop(STORE, None)
        atomic_write_text(self.directory / MANIFEST,
                          json.dumps(self.manifest.to_dict(), ensure_ascii=False, indent=2) + "\n")

    def _remove_orphans(self) -> None:
        gen = self.generation
        lexical = {(self.manifest.lexical or {}).get("file"), lexical_file_name(max(gen - 1, 0))} - {None}
        lists = {self.manifest.lists_file, lists_file_name(gen), lists_file_name(max(gen - 1, 0))} - {None}
        remove_orphans(self.directory, keep={faiss_file_name(gen), faiss_file_name(max(gen - 1, 0))} | lexical | lists)
        (self.directory / CREATING).unlink(missing_ok=True)  # a create killed after its manifest was written

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, ext_id: str) -> dict[str, Any] | None:
        """The stored document ``{"id", "text", "metadata"}`` or None."""
        found = self.store.lookup([str(ext_id)])
        if not found:
            return None
        _, text, meta = found[str(ext_id)]
        return {"id": str(ext_id), "text": text, "metadata": json.loads(meta)}

    def info(self) -> dict[str, Any]:
        """The manifest plus live counts and on-disk sizes."""
        sizes = {}
        for p in sorted(self.directory.iterdir()):
            with contextlib.suppress(FileNotFoundError):  # a writer may delete an old generation's file
                if p.is_file() and not p.name.startswith("."):
                    sizes[p.name] = p.stat().st_size
        m = self.manifest
        return {"directory": str(self.directory), "count": self.count, "spec": m.spec, "index_type": m.index_type,
                "dim": self.dim, "model": m.model.as_dict(), "metric": m.metric,
                "spec_reason": m.spec_reason, "calibration": m.calibration,
                "search_defaults": dict(m.search_defaults), "ntotal": int(self.faiss.ntotal),
                "tombstones": int(len(self.tombstones())), "generation": self.generation,
                "created": m.created, "updated": m.updated, "lexical": m.lexical,
                "sizes": sizes, "total_bytes": sum(sizes.values())}
