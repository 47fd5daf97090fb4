"""A persistent, crash-safe vector index: a directory holding a FAISS file, a SQLite store and a manifest.

The directory's files and the commit protocol's steps are named in :mod:`koembed.index.layout`.
:class:`Index` is split by job: opening, snapshots and reads here; the changes a writer makes in
:mod:`koembed.index.writes`; how they become durable (the commit protocol) in :mod:`koembed.index.commit`;
the state all three share is declared in :class:`koembed.index.state.IndexState`. A read-only Index is a
snapshot of one generation (see :meth:`Index.open` and :meth:`Index.refresh`; docs/index.md, *Readers
during writes*).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from koembed.errors import IndexRefusedError, InputError
from koembed.index.ext_ids import ExtIds
from koembed.index.failures import writing
from koembed.index.files import abandon_new_index, lock_dir, now, prepare_new_index, read_manifest, unlock_dir
from koembed.index.generations import load_generation
from koembed.index.layout import CREATING, MANIFEST, STORE
from koembed.index.lexical_part import new_info
from koembed.index.manifest import Calibration, LexicalInfo, Manifest, ModelInfo
from koembed.index.spec import (
    can_remove,
    new_faiss_index,
    resolve_spec,
)
from koembed.index.store import DocStore
from koembed.index.writes import IndexWrites
from koembed.lexical.analysers import DEFAULT_ANALYSER


class IndexInfo(TypedDict):
    """What :meth:`Index.info` returns: the manifest's facts, live counts, and the files on disk."""

    directory: str
    count: int  # live documents
    spec: str  # the FAISS factory string
    index_type: str  # as requested (auto, an alias or a factory string)
    dim: int
    model: dict[str, Any]  # ModelInfo.as_dict(): name, fingerprint, backend (and prompts when it has any)
    metric: str
    spec_reason: str
    calibration: Calibration | None
    search_defaults: dict[str, int]
    ntotal: int  # vectors in FAISS (live + tombstones)
    tombstones: int
    generation: int
    created: str
    updated: str
    lexical: LexicalInfo | None
    sizes: dict[str, int]  # file name -> bytes
    roles: dict[str, str]  # file name -> what it is (manifest, documents, generation N, ...)
    total_bytes: int


class Index(IndexWrites):
    """An open index directory. Use :meth:`create` or :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, directory: Path, manifest: Manifest, store: DocStore, faiss_index: Any,
                 writable: bool, lock_fd: int | None, lexical: Any = None) -> None:
        self.directory = directory
        self.manifest = manifest
        self.store = store
        self.faiss = faiss_index
        self.lexical = lexical  # koembed.index.lexical_part.LexicalPart, or None for an index without a lexical part
        self.writable = writable
        self._lock_fd = lock_fd
        self._dirty = False
        self._tombstoning = not can_remove(faiss_index)
        self._tombstones_cache: np.ndarray | None = None
        self.ext_ids = ExtIds(store, None if writable else manifest.count)

    # -- lifecycle -----------------------------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | os.PathLike, dim: int, *, index_type: str = "auto", expected_count: int = 0,
               model_name: str | None = None, model_fingerprint: str | None = None, backend: str | None = None,
               memory_budget: int | None = None, config: dict[str, Any] | None = None,
               analyser: str | None = DEFAULT_ANALYSER, prompts: dict[str, str] | None = None) -> Index:
        """Create an empty index in ``directory`` (absent or empty) for ``dim``-dimensional vectors.

        ``prompts`` records the prompt of each role (``query``, ``document``) the model encodes with
        (:meth:`koembed.encoder.KoMiniLMEncoder.role_prompts`): searches must use the same ones.

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
                                    model=ModelInfo(model_name, model_fingerprint, backend, dict(prompts or {})),
                                    spec_reason=spec.reason,
                                    search_defaults=dict(spec.search_defaults), created=now(), updated=now(),
                                    config=config or {}, lexical=new_info(analyser) if analyser else None)
                index = cls(d, manifest, DocStore(d / STORE, create=True), new_faiss_index(spec, dim), True,
                            lock_fd)
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
            # Tables dropped or emptied outside koembed: refused here, and a writer counts every row first, so
            # that its commit cannot make the manifest agree with a damaged store.
            store.check_against(committed, full=writable)
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
        self.ext_ids = ExtIds(self.store, self.manifest.count)
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

    # -- refusals ------------------------------------------------------------------------------------
    def check_model(self, fingerprint: str | None, dim: int | None = None, *, allow_mismatch: bool = False,
                    name: str | None = None, prompts: dict[str, str] | None = None) -> None:
        """Refuse a model (or prompts) whose vectors would not be comparable with the index's."""
        self.manifest.check_model(self.directory, fingerprint, dim, allow_mismatch=allow_mismatch, name=name,
                                  prompts=prompts)

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, ext_id: str) -> dict[str, Any] | None:
        """The stored document ``{"id", "text", "metadata"}`` or None."""
        found = self.store.lookup([str(ext_id)])
        if not found:
            return None
        _, text, meta = found[str(ext_id)]
        return {"id": str(ext_id), "text": text, "metadata": json.loads(meta)}

    def info(self) -> IndexInfo:
        """The manifest plus live counts and on-disk sizes."""
        sizes = {}
        for p in sorted(self.directory.iterdir()):
            with contextlib.suppress(FileNotFoundError):  # a writer may delete an old generation's file
                if p.is_file() and not p.name.startswith("."):
                    sizes[p.name] = p.stat().st_size
        m = self.manifest
        roles = {name: _file_role(name, m) for name in sizes}
        return IndexInfo(directory=str(self.directory), count=self.count, spec=m.spec, index_type=m.index_type,
                         dim=self.dim, model=m.model.as_dict(), metric=m.metric, spec_reason=m.spec_reason,
                         calibration=m.calibration, search_defaults=dict(m.search_defaults),
                         ntotal=int(self.faiss.ntotal), tombstones=int(len(self.tombstones())),
                         generation=self.generation, created=m.created, updated=m.updated, lexical=m.lexical,
                         sizes=sizes, roles=roles, total_bytes=sum(sizes.values()))


def _file_role(name: str, manifest: Manifest) -> str:
    """What a file in an index directory is, for ``info``: the clutter a user sees has reasons."""
    if name == MANIFEST:
        return "manifest"
    if name == STORE:
        return "documents (SQLite)"
    if name == STORE + "-wal":
        return "SQLite's write-ahead log (folded into the store at checkpoints)"
    if name == STORE + "-shm":
        return "SQLite's index of the write-ahead log"
    if name in manifest.files:
        return f"generation {manifest.generation}"
    return "an older generation, kept for readers still on it; deleted by a later commit"
