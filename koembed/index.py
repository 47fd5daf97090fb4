"""A persistent, crash-safe vector index: a directory holding a FAISS file, a SQLite store and a manifest.

Layout of an index directory::

    manifest.json          format, model name and fingerprint, dim, metric, spec, count, file checksums
    docs.sqlite            documents (string id <-> int64 row id, text, metadata) + the committed manifest
    index.000042.faiss     the FAISS index of generation 42 (ids = row ids)

A commit (generation g -> g+1) happens in this order:

1. the FAISS index is written to a new file ``index.{g+1}.faiss`` (temp file, fsync, rename);
2. the document changes and the new manifest (naming that file and its checksum) commit in ONE SQLite
   transaction: this is the commit point;
3. ``manifest.json`` is rewritten atomically, now including the SQLite file's checksum;
4. ``index.{g}.faiss`` is deleted.

``kill -9`` before step 2 leaves generation g intact (the journal rolls SQLite back; the new FAISS file
is an orphan, deleted on the next write). After step 2 the store already describes g+1 and its FAISS
file is complete, so opening rolls forward: it verifies that file against the checksum in the store
and rewrites ``manifest.json``. Either way the index opens in a consistent state.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from koembed.atomic import atomic_path, atomic_write_text
from koembed.errors import IndexRefusedError, InputError
from koembed.index_files import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    STORE,
    file_checksum,
    lock_dir,
    now,
    read_manifest,
    remove_orphans,
    unlock_dir,
    verify_file,
)
from koembed.index_types import (
    CALIBRATION_RECALL,
    IndexSpec,
    apply_search_defaults,
    calibrate_nprobe,
    can_remove,
    new_faiss_index,
    resolve_spec,
    tune_training,
)
from koembed.store import DocStore, metadata_json

METRIC = "cosine (inner product of L2-normalised vectors)"
# Read-only opens memory-map FAISS files at least this big instead of reading them into RAM.
MMAP_MIN_BYTES = 1 << 30


class Index:
    """An open index directory. Use :meth:`create` or :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, directory: Path, manifest: dict[str, Any], store: DocStore, faiss_index: Any,
                 writable: bool, lock_fd: int | None) -> None:
        self.directory = directory
        self.manifest = manifest
        self.store = store
        self.faiss = faiss_index
        self.writable = writable
        self._lock_fd = lock_fd
        self._dirty = False
        self._tombstoning = not can_remove(faiss_index)
        self._tombstones_cache: np.ndarray | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | os.PathLike, dim: int, *, index_type: str = "auto", expected_count: int = 0,
               model_name: str | None = None, model_fingerprint: str | None = None, backend: str | None = None,
               memory_budget: int | None = None, config: dict[str, Any] | None = None) -> Index:
        """Create an empty index in ``directory`` (absent or empty) for ``dim``-dimensional vectors."""
        d = Path(directory)
        if d.exists() and (not d.is_dir() or any(d.iterdir())):
            raise IndexRefusedError(f"{d}: exists and is not an empty directory or a koembed index; "
                                    "choose a new output directory")
        if dim < 1:
            raise InputError(f"dimension must be positive, got {dim}")
        spec = resolve_spec(index_type, max(expected_count, 0), dim, memory_budget)
        d.parent.mkdir(parents=True, exist_ok=True)
        # Built beside the target and renamed into place, so a killed create leaves no half index at d.
        tmp = d.parent / f".{d.name}.creating-{os.getpid()}"
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        tmp.mkdir()
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "model": {"name": model_name, "fingerprint": model_fingerprint, "backend": backend},
            "dim": int(dim), "metric": METRIC, "index_type": index_type, "spec": spec.factory,
            "spec_reason": spec.reason, "search_defaults": spec.search_defaults, "count": 0, "ntotal": 0,
            "tombstones": 0, "next_row_id": 0, "trained": False, "generation": -1, "files": {},
            "created": now(), "updated": now(), "config": config or {},
        }
        index = cls(tmp, manifest, DocStore(tmp / STORE), new_faiss_index(spec, dim), True, lock_dir(tmp))
        index.manifest["trained"] = bool(index.faiss.is_trained)
        index._dirty = True
        index.commit()
        index.close()
        if d.exists():
            d.rmdir()  # empty (checked above); rename(2) could replace it, but not on every platform
        os.rename(tmp, d)
        return cls.open(d, writable=True)

    @classmethod
    def open(cls, directory: str | os.PathLike, *, writable: bool = False, verify: bool = True,
             mmap: bool | None = None) -> Index:
        """Open an index, verifying file checksums; refuse anything that is not a consistent koembed index."""
        import faiss

        d = Path(directory)
        manifest = read_manifest(d)
        if not (d / STORE).is_file():
            raise IndexRefusedError(f"{d / STORE}: missing; the index is incomplete, rebuild it")
        lock_fd = lock_dir(d) if writable else None
        store = None
        try:
            store = DocStore(d / STORE, readonly=not os.access(d, os.W_OK))
            committed = store.get_state("manifest")
            if not isinstance(committed, dict):
                raise IndexRefusedError(f"{d / STORE}: holds no committed manifest; the index is corrupt, rebuild it")
            recover = committed["generation"] == manifest["generation"] + 1
            if committed["generation"] != manifest["generation"] and not recover:
                raise IndexRefusedError(f"{d}: {MANIFEST} (generation {manifest['generation']}) and {STORE} "
                                        f"(generation {committed['generation']}) disagree; rebuild the index")
            if recover:  # killed between the SQLite commit and the manifest write: finish that commit
                manifest = committed
            faiss_name = committed["faiss_file"]
            if verify:
                verify_file(d, faiss_name, committed["files"][faiss_name])
                if not recover:
                    verify_file(d, STORE, manifest["files"][STORE])
            faiss_path = d / faiss_name
            if mmap is None:
                mmap = not writable and faiss_path.stat().st_size >= MMAP_MIN_BYTES
            flags = 0
            if mmap and not writable:  # IVF maps its inverted lists, flat-code types (Flat, HNSW storage) their codes
                flags = faiss.IO_FLAG_READ_ONLY | (faiss.IO_FLAG_MMAP if "IVF" in manifest["spec"]
                                                   else faiss.IO_FLAG_MMAP_IFC)
            try:
                fi = faiss.read_index(str(faiss_path), flags)
            except RuntimeError:
                raise IndexRefusedError(f"{faiss_path}: unreadable FAISS file (corrupt); rebuild the index") from None
            if fi.d != manifest["dim"] or fi.ntotal != committed["ntotal"]:
                raise IndexRefusedError(f"{faiss_path}: holds {fi.ntotal} vectors of dimension {fi.d}, the manifest "
                                        f"says {committed['ntotal']} of {manifest['dim']}; rebuild the index")
        except BaseException:
            if store is not None:
                store.close()
            unlock_dir(lock_fd)
            raise
        apply_search_defaults(fi, manifest.get("search_defaults", {}))
        index = cls(d, dict(committed), store, fi, writable, lock_fd)
        if recover and os.access(d, os.W_OK):
            index._write_manifest()
        if writable:
            index._remove_orphans()
        return index

    def close(self) -> None:
        if self.store.in_transaction:
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
        return int(self.manifest["dim"])

    @property
    def count(self) -> int:
        return self.store.count()

    @property
    def spec(self) -> IndexSpec:
        return IndexSpec(self.manifest["spec"], dict(self.manifest.get("search_defaults", {})))

    @property
    def generation(self) -> int:
        return int(self.manifest["generation"])

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
        if dim is not None and dim != self.dim:
            raise IndexRefusedError(f"{self.directory}: the model gives {dim}-dimensional vectors, the index holds "
                                    f"{self.dim}-dimensional ones; use the index's model "
                                    f"({self.manifest['model'].get('name')})")
        want = self.manifest["model"].get("fingerprint")
        if want and fingerprint and fingerprint != want and not allow_mismatch:
            raise IndexRefusedError(
                f"{self.directory}: model {name or ''} (fingerprint {fingerprint[:12]}) differs from the index's model "
                f"{self.manifest['model'].get('name')!r} (fingerprint {want[:12]}); use that model, or for search "
                "only pass --allow-model-mismatch")

    # -- writes --------------------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if not self.writable:
            raise IndexRefusedError(f"{self.directory}: opened read-only; open with writable=True to change it")

    def train(self, vectors: np.ndarray) -> None:
        """Train the quantisers (IVF / PQ / SQ) on a sample; a no-op for types that need no training."""
        self._require_writable()
        if self.faiss.is_trained:
            return
        x = self._prepare(vectors)
        spec = self.spec
        if len(x) < spec.min_train():
            raise IndexRefusedError(f"{self.directory}: index type {spec.factory} needs at least {spec.min_train()} "
                                    f"training vectors, got {len(x)}; use --index-type flat or a smaller IVF")
        if spec.train_size() and len(x) > spec.train_size():
            x = x[np.random.default_rng(0).choice(len(x), spec.train_size(), replace=False)]
        tune_training(self.faiss)
        try:
            self.faiss.train(x)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[-1][:160]
            raise IndexRefusedError(f"{self.directory}: training {spec.factory} on {len(x)} vectors failed ({reason}); "
                                    "use more documents or a simpler --index-type") from None
        nprobe = calibrate_nprobe(self.faiss, x)
        if nprobe is not None:
            self.manifest["search_defaults"] = dict(self.manifest.get("search_defaults", {}), nprobe=nprobe)
            self.manifest["calibration"] = {"nprobe": nprobe, "target_recall_at_10": CALIBRATION_RECALL,
                                            "sample": len(x)}
            apply_search_defaults(self.faiss, self.manifest["search_defaults"])
        self.manifest["trained"] = True
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
        start = int(self.manifest["next_row_id"])
        row_ids = np.arange(start, start + len(rows), dtype=np.int64)
        self.store.begin()
        try:
            self.faiss.add_with_ids(x, row_ids)
            if len(old_row_ids):
                self._drop_vectors(old_row_ids)
                self.store.delete_rows(old_row_ids)
            self.store.insert((int(r), e, t, m) for r, (e, t, m) in zip(row_ids, rows, strict=True))
        except BaseException:
            self._abort()
            raise
        self.manifest["next_row_id"] = start + len(rows)
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
        self.store.begin()
        try:
            self._drop_vectors(row_ids)
            self.store.delete_rows(row_ids)
        except BaseException:
            self._abort()
            raise
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
        apply_search_defaults(fresh, self.manifest.get("search_defaults", {}))
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
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)

    def _abort(self) -> None:
        """Undo uncommitted changes: roll SQLite back and reload the last committed FAISS file."""
        import faiss

        self.store.rollback()
        committed = self.store.get_state("manifest")
        self.manifest = dict(committed)
        self.faiss = faiss.read_index(str(self.directory / committed["faiss_file"]))
        apply_search_defaults(self.faiss, self.manifest.get("search_defaults", {}))
        self._tombstones_cache = None
        self._dirty = False

    # -- commit protocol (see the module docstring) --------------------------------------------------
    def commit(self) -> None:
        """Make every change since the last commit durable; a no-op when nothing changed."""
        if not self._dirty:
            return
        self._require_writable()
        old_file = self.manifest.get("faiss_file")
        gen = self.generation + 1
        name = f"index.{gen:06d}.faiss"
        self._write_faiss(name)
        m = dict(self.manifest)
        m.update(generation=gen, faiss_file=name, files={name: file_checksum(self.directory / name)},
                 ntotal=int(self.faiss.ntotal), updated=now(), trained=bool(self.faiss.is_trained))
        self.store.begin()
        m["count"] = self.store.count()
        m["tombstones"] = len(self.store.tombstones())
        self.store.set_state("manifest", m)
        self._store_commit()
        self.manifest = m
        self._dirty = False
        self._write_manifest()
        if old_file and old_file != name:
            (self.directory / old_file).unlink(missing_ok=True)

    def _write_faiss(self, name: str) -> None:
        import faiss

        with atomic_path(self.directory / name) as tmp:
            faiss.write_index(self.faiss, str(tmp))

    def _store_commit(self) -> None:
        self.store.commit()

    def _write_manifest(self) -> None:
        m = dict(self.manifest)
        m["files"] = dict(m["files"]) | {STORE: file_checksum(self.directory / STORE)}
        self.manifest = m
        atomic_write_text(self.directory / MANIFEST, json.dumps(m, ensure_ascii=False, indent=2) + "\n")

    def _remove_orphans(self) -> None:
        remove_orphans(self.directory, self.manifest["faiss_file"])

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
        sizes = {p.name: p.stat().st_size for p in sorted(self.directory.iterdir()) if p.is_file()
                 and not p.name.startswith(".")}
        return {"directory": str(self.directory), "count": self.count, "spec": self.manifest["spec"],
                "index_type": self.manifest["index_type"], "dim": self.dim,
                "model": self.manifest["model"], "metric": self.manifest["metric"],
                "search_defaults": self.manifest.get("search_defaults", {}), "ntotal": int(self.faiss.ntotal),
                "tombstones": int(len(self.tombstones())), "generation": self.generation,
                "created": self.manifest["created"], "updated": self.manifest["updated"],
                "sizes": sizes, "total_bytes": sum(sizes.values())}
