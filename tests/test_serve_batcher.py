"""The encode micro-batcher and the index worker: waiting requests share one call, each gets its own rows back."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from koembed.server.batcher import EncodeBatcher


class FakeEncoder:
    """Vector of a text = [len(text), first char code, 0...]; records each encode call; can block or fail."""

    dim = 4
    max_seq_length = 5

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def encode(self, texts, batch_size=64):
        self.entered.set()
        self.gate.wait(10)
        self.calls.append(list(texts))
        if any(t == "boom" for t in texts):
            raise RuntimeError("model failure")
        out = np.zeros((len(texts), self.dim), np.float32)
        out[:, 0] = [len(t) for t in texts]
        out[:, 1] = [ord(t[0]) for t in texts]
        return out

    def encode_with_stats(self, texts, batch_size=64, prompt=None):
        from koembed.encoder import EncodeStats, Encoding

        texts = [(prompt or "") + t for t in texts]
        lengths = np.array([len(t) + 2 for t in texts])  # as if each character were a token, plus [CLS]/[SEP]
        return Encoding(self.encode(texts, batch_size), EncodeStats(texts=len(texts)), lengths, prompt or "")


def test_waiting_requests_share_one_forward_pass_and_get_their_own_rows():
    enc = FakeEncoder()
    b = EncodeBatcher(enc, max_batch_texts=100)
    try:
        enc.gate.clear()
        first = b.submit(["가"])
        assert enc.entered.wait(5)  # the worker is busy with the first request
        later = [b.submit([f"{chr(0xAC00 + i)}" * (i + 1), "x" * (i + 1)]) for i in range(10)]
        enc.gate.set()
        assert first.result(5).vectors[0, 1] == ord("가")
        for i, f in enumerate(later):
            v = f.result(5).vectors
            assert v.shape == (2, 4)
            assert v[0, 0] == i + 1 and v[0, 1] == 0xAC00 + i and v[1, 1] == ord("x")
        assert [len(c) for c in enc.calls] == [1, 20]  # the ten waiting requests went in one call
        assert b.batches == 2 and b.texts == 21
    finally:
        b.close()


def test_a_batch_stops_growing_at_max_batch_texts():
    enc = FakeEncoder()
    b = EncodeBatcher(enc, max_batch_texts=6)
    try:
        enc.gate.clear()
        b.submit(["a"])
        assert enc.entered.wait(5)
        futures = [b.submit(["b", "c"]) for _ in range(6)]
        enc.gate.set()
        for f in futures:
            f.result(5)
        assert [len(c) for c in enc.calls] == [1, 6, 6]
    finally:
        b.close()


def test_token_counts_are_per_request_and_capped():
    enc = FakeEncoder()
    b = EncodeBatcher(enc)
    try:
        out = b.submit(["ab", "abcdef"], count_tokens=True).result(5)
        # lengths 4 and 8; max_seq_length 5 caps the second (truncated) at 5
        assert (out.tokens, out.truncated) == (9, 1)
        plain = b.submit(["ab"]).result(5)
        assert (plain.tokens, plain.truncated) == (0, 0)
    finally:
        b.close()


def test_a_failing_request_fails_alone_and_the_worker_lives_on():
    enc = FakeEncoder()
    b = EncodeBatcher(enc)
    try:
        enc.gate.clear()
        b.submit(["a"])
        assert enc.entered.wait(5)
        before, bad, after = b.submit(["x", "yy"], count_tokens=True), b.submit(["boom"]), b.submit(["b"])
        enc.gate.set()
        with pytest.raises(RuntimeError, match="model failure"):
            bad.result(5)
        # The requests that shared the failing batch get their own rows (and token counts) all the same.
        got = before.result(5)
        assert got.vectors[:, 1].tolist() == [ord("x"), ord("y")] and got.tokens == 3 + 4
        assert after.result(5).vectors[0, 1] == ord("b")
        assert ["x", "yy", "boom", "b"] in enc.calls  # they did share it: the failure came from a mixed batch
        assert b.submit(["c"]).result(5).vectors[0, 1] == ord("c")
    finally:
        b.close()


def test_cancelled_requests_are_skipped_and_close_drains_the_queue():
    enc = FakeEncoder()
    b = EncodeBatcher(enc)  # one worker, blocked below: the queued requests wait
    enc.gate.clear()
    b.submit(["a"])
    assert enc.entered.wait(5)
    cancelled = b.submit(["zzz"])
    assert cancelled.cancel()
    kept = b.submit(["k"])
    closer = threading.Thread(target=b.close)
    closer.start()
    time.sleep(0.05)
    enc.gate.set()
    closer.join(10)
    assert kept.done() and kept.result().vectors[0, 1] == ord("k")
    assert all("zzz" not in c for c in enc.calls)
    with pytest.raises(RuntimeError, match="shut down"):
        b.submit(["late"])


# -- the index worker: searches that ask the same thing share one call ------------------------------------------
def _blocked_worker():
    from koembed.server.index_worker import IndexWorker

    worker, gate, started = IndexWorker("test"), threading.Event(), threading.Event()
    worker.call(lambda: (started.set(), gate.wait(10)))
    assert started.wait(5)
    return worker, gate


def test_waiting_searches_with_the_same_key_are_merged_and_split_back():
    worker, gate = _blocked_worker()
    calls: list[list[str]] = []

    def run(queries, vectors):
        calls.append(list(queries))
        assert vectors.shape == (len(queries), 2) and list(vectors[:, 0]) == [len(q) for q in queries]
        return "dense", [f"hits of {q}" for q in queries]

    def vec(qs):
        return np.array([[len(q), 0] for q in qs], dtype=np.float32)

    try:
        a = [worker.search("k=10", [f"a{i}", f"a{i}!"], vec([f"a{i}", f"a{i}!"]), run) for i in range(4)]
        b = worker.search("k=5", ["b"], vec(["b"]), run)
        order: list[str] = []
        after = worker.call(lambda: order.append("call"))
        late = worker.search("k=10", ["z"], vec(["z"]), run)  # queued behind the call: not merged across it
        gate.set()
        for i, f in enumerate(a):
            assert f.result(5) == ("dense", [f"hits of a{i}", f"hits of a{i}!"])
        assert b.result(5) == ("dense", ["hits of b"]) and late.result(5) == ("dense", ["hits of z"])
        after.result(5)
        assert calls == [["a0", "a0!", "a1", "a1!", "a2", "a2!", "a3", "a3!"], ["b"], ["z"]]
    finally:
        worker.stop()


def test_a_failing_merged_search_fails_each_of_its_requests():
    worker, gate = _blocked_worker()

    def run(queries, vectors):
        raise ValueError("bad filter")

    try:
        futures = [worker.search("same", ["q"], None, run) for _ in range(3)]
        cancelled = worker.search("same", ["x"], None, run)
        assert cancelled.cancel()
        gate.set()
        for f in futures:
            with pytest.raises(ValueError, match="bad filter"):
                f.result(5)
        assert worker.call(lambda: 42).result(5) == 42  # the worker lives on
    finally:
        worker.stop()


def test_requests_with_other_prompts_get_their_own_forward_pass_and_token_counts():
    enc = FakeEncoder()
    b = EncodeBatcher(enc, max_batch_texts=100)
    try:
        enc.gate.clear()
        first = b.submit(["가"])
        assert enc.entered.wait(5)  # the worker is busy: the next three requests queue up together
        queries = [b.submit(["나"], prompt="q: ", count_tokens=True), b.submit(["다라"], prompt="q: ")]
        document = b.submit(["마"], prompt="d: ", count_tokens=True)
        enc.gate.set()
        first.result(5)
        assert queries[0].result(5).vectors[0, 0] == len("q: 나") and document.result(5).vectors[0, 0] == len("d: 마")
        assert enc.calls == [["가"], ["q: 나", "q: 다라"], ["d: 마"]]  # one forward pass per prompt
        # Token counts come with the vectors (one tokenisation): "q: 나" is 4 + 2 tokens, cut to max_seq_length 5.
        assert (queries[0].result(5).tokens, queries[0].result(5).truncated) == (5, 1)
    finally:
        b.close()
