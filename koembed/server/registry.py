"""The indexes a server answers for: names fixed at startup, each following its directory's committed generations.

A request never names a path: it names an index, and the name maps to the directory given at startup.

Snapshots. A read-only :class:`~koembed.index.Index` sees the one generation committed when it was
opened (FAISS file and documents alike), whatever writers commit meanwhile, so every answer comes from
one committed generation.

Reload. ``koembed index`` may update a served index while the server runs. A watcher thread checks
every ``check_interval_s`` whether ``manifest.json`` changed (one ``stat`` per index; a writer rewrites
it after each commit). When it did, the newest generation is opened completely (FAISS file loaded and
verified) beside the one being served, then swapped in under a lock. Requests that already hold the old
generation finish on it; it is closed when the last of them lets go, which also ends its snapshot (an
old snapshot kept open would stop the writer from recycling SQLite's WAL file). A failed open leaves the
old generation serving and is tried again at the next check.

Threads. Each generation has one worker thread that opens it, runs its searches (merging those that ask
the same thing) and closes it: :mod:`koembed.server.index_worker`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from koembed.errors import InputError, KoembedError
from koembed.index.layout import MANIFEST
from koembed.index.modes import MODES, resolve_mode
from koembed.server.index_worker import IndexWorker

log = logging.getLogger("koembed.server")

MIN_CHECK_S = 0.01  # the watcher's shortest pause between checks


@dataclass
class IndexSummary:
    """What /info says about one served generation (read on its worker thread when it was opened)."""

    name: str
    generation: int
    count: int
    manifest: Any  # koembed.index.Manifest: plain data, safe to read from any thread
    modes: list[str]  # the search modes it can answer in (lexical and hybrid need a lexical part)
    default_mode: str

    @property
    def lexical(self) -> bool:
        return "lexical" in self.modes

    def as_dict(self) -> dict[str, Any]:
        from koembed.model_names import public_model_name

        m = self.manifest
        # The model by name: a client learns nothing of the server's folders (koembed.model_names).
        model = m.model.as_dict() | {"name": public_model_name(m.model.name)}
        return {"name": self.name, "generation": self.generation, "count": self.count, "type": m.spec,
                "index_type": m.index_type, "dim": m.dim, "model": model, "updated": m.updated,
                "modes": self.modes, "default_mode": self.default_mode}


class Generation:
    """One opened generation of an index, its worker thread, and how many requests hold it."""

    def __init__(self, name: str, index: Any, worker: IndexWorker, summary: IndexSummary) -> None:
        self.name = name
        self.index = index
        self.summary = summary
        self.worker = worker
        self._refs = 0
        self._retired = False

    @property
    def generation(self) -> int:
        return self.summary.generation

    def search(self, key: Hashable, queries: list[str], vectors: Any, run: Callable[..., Any]) -> Future:
        """``run(index, queries, vectors)`` on the worker thread, merged with waiting searches of the same ``key``
        (see :mod:`koembed.server.index_worker`)."""
        return self.worker.search(key, queries, vectors, lambda q, v: run(self.index, q, v))

    def _close(self) -> None:
        self.worker.call(self.index.close)
        self.worker.stop()


def _answers_in(index: Any, mode: str) -> bool:
    try:
        resolve_mode(index, mode)
    except KoembedError:
        return False
    return True


def _open_on_worker(name: str, path: Path) -> Generation:
    """Open the newest committed generation of ``path`` on a fresh worker thread."""
    worker = IndexWorker(name)

    def open_it() -> tuple[Any, IndexSummary]:
        from koembed.index import Index

        index = Index.open(path)
        modes = [m for m in MODES if _answers_in(index, m)]
        return index, IndexSummary(name, index.generation, index.count, index.manifest.copy(), modes,
                                   resolve_mode(index, None))

    try:
        index, summary = worker.call(open_it).result()
    except BaseException:
        worker.stop()
        raise
    return Generation(name, index, worker, summary)


def _manifest_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path / MANIFEST)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass
class _Entry:
    name: str
    path: Path
    current: Generation
    signature: tuple[int, int, int] | None  # of the manifest.json the current generation was opened after
    reload_lock: threading.Lock = field(default_factory=threading.Lock)
    failed: tuple[int, int, int] | None = None  # the signature whose generation could not be opened (logged once)


class IndexRegistry:
    """Named indexes opened at startup (``name -> directory``), each reloaded at its next committed generation."""

    def __init__(self, paths: Mapping[str, str | os.PathLike], *, check_interval_s: float = 0.5) -> None:
        self.check_interval_s = max(check_interval_s, MIN_CHECK_S)
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._stop = threading.Event()
        try:
            for name, p in paths.items():
                path = Path(p).resolve()
                signature = _manifest_signature(path)
                self._entries[name] = _Entry(name, path, _open_on_worker(name, path), signature)
        except BaseException:
            self.close()
            raise
        self._watcher = threading.Thread(target=self._watch, name="koembed-index-watch", daemon=True)
        if self._entries:
            self._watcher.start()

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def path_of(self, name: str) -> Path:
        """The folder of index ``name`` (for the server's own writes; never sent to a client)."""
        return self._entries[name].path

    def summaries(self) -> list[IndexSummary]:
        with self._lock:
            return [e.current.summary for e in self._entries.values()]

    # -- leases ----------------------------------------------------------------------------------------
    def acquire(self, name: str) -> Generation:
        """The generation to use for one request; give it back with :meth:`release`."""
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(self._entries) or "none"
            raise InputError(f"unknown index {name!r}; this server has: {known}")
        with self._lock:
            gen = entry.current
            gen._refs += 1
            return gen

    def release(self, gen: Generation) -> None:
        with self._lock:
            gen._refs -= 1
            close = gen._retired and gen._refs == 0
        if close:
            gen._close()

    # -- reloads ---------------------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(self.check_interval_s):
            for entry in self._entries.values():
                if _manifest_signature(entry.path) != entry.signature and not self._stop.is_set():
                    self.reload(entry.name)

    def reload(self, name: str) -> Generation:
        """Open the newest committed generation of ``name`` and serve it from now on; returns what is served.

        The generation being served stays in service while the new one opens, and when it cannot be
        opened (then the next check tries again).
        """
        entry = self._entries[name]
        with entry.reload_lock:
            signature = _manifest_signature(entry.path)
            try:
                fresh = _open_on_worker(entry.name, entry.path)
            except Exception as exc:  # any failure: keep serving what works, say why once
                if signature != entry.failed:
                    log.warning("index %s: the changed index could not be opened (%s); still serving generation "
                                "%d", entry.name, exc, entry.current.generation)
                entry.failed = signature
                return entry.current
            with self._lock:
                # A newer generation, or a directory rebuilt from scratch (its generations count anew).
                newer = (fresh.generation > entry.current.generation
                         or fresh.summary.manifest.created != entry.current.summary.manifest.created)
                old = entry.current if newer else fresh
                if newer:
                    entry.current = fresh
                entry.signature = signature
                old._retired = True
                close = old._refs == 0
            if newer:
                log.info("index %s: now serving generation %d (%d documents)", entry.name, fresh.generation,
                         fresh.summary.count)
            if close:
                old._close()
            return entry.current

    def close(self) -> None:
        """Stop watching; close every generation once its requests finish (after the server stopped taking any)."""
        self._stop.set()
        watcher = getattr(self, "_watcher", None)
        if watcher is not None and watcher.is_alive():
            watcher.join(30)
        with self._lock:
            gens = [e.current for e in self._entries.values()]
            for g in gens:
                g._retired = True
            idle = [g for g in gens if g._refs == 0]
        for g in idle:
            g._close()
