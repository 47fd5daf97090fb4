"""One thread per served index generation: it opens the index, runs its searches in arrival order, closes it.

SQLite connections belong to the thread that opened them, hence one thread per generation. Searches
that queue behind a running one and ask for the same thing (same k, filters, mode and mode options) are
merged into one search call, and each request gets its own rows back: a flat index reads every vector
once per call, so one call for eight queries reads them once instead of eight times (FAISS turns a batch
into a matrix product), and the per-call costs (selectors, the SQLite fetch) are paid once.

FAISS runs single-threaded on this thread (the OpenMP setting is per thread): it parallelises a batch
over its queries, and a server's batches are small, so more threads would mostly spin next to the encoder.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

# Queries one merged search may carry (a request's own queries are never split).
MAX_MERGED_QUERIES = 256

# run(queries, vectors or None) -> (mode, one result per query)
SearchRun = Callable[[list[str], np.ndarray | None], tuple[str, list[Any]]]


@dataclass
class _Call:
    fn: Callable[[], Any]
    future: Future


@dataclass
class _Search:
    key: Hashable  # searches with equal keys give the same answer per query whether run alone or merged
    queries: list[str]
    vectors: np.ndarray | None
    run: SearchRun
    future: Future


_STOP = object()


class IndexWorker:
    """A thread running calls and (merged) searches in the order they were submitted."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=f"koembed-index-{name}", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` on the worker thread."""
        future: Future = Future()
        self._queue.put(_Call(lambda: fn(*args), future))
        return future

    def search(self, key: Hashable, queries: list[str], vectors: np.ndarray | None, run: SearchRun) -> Future:
        """``run(queries, vectors)`` on the worker thread, possibly merged with other searches of the same ``key``;
        resolves to ``(mode, results)`` with one result per query of this request."""
        future: Future = Future()
        self._queue.put(_Search(key, list(queries), vectors, run, future))
        return future

    def stop(self) -> None:
        """Stop once the jobs submitted so far are done (returns at once)."""
        self._queue.put(_STOP)

    # -- worker ----------------------------------------------------------------------------------------------
    def _work(self) -> None:
        import faiss

        faiss.omp_set_num_threads(1)
        pending: deque = deque()
        while True:
            item = pending.popleft() if pending else self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, _Call):
                self._run_call(item)
                continue
            while True:  # everything queued now may join this search
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            group, n = [item], len(item.queries)
            for other in list(pending):
                fits = n + len(getattr(other, "queries", ())) <= MAX_MERGED_QUERIES
                if isinstance(other, _Search) and other.key == item.key and fits:
                    group.append(other)
                    n += len(other.queries)
                    pending.remove(other)
                elif other is _STOP or isinstance(other, _Call):
                    break  # nothing is merged across a call or the stop: they keep their place
            self._run_searches([s for s in group if s.future.set_running_or_notify_cancel()])

    @staticmethod
    def _run_call(call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        try:
            call.future.set_result(call.fn())
        except BaseException as exc:  # handed to the caller
            call.future.set_exception(exc)

    @staticmethod
    def _run_searches(group: list[_Search]) -> None:
        if not group:
            return
        queries = [q for s in group for q in s.queries]
        vectors = None if group[0].vectors is None else np.vstack([s.vectors for s in group])
        try:
            mode, results = group[0].run(queries, vectors)
        except BaseException as exc:  # every merged request gets the error (they asked the same)
            for s in group:
                s.future.set_exception(exc)
            return
        start = 0
        for s in group:
            s.future.set_result((mode, results[start:start + len(s.queries)]))
            start += len(s.queries)
