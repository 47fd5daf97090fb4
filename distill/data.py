"""A streamed, packed, sharded token stream for pretraining: corpus files or Hub datasets -> fixed-length segments.

Sources are read one record at a time (:func:`koembed.corpus.iter_records` for txt/jsonl/tsv/csv/
parquet files; ``datasets.load_dataset(..., streaming=True)`` for a Hub name such as ``owner/name`` or
``hf:name[:config][@split]``), tokenised in small batches with the teacher's fast tokenizer, joined
with ``[SEP]`` and cut into segments ``[CLS] tokens... [SEP]`` of exactly ``max_length`` tokens; the
stream loops over the sources (epochs) for as long as training asks, so no segment is ever padded
and nothing is held in memory beyond one tokenised batch.

Sharding (``shard``), over blocks of ``TOKENIZE_BATCH`` consecutive records:

- ``documents`` (default): with at least ``W`` sources, process ``r`` of ``W`` reads only sources
  ``r, r + W, ...`` (split a big corpus into many files: nothing is read twice); with fewer sources,
  it tokenises and packs only blocks ``j`` with ``j % W == r`` and reads, without tokenising, the
  others' records. The batches depend on ``W``, so resuming needs the same number of processes.
- ``stream``: every process tokenises the whole stream and keeps its rows of each global batch, so
  the global batch (and the loss) is the same for any ``W`` and a run may resume on a different
  ``W``; the price is ``W`` times the tokenisation (fine on one node, not across many).

Tokenisation runs on a background thread (:func:`prefetch`; the Rust tokenizer releases the GIL).

Exact resume: each batch carries the :class:`StreamState` after it (source, records consumed,
pending tokens); a checkpoint stores it and :class:`PackedStream` restarts from it, skipping records
without tokenising them.
"""

from __future__ import annotations

import codecs
import itertools
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from koembed.errors import InputError

TOKENIZE_BATCH = 256
SHARD_MODES = ("documents", "stream")
_HUB_NAME = re.compile(r"^[\w.-]+/[\w.-]+$")
_CHUNK = 8 << 20


@dataclass
class StreamState:
    epoch: int = 0
    source: int = 0  # index of the source being read
    record: int = 0  # records of that source already tokenised into ``pending``
    pending: list[int] = field(default_factory=list)  # tokens not yet placed in a segment
    segments: int = 0  # global segments produced so far

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StreamState:
        return cls(**d)


def is_hub_source(source: str) -> bool:
    return not Path(source).exists() and (source.startswith("hf:") or bool(_HUB_NAME.match(source)))


def check_sources(sources: list[str], text_field: str = "text") -> None:
    """Fail before training on a missing, empty or non-UTF-8 corpus file, naming the file and line."""
    from koembed.corpus import detect_format, iter_records

    if not sources:
        raise InputError("no corpus given; pass --corpus PATH [PATH...]")
    for src in sources:
        if is_hub_source(src):
            continue
        path = Path(src)
        if not path.is_file():
            raise InputError(f"{src}: no such corpus file (or a Hub dataset name like owner/name or hf:name)")
        fmt = detect_format(path)
        if fmt != "parquet":
            _check_utf8(path)
        if next(iter_records(path, text_field=text_field), None) is None:
            raise InputError(f"{src}: the corpus file has no non-empty document; give a file with text")


def _check_utf8(path: Path) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line = lines + exc.object[: exc.start].count(b"\n") + 1
                raise InputError(f"{path}: line {line}: not valid UTF-8 ({exc.reason}); re-encode the file as "
                                 "UTF-8 (e.g. iconv -f cp949 -t utf-8)") from None
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError(f"{path}: line {lines + 1}: not valid UTF-8 (truncated character at the end)") from None


def iter_source_texts(source: str, text_field: str = "text", skip: int = 0) -> Iterator[str]:
    """The texts of one source after its first ``skip`` records."""
    if is_hub_source(source):
        yield from _hub_texts(source, text_field, skip)
        return
    from koembed.corpus import iter_records

    for i, rec in enumerate(iter_records(source, text_field=text_field)):
        if i >= skip:
            yield rec.text


def _hub_texts(source: str, text_field: str, skip: int) -> Iterator[str]:
    from datasets import load_dataset

    from koembed.text import normalize

    spec = source.removeprefix("hf:")
    spec, _, split = spec.partition("@")
    name, _, config = spec.partition(":")
    try:
        ds = load_dataset(name, config or None, split=split or "train", streaming=True)
    except Exception as exc:  # datasets raises many types for a bad name or no network
        raise InputError(f"{source}: cannot stream the Hub dataset ({str(exc).splitlines()[0][:160]})") from None
    if skip:
        ds = ds.skip(skip)
    for row in ds:
        text = row.get(text_field)
        if not isinstance(text, str):
            raise InputError(f"{source}: rows have no string field {text_field!r}; pass --text-field")
        text = normalize(text)
        if text:
            yield text


class PackedStream:
    """Iterate ``(input_ids, attention_mask, state)`` micro-batches of this process's rows, forever."""

    def __init__(self, sources: list[str], tokenizer: Any, max_length: int = 128, batch_size: int = 8,
                 rank: int = 0, world_size: int = 1, text_field: str = "text", state: StreamState | None = None,
                 shard: str = "documents"):
        if shard not in SHARD_MODES:
            raise InputError(f"--shard {shard!r}: choose one of {', '.join(SHARD_MODES)}")
        if max_length < 8:
            raise InputError(f"--max-length {max_length} is too short; use at least 8 (128 is usual)")
        self.sources = list(sources)
        self.tok = tokenizer.backend_tokenizer
        self.cls_id, self.sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.max_length = max_length
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.text_field = text_field
        self.state = state or StreamState()
        self.shard = shard
        self._block_rank, self._block_world = rank, world_size
        if shard == "documents" and world_size > 1 and len(self.sources) >= world_size:
            self.sources = self.sources[rank::world_size]
            self._block_rank, self._block_world = 0, 1

    def _owns(self, record: int) -> bool:
        return self.shard == "stream" or (record // TOKENIZE_BATCH) % self._block_world == self._block_rank

    def _segments(self) -> Iterator[tuple[list[int], StreamState]]:
        st = StreamState.from_dict(self.state.to_dict())
        body = self.max_length - 2
        pending = list(st.pending)
        # Only a pass that starts at the very beginning can prove the corpus gives this process nothing.
        full_pass, mark = st.source == 0 and st.record == 0, st.segments
        while True:
            texts = iter_source_texts(self.sources[st.source], self.text_field, skip=st.record)
            produced = False
            while True:
                batch = list(itertools.islice(texts, TOKENIZE_BATCH))
                if not batch:
                    break
                produced = True
                if not self._owns(st.record):
                    st.record += len(batch)
                    continue
                for enc in self.tok.encode_batch(batch, add_special_tokens=False):
                    pending.extend(enc.ids)
                    pending.append(self.sep_id)
                st.record += len(batch)
                while len(pending) >= body:
                    seg, pending = pending[:body], pending[body:]
                    st.segments += 1
                    st.pending = pending
                    yield [self.cls_id, *seg, self.sep_id], st
            if not produced and st.record == 0:
                raise InputError(f"{self.sources[st.source]}: no documents to read")
            st.source, st.record = st.source + 1, 0
            if st.source == len(self.sources):
                if full_pass and mark == st.segments:
                    raise InputError(f"the corpus is too small: a whole pass gave process {self.rank} of "
                                     f"{self.world_size} no {self.max_length}-token segment; add text, lower "
                                     "--max-length or use --shard stream")
                st.source, st.epoch = 0, st.epoch + 1
                full_pass, mark = True, st.segments

    def __iter__(self) -> Iterator[tuple[Any, Any, StreamState]]:
        import torch

        local = self.shard == "documents"
        global_batch = self.batch_size * (1 if local else self.world_size)
        lo = 0 if local else self.rank * self.batch_size
        hi = lo + self.batch_size
        rows: list[list[int]] = []
        for seg, st in self._segments():
            rows.append(seg)
            if len(rows) == global_batch:
                ids = torch.tensor(rows[lo:hi], dtype=torch.long)
                snapshot = StreamState.from_dict({**st.to_dict(), "pending": list(st.pending)})
                yield ids, torch.ones_like(ids), snapshot
                rows = []


class _SubStreams:
    """The ``IterableDataset`` of DataLoader workers: worker ``k`` serves sub-stream ``(k + offset) % n``.

    Rotating by ``offset`` makes the DataLoader's round-robin over workers continue, after a resume,
    with the sub-stream whose turn was next, so the batch order is exactly that of an unbroken run.
    """

    def __init__(self, args: dict[str, Any], states: list[StreamState], offset: int):
        self.args, self.states, self.offset = args, states, offset

    def __iter__(self):
        import torch

        n = len(self.states)
        sub = (torch.utils.data.get_worker_info().id + self.offset) % n
        a = self.args
        stream = PackedStream(a["sources"], a["tokenizer"], a["max_length"], a["batch_size"], a["rank"] * n + sub,
                              a["world_size"] * n, a["text_field"], self.states[sub], a["shard"])
        for ids, mask, st in stream:
            yield ids, mask, st.to_dict(), sub


def _substreams_dataset_class() -> type:
    """``SubStreamsDataset``, built on first use so that importing this module does not import torch.

    It becomes a module attribute (not a class made anew in each :func:`open_batches`) so that pickle
    finds it by name: DataLoader workers started with ``spawn`` or ``forkserver`` get the dataset pickled.
    """
    cls = globals().get("SubStreamsDataset")
    if cls is None:
        import torch

        cls = type("SubStreamsDataset", (_SubStreams, torch.utils.data.IterableDataset), {"__module__": __name__})
        globals()["SubStreamsDataset"] = cls
    return cls


def __getattr__(name: str) -> Any:
    if name == "SubStreamsDataset":
        return _substreams_dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_batches(sources: list[str], tokenizer: Any, max_length: int, batch_size: int, rank: int = 0,
                 world_size: int = 1, text_field: str = "text", shard: str = "documents", workers: int = 0,
                 position: dict[str, Any] | None = None):
    """This process's micro-batches ``(ids, mask, state)`` and a callable giving the data position after the last.

    ``workers`` > 0 runs that many DataLoader worker processes, each tokenising and packing its own
    sub-shard (documents sharding over ``world_size * workers`` sub-streams); 0 uses one background
    thread. The position (``{"streams": [state per sub-stream], "next": sub-stream due next}``) goes
    into checkpoints and back in as ``position`` to resume exactly.
    """
    import torch

    n = max(1, workers)
    if workers and shard == "stream":
        raise InputError("--data-workers needs --shard documents (under stream sharding every worker would "
                         "tokenise the whole stream)")
    position = position or {"streams": [StreamState().to_dict() for _ in range(n)], "next": 0}
    if len(position["streams"]) != n:
        raise InputError(f"--resume: the checkpoint was made with {len(position['streams'])} data stream(s) per "
                         f"process; resume with --data-workers {len(position['streams']) if workers else 0} "
                         "(or the same as before)")
    states = [StreamState.from_dict(d) for d in position["streams"]]
    tracker = {"streams": [st.to_dict() for st in states], "next": position["next"]}
    if workers:
        args = dict(sources=sources, tokenizer=tokenizer, max_length=max_length, batch_size=batch_size, rank=rank,
                    world_size=world_size, text_field=text_field, shard=shard)
        dataset = _substreams_dataset_class()(args, states, position["next"])
        source = iter(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers, prefetch_factor=4))
    else:
        stream = PackedStream(sources, tokenizer, max_length, batch_size, rank, world_size, text_field, states[0],
                              shard)
        source = prefetch((ids, mask, st.to_dict(), 0) for ids, mask, st in stream)

    def batches() -> Iterator[tuple[Any, Any, StreamState]]:
        try:
            for ids, mask, st, sub in source:
                tracker["streams"][sub] = st
                tracker["next"] = (sub + 1) % n
                yield ids, mask, StreamState.from_dict(st)
        finally:  # closing the batches stops (and waits for) the tokenising thread
            close = getattr(source, "close", None)
            if close is not None:
                close()

    return batches(), lambda: {"streams": list(tracker["streams"]), "next": tracker["next"]}


PREFETCH_THREAD = "distill-prefetch"
PREFETCH_JOIN_S = 30.0  # the thread stops after the item it is making (a batch: milliseconds)


def prefetch(iterable: Iterator, depth: int = 4) -> Iterator:
    """Run ``iterable`` on a daemon thread, ``depth`` items ahead; its exceptions re-raise here.

    Closing the returned generator (or exhausting it) stops the thread and waits for it.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(entry: tuple[Any, BaseException | None]) -> bool:
        """Queue ``entry`` unless the consumer has stopped (then False): never blocks past a stop."""
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in iterable:
                if not offer((item, None)):
                    return
            offer((done, None))
        except BaseException as exc:  # handed to the consumer
            offer((done, exc))

    thread = threading.Thread(target=work, name=PREFETCH_THREAD, daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        # Wait for it: a thread still building tensors while the interpreter shuts down can abort the process.
        thread.join(PREFETCH_JOIN_S)
