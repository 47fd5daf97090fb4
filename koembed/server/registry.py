"""The indexes a server answers for: names fixed at startup, each following its directory's committed generations.

A request never names a path: it names an index, and the name maps to the directory given at startup.

Reload. ``koembed index`` may update a served index while the server runs. Each lease checks, at most
every ``check_interval_s``, whether ``manifest.json`` changed on disk (one ``stat``); when its generation
is newer than the one served, the new generation is opened completely (checksums verified, FAISS file
loaded) beside the old one, then swapped in under a lock. Requests that already hold the old generation
finish on it; it is closed when the last of them lets go. A failed open (a writer racing it) leaves the
old generation serving and is retried at the next check.

Threads. SQLite connections belong to the thread that opened them, so each generation has one worker
thread that opens it, runs every search on it and closes it. FAISS parallelises a batch inside a call.

Consistency. A writer commits SQLite first and rewrites ``manifest.json`` after, so the store can be one
generation ahead of the FAISS file being served. :func:`run_consistent` therefore reads the store's
committed generation after a search has fetched its documents: if it still equals the served one, every
fetch saw that generation (generations only grow); if not, the caller reloads and searches again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from koembed.errors import InputError, KoembedError

log = logging.getLogger("koembed.server")

OPEN_ATTEMPTS = 5  # opens that lose a race with a writer are retried this often, with a growing pause


class StaleGeneration(Exception):
    """The store moved past the served FAISS generation while a search ran; reload and search again."""


@dataclass
class IndexSummary:
    """What /info says about one served generation (read on its worker thread when it was opened)."""

    name: str
    generation: int
    count: int
    manifest: Any  # koembed.index.Manifest: plain data, safe to read from any thread

    def as_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {"name": self.name, "generation": self.generation, "count": self.count, "type": m.spec,
                "index_type": m.index_type, "dim": m.dim, "model": m.model.as_dict(), "updated": m.updated}


class Generation:
    """One opened generation of an index, its worker thread, and how many requests hold it."""

    def __init__(self, name: str, index: Any, executor: ThreadPoolExecutor, summary: IndexSummary) -> None:
        self.name = name
        self.index = index
        self.summary = summary
        self._executor = executor
        self._refs = 0
        self._retired = False

    @property
    def generation(self) -> int:
        return self.summary.generation

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(index, *args, **kwargs)`` on this generation's worker thread."""
        return self._executor.submit(fn, self.index, *args, **kwargs)

    def _close(self) -> None:
        self._executor.submit(self.index.close)
        self._executor.shutdown(wait=False)


def _open_on_worker(name: str, path: Path) -> Generation:
    """Open the newest committed generation of ``path`` on a fresh worker thread (retrying lost races)."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"koembed-index-{name}")

    def open_it() -> tuple[Any, IndexSummary]:
        from koembed.index import Index

        for attempt in range(OPEN_ATTEMPTS):
            try:
                index = Index.open(path)
                break
            except (KoembedError, OSError):
                # A commit landing between the reads of an open makes it fail; the next try sees the new one.
                if attempt == OPEN_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * 2**attempt)
        return index, IndexSummary(name, index.generation, index.count, index.manifest.copy())

    try:
        index, summary = executor.submit(open_it).result()
    except BaseException:
        executor.shutdown(wait=False)
        raise
    return Generation(name, index, executor, summary)


def run_consistent(index: Any, generation: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(index, ...)``, refused with :class:`StaleGeneration` when the store committed past ``generation``."""
    out = fn(index, *args, **kwargs)
    if index.store.committed_manifest().generation != generation:
        raise StaleGeneration
    return out


def _manifest_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path / "manifest.json")
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass
class _Entry:
    name: str
    path: Path
    current: Generation
    signature: tuple[int, int, int] | None
    checked: float = field(default_factory=time.monotonic)
    reloading: Future | None = None


class IndexRegistry:
    """Named indexes opened at startup (``name -> directory``), each reloaded at its next committed generation."""

    def __init__(self, paths: Mapping[str, str | os.PathLike], *, check_interval_s: float = 0.5) -> None:
        self.check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._closed = False
        try:
            for name, p in paths.items():
                path = Path(p).resolve()
                signature = _manifest_signature(path)
                self._entries[name] = _Entry(name, path, _open_on_worker(name, path), signature)
        except BaseException:
            self.close()
            raise

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def summaries(self) -> list[IndexSummary]:
        with self._lock:
            return [e.current.summary for e in self._entries.values()]

    # -- leases ----------------------------------------------------------------------------------------
    def acquire(self, name: str) -> Generation:
        """The generation to use for one request (release it with :meth:`release`); checks for a newer one."""
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(self._entries) or "none"
            raise InputError(f"unknown index {name!r}; this server has: {known}")
        self._maybe_check(entry)
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
    def _maybe_check(self, entry: _Entry) -> None:
        now = time.monotonic()
        if now - entry.checked < self.check_interval_s or entry.reloading is not None:
            return
        entry.checked = now
        signature = _manifest_signature(entry.path)
        if signature != entry.signature:
            self.reload(entry.name)

    def reload(self, name: str) -> Future:
        """Open the newest committed generation of ``name`` in the background and swap it in when it is ready.

        Returns a future that resolves to the generation served afterwards (the same one when nothing
        newer was committed). Concurrent calls share one reload.
        """
        entry = self._entries[name]
        with self._lock:
            if entry.reloading is not None:
                return entry.reloading
            future: Future = Future()
            entry.reloading = future
        threading.Thread(target=self._reload, args=(entry, future), name=f"koembed-reload-{name}",
                         daemon=True).start()
        return future

    def _reload(self, entry: _Entry, future: Future) -> None:
        signature = _manifest_signature(entry.path)
        try:
            fresh = _open_on_worker(entry.name, entry.path)
        except BaseException as exc:
            log.warning("index %s: a newer generation could not be opened yet (%s); still serving generation %d",
                        entry.name, exc, entry.current.generation)
            with self._lock:
                entry.reloading = None
            future.set_result(entry.current)
            return
        old = None
        with self._lock:
            # A newer generation, or a directory rebuilt from scratch (its generations count anew).
            newer = (fresh.generation > entry.current.generation
                     or fresh.summary.manifest.created != entry.current.summary.manifest.created)
            if self._closed or not newer:
                old, served = fresh, entry.current  # nothing newer: drop what was opened
            else:
                old, entry.current, served = entry.current, fresh, fresh
                log.info("index %s: now serving generation %d (%d documents)", entry.name, fresh.generation,
                         fresh.summary.count)
            entry.signature = signature
            entry.reloading = None
            old._retired = True
            close = old._refs == 0
        if close:
            old._close()
        future.set_result(served)

    def close(self) -> None:
        """Close every generation once its requests finish (call after the server stopped taking requests)."""
        with self._lock:
            self._closed = True
            gens = [e.current for e in self._entries.values()]
            for g in gens:
                g._retired = True
            idle = [g for g in gens if g._refs == 0]
        for g in idle:
            g._close()
