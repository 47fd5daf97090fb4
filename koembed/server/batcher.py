"""Micro-batching of encode requests: concurrent requests share forward passes on worker threads.

One HTTP request usually carries a few texts, and a forward pass over a few texts wastes most of what
the CPU could do (per-call overhead, small matrix products). Requests are queued; a worker takes
everything queued (up to ``max_batch_texts``) and encodes it in one :meth:`KoMiniLMEncoder.encode`
call, which sorts the texts by length so that padding stays small. While a worker is busy, new
requests gather in the queue, so batches grow with the load and no request waits for a timer.

A batch that fails is run again request by request, so that one request's failure (text the encoder
cannot take, say) fails that request alone and never the others it happened to share a batch with.

Only the worker threads call the encoder (torch and ONNX Runtime release the GIL inside a forward
pass, so the event loop keeps serving meanwhile).
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from koembed.errors import KoembedError

log = logging.getLogger("koembed.server")


@dataclass
class Encoded:
    """One request's share of a micro-batch: its vectors, and its token counts when asked for."""

    vectors: np.ndarray  # float32 (n, dim), L2-normalised, row i for text i
    tokens: int = 0  # tokens the model saw (each text capped at max_seq_length)
    truncated: int = 0  # texts longer than max_seq_length tokens, cut to it


@dataclass
class _Job:
    texts: list[str]
    count_tokens: bool
    future: Future
    prompt: str | None = None  # None: the model's default prompt


_STOP = object()


class EncodeBatcher:
    """Run ``encoder.encode`` for queued requests in micro-batches on ``workers`` threads."""

    def __init__(self, encoder: Any, *, batch_size: int = 64, max_batch_texts: int = 512, workers: int = 1) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self.max_batch_texts = max_batch_texts
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self.batches = 0  # forward-pass groups run, and the texts in them: batch size = texts / batches
        self.texts = 0
        self._threads = [threading.Thread(target=self._work, name=f"koembed-encode-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, texts: list[str], *, count_tokens: bool = False, prompt: str | None = None) -> Future:
        """Queue ``texts`` (to be encoded with ``prompt``, None: the model's default); the future resolves to an
        :class:`Encoded` (or the encoder's exception). Requests with the same prompt share forward passes."""
        if self._closed:
            raise RuntimeError("the encoder is shut down")
        future: Future = Future()
        self._queue.put(_Job(list(texts), count_tokens, future, prompt))
        return future

    def close(self, timeout: float | None = 30.0) -> None:
        """Finish what is queued, then stop the workers."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        for t in self._threads:
            t.join(timeout)

    # -- worker ----------------------------------------------------------------------------------------
    def _work(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is _STOP:
                break
            jobs, n = [item], len(item.texts)
            while n < self.max_batch_texts:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                jobs.append(item)
                n += len(item.texts)
            ready = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            for prompt in dict.fromkeys(j.prompt for j in ready):  # texts share a forward pass with their prompt
                self._run([j for j in ready if j.prompt == prompt])
        self._queue.put(_STOP)  # let the other workers see it too

    def _run(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        texts = [t for j in jobs for t in j.texts]
        try:
            vectors, lengths = self._encode(texts, jobs[0].prompt)
        except Exception as exc:
            if len(jobs) > 1:
                # One request's texts must not fail the others that shared its batch: each runs alone, so
                # only the request that fails again gets the error.
                log.warning("a batch of %d requests failed (%s); running each alone", len(jobs), _brief(exc))
                for j in jobs:
                    self._run([j])
                return
            self._fail(jobs[0], exc)
            return
        except BaseException as exc:  # not the request's doing: no retry; the waiting requests are told
            for j in jobs:
                j.future.set_exception(exc)
            return
        self.batches += 1
        self.texts += len(texts)
        cap = self.encoder.max_seq_length
        start = 0
        for j in jobs:
            end = start + len(j.texts)
            out = Encoded(vectors[start:end])
            if j.count_tokens and lengths is not None:
                part = lengths[start:end]
                out.tokens = int(np.minimum(part, cap).sum())
                out.truncated = int((part > cap).sum())
            j.future.set_result(out)
            start = end

    def _encode(self, texts: list[str], prompt: str | None) -> tuple[np.ndarray, np.ndarray]:
        # One tokenisation: the encoder returns each text's token count with its vectors.
        done = self.encoder.encode_with_stats(texts, batch_size=self.batch_size, prompt=prompt)
        return done.vectors, done.lengths

    @staticmethod
    def _fail(job: _Job, exc: Exception) -> None:
        # One line: the request's answer carries the error, and whoever awaits it logs a traceback if it is a bug.
        level = logging.INFO if isinstance(exc, KoembedError) else logging.WARNING
        log.log(level, "an encode request of %d texts failed: %s", len(job.texts), _brief(exc))
        job.future.set_exception(exc)


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
