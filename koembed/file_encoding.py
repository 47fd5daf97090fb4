"""Encode a text file (one text per line), or records, into a vector file, streaming in constant memory.

The input is read chunk by chunk (:func:`koembed.text.iter_lines`), each chunk is encoded and
appended to the output (:mod:`koembed.writers`), so memory does not grow with the number of lines.
Rows stay aligned with lines: empty and whitespace-only lines are encoded too, and counted. A ``.txt``
that looks like a table (:mod:`koembed.input_files`) is refused unless ``fmt="txt"`` is given.

Records: a ``.jsonl``/``.json``/``.csv``/``.tsv``/``.parquet`` file, a folder or a pattern (or any input with
``fmt`` other than txt) is read as ``koembed index`` reads it (:func:`koembed.corpus.iter_records`: the
text field or column, ids, metadata; empty and, with ``skip_bad``, bad records skipped and counted), and
the ``.jsonl``/``.parquet`` outputs carry each record's id, line and metadata.

With ``workers=N`` chunks go to N processes, each with its own encoder and ``cores // N`` threads;
results are written in input order, so the output equals the single-process output.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from koembed.atomic import atomic_write_text
from koembed.backends import AUTO, BACKEND_CHOICES, resolve_backend
from koembed.corpus import CorpusStats, Record, detect_format, iter_records
from koembed.encoder import EncodeStats, KoMiniLMEncoder
from koembed.errors import InputError, WriteError
from koembed.input_files import TABLE_PROBE_LINES, is_many, refuse_table
from koembed.model_source import resolve_model
from koembed.system import cpu_count
from koembed.text import LineStats, iter_lines
from koembed.writers import STDOUT, open_writer, output_format

DEFAULT_CHUNK_SIZE = 1024
Chunk = tuple[int, list[str]]  # (first 1-based line number, texts)
Encoded = tuple[int, list[str], np.ndarray, EncodeStats]


@dataclass
class EncodeFileConfig:
    """Settings of one ``encode_file`` run; saved as JSON beside the output (``OUT.json``)."""

    input: str
    output: str
    model: str | None = None  # Hub id or local folder; None = the embedded default
    batch_size: int = 64
    device: str | None = None
    max_seq_length: int | None = None
    normalize: bool = True
    backend: str = AUTO  # recorded in OUT.json as the backend it resolved to
    errors: str = "strict"  # "strict": stop at the first non-UTF-8 line; "replace": U+FFFD and carry on
    chunk_size: int = DEFAULT_CHUNK_SIZE  # lines read, encoded and written at a time
    workers: int = 1
    # Records (see the module docstring); fmt None: from the suffix, a file of unknown suffix is one text a line.
    fmt: str | None = None
    text_field: str = "text"
    id_field: str = "id"
    metadata_field: str = "metadata"
    skip_bad: bool = False
    prompt_name: str | None = None  # one of the model's prompts (query, document); None: the model's default

    def reads_records(self) -> bool:
        """Whether the input is read as records (fields, ids) rather than one text a line."""
        if self.fmt is not None:
            detect_format(self.input, self.fmt)  # an unknown --format is refused here
            return self.fmt != "txt"
        if self.input == STDOUT:
            return False
        if is_many(self.input):
            return True
        try:
            return detect_format(self.input) != "txt"
        except InputError:  # a suffix koembed does not know: one text a line, as always
            return False

    def validate(self) -> None:
        for name in ("batch_size", "chunk_size", "workers"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.max_seq_length is not None and self.max_seq_length < 2:
            raise InputError(f"max_seq_length must be >= 2 (room for [CLS] and [SEP]), not {self.max_seq_length}")
        if self.errors not in ("strict", "replace"):
            raise InputError(f"errors must be 'strict' or 'replace', not {self.errors!r}")
        if self.backend not in BACKEND_CHOICES:
            raise InputError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKEND_CHOICES)}")


@dataclass
class EncodeFileReport:
    input: str
    output: str
    texts: int
    dim: int
    empty: int
    truncated: int
    replaced: int
    seconds: float  # reading + encoding + writing, after the model was loaded
    texts_per_s: float
    model: str
    fingerprint: str
    max_seq_length: int = 0
    load_seconds: float = 0.0
    workers: int = 1
    unknown: int = 0  # texts with words the model cannot read ([UNK] tokens)
    records: bool = False  # read as records: empty ones were skipped (not encoded), bad ones too with skip_bad
    bad: int = 0
    bad_locations: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        if self.records:
            skipped = f"{self.empty} empty records skipped"
            if self.bad:
                skipped += f", {self.bad} bad skipped (first: {'; '.join(self.bad_locations)})"
        else:
            skipped = f"{self.empty} empty"
        return (
            f"encoded {self.texts} texts (dim {self.dim}) in {self.seconds:.2f} s, {self.texts_per_s:.1f} texts/s; "
            f"{skipped}, {self.truncated} truncated to {self.max_seq_length} tokens, "
            f"{self.unknown} with unreadable words ([UNK]), "
            f"{self.replaced} with bad UTF-8 replaced; model loaded in {self.load_seconds:.2f} s -> {self.output}"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode_file(
    input: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    model: str | os.PathLike | KoMiniLMEncoder | None = None,
    batch_size: int = 64,
    device: str | None = None,
    max_seq_length: int | None = None,
    normalize: bool = True,
    backend: str = AUTO,
    errors: str = "strict",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    workers: int = 1,
    show_progress: bool | None = None,
    **reading: Any,
) -> EncodeFileReport:
    """Encode each line of ``input`` (a UTF-8 file or ``-`` for stdin), or its records, into ``output``.

    ``reading`` takes the record options of :class:`EncodeFileConfig` (``fmt``, ``text_field``, ``id_field``,
    ``metadata_field``, ``skip_bad``).

    ``output`` ends in ``.npy`` (default: ``INPUT.npy``), ``.jsonl`` or ``.parquet``, or is ``-`` (JSONL on
    stdout). ``model`` is a model name/path or an already loaded :class:`KoMiniLMEncoder` (then
    ``device``, ``max_seq_length``, ``normalize`` and ``backend`` are the encoder's). The output file
    appears only when complete; the run's config and report are saved beside it as ``OUT.json``.
    ``show_progress=None`` shows a bar when stderr is a terminal.
    """
    encoder = model if isinstance(model, KoMiniLMEncoder) else None
    if encoder is not None:
        max_seq_length, normalize, backend = encoder.max_seq_length, encoder.normalize, encoder.backend_name
    config = EncodeFileConfig(
        input=str(input), output=default_output(input, output),
        model=encoder.model_name if encoder is not None else (None if model is None else str(model)),
        batch_size=batch_size, device=device, max_seq_length=max_seq_length, normalize=normalize,
        backend=backend, errors=errors, chunk_size=chunk_size, workers=workers, **reading,
    )
    return run_encode_file(config, encoder=encoder, show_progress=show_progress)


def run_encode_file(
    config: EncodeFileConfig, encoder: KoMiniLMEncoder | None = None, show_progress: bool | None = None
) -> EncodeFileReport:
    """Run ``config``; the cheap checks (paths, suffix, options, first chunk of input) come before any model load."""
    config.validate()
    _check_paths(config)
    line_stats = LineStats()
    corpus_stats = CorpusStats()
    records = config.reads_records()
    pending: deque[list[Record]] = deque()  # the records of each chunk handed to the engine, in order
    if records:
        chunks = _record_chunks(config, corpus_stats, pending)
    else:
        chunks = _chunks(iter_lines(config.input, errors=config.errors, stats=line_stats), config.chunk_size)
    first = next(chunks, None)  # fail on a missing/unreadable input before paying for the model
    if first is not None and not records and config.fmt is None:
        refuse_table("<stdin>" if config.input == STDOUT else config.input, first[1][:TABLE_PROBE_LINES])
    chunks = itertools.chain([first] if first is not None else [], chunks)

    load_start = time.perf_counter()
    engine: _Serial | _Parallel
    if config.workers > 1:
        engine = _Parallel(config, encoder)
    else:
        engine = _Serial(encoder or KoMiniLMEncoder(
            config.model, device=config.device, max_seq_length=config.max_seq_length,
            normalize=config.normalize, backend=config.backend,
        ), config.batch_size, config.prompt_name)
        config.backend = engine.encoder.backend_name
    try:
        load_seconds = time.perf_counter() - load_start
        start = time.perf_counter()
        totals = EncodeStats()
        bar = _progress(config.input, show_progress, records)
        try:
            with open_writer(config.output, engine.dim, records=records) as writer:
                for first_line, texts, vectors, stats in engine.encode(chunks):
                    writer.write(first_line, texts, vectors, pending.popleft() if records else None)
                    totals.add(stats)
                    if bar is not None:
                        bar.update(len(texts))
        finally:
            if bar is not None:
                bar.close()
    finally:
        engine.close()
    seconds = time.perf_counter() - start
    report = EncodeFileReport(
        input=config.input, output=config.output, texts=totals.texts, dim=engine.dim, empty=totals.empty,
        truncated=totals.truncated, unknown=totals.unknown, replaced=line_stats.replaced, seconds=round(seconds, 4),
        texts_per_s=round(totals.texts / seconds, 1) if seconds > 0 else 0.0, model=engine.model_name,
        fingerprint=engine.fingerprint, max_seq_length=engine.max_seq_length, load_seconds=round(load_seconds, 4),
        workers=config.workers, records=records, bad=corpus_stats.bad, bad_locations=corpus_stats.bad_locations,
    )
    if records:
        report.empty, report.replaced = corpus_stats.empty, corpus_stats.replaced
    if config.output != STDOUT:
        sidecar = {"config": asdict(config), "report": report.as_dict()}
        atomic_write_text(config.output + ".json", json.dumps(sidecar, ensure_ascii=False, indent=2) + "\n")
    return report


def default_output(input: str | os.PathLike, output: str | os.PathLike | None) -> str:
    if output is not None:
        return str(output)
    if str(input) == STDOUT:
        raise InputError("reading stdin needs -o OUT (a .npy, .jsonl or .parquet file, or '-' for JSONL on stdout)")
    return str(input) + ".npy"


def _check_paths(config: EncodeFileConfig) -> None:
    out = Path(config.output)
    if config.output != STDOUT and out.is_dir():
        raise InputError(f"{out}: is a directory, expected an output file name")
    output_format(config.output)
    if config.output == STDOUT:
        return
    folder = out.parent
    if not folder.is_dir():
        raise InputError(f"{out}: folder {folder} does not exist; create it or choose another -o")
    if not os.access(folder, os.W_OK):
        raise WriteError(f"{out}: folder {folder} is not writable; choose another -o")
    if config.input != STDOUT and Path(config.input).resolve() == out.resolve():
        raise InputError(f"{out}: the output would overwrite the input; choose another -o")


def _chunks(lines: Iterable[str], size: int) -> Iterator[Chunk]:
    """``(first_line, texts)`` chunks of at most ``size`` lines; ``first_line`` is 1-based."""
    it = iter(lines)
    first_line = 1
    while chunk := list(itertools.islice(it, size)):
        yield first_line, chunk
        first_line += len(chunk)


def _record_chunks(config: EncodeFileConfig, stats: CorpusStats, pending: deque) -> Iterator[Chunk]:
    """``(first row, texts)`` chunks of records; each chunk's records are appended to ``pending`` for the writer."""
    it = iter_records(config.input, text_field=config.text_field, id_field=config.id_field,
                      metadata_field=config.metadata_field, fmt=config.fmt, errors=config.errors,
                      skip_bad=config.skip_bad, stats=stats)
    row = 1
    while chunk := list(itertools.islice(it, config.chunk_size)):
        pending.append(chunk)
        yield row, [r.text for r in chunk]
        row += len(chunk)


class _Serial:
    def __init__(self, encoder: KoMiniLMEncoder, batch_size: int, prompt_name: str | None = None) -> None:
        self.encoder, self.batch_size, self.prompt_name = encoder, batch_size, prompt_name
        self.dim, self.max_seq_length = encoder.dim, encoder.max_seq_length
        self.model_name, self.fingerprint = encoder.model_name, encoder.fingerprint

    def encode(self, chunks: Iterable[Chunk]) -> Iterator[Encoded]:
        for first_line, texts in chunks:
            done = self.encoder.encode_with_stats(texts, batch_size=self.batch_size, show_progress=False,
                                                  prompt_name=self.prompt_name)
            yield first_line, texts, done.vectors, done.stats

    def close(self) -> None:
        pass


class _Parallel:
    """Chunks go round a process pool; a bounded queue of futures keeps memory flat and output in order."""

    def __init__(self, config: EncodeFileConfig, encoder: KoMiniLMEncoder | None) -> None:
        n = config.workers
        # Resolve here (cheap, no torch) so a bad model name fails before any process starts.
        source = encoder.source if encoder is not None else resolve_model(config.model)
        config.backend = resolve_backend(config.backend, source, config.device)
        spec = {
            "model": str(source.path), "device": config.device, "max_seq_length": config.max_seq_length,
            "normalize": config.normalize, "backend": config.backend,
        }
        self.batch_size, self.inflight, self.prompt_name = config.batch_size, 2 * n, config.prompt_name
        ctx = multiprocessing.get_context("spawn")  # not fork: a forked torch parent can deadlock its thread pools
        self._pool = ProcessPoolExecutor(
            n, mp_context=ctx, initializer=_worker_init, initargs=(spec, max(1, cpu_count() // n), ctx.Barrier(n))
        )
        # One start task per worker: each loads its model, then waits at the barrier, so every worker
        # takes exactly one and all models are loaded before timing begins.
        futures = [self._pool.submit(_worker_start) for _ in range(n)]
        infos, errors = [], []
        for f in futures:
            try:
                infos.append(f.result())
            except BaseException as exc:  # re-raised below, the root cause first
                errors.append(exc)
        if errors:
            self.close(cancel=True)
            raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
        self.dim, self.max_seq_length, self.fingerprint = infos[0]
        self.model_name = source.name

    def encode(self, chunks: Iterable[Chunk]) -> Iterator[Encoded]:
        pending: deque[tuple[int, list[str], Future]] = deque()
        try:
            for first_line, texts in chunks:
                pending.append((first_line, texts, self._pool.submit(_worker_encode, texts, self.batch_size,
                                                                      self.prompt_name)))
                if len(pending) >= self.inflight:
                    yield self._take(pending)
            while pending:
                yield self._take(pending)
        except BaseException:
            self.close(cancel=True)
            raise

    @staticmethod
    def _take(pending: deque) -> Encoded:
        first_line, texts, future = pending.popleft()
        vectors, stats = future.result()
        return first_line, texts, vectors, EncodeStats(**stats)

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)


_WORKER: dict[str, Any] = {}


def _worker_init(spec: dict[str, Any], threads: int, barrier: Any) -> None:
    # Ctrl-C goes to the whole process group: the parent handles it and shuts the pool down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The ONNX backend sizes its thread pool from these; torch is told directly below.
    os.environ["KOEMBED_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(threads)
    if spec["backend"] == "torch":
        import torch

        torch.set_num_threads(threads)
    _WORKER.update(spec=spec, barrier=barrier)


def _worker_encoder() -> KoMiniLMEncoder:
    # Loaded in a task, not in the initializer, so that a load error reaches the parent as itself.
    if "encoder" not in _WORKER:
        spec = _WORKER["spec"]
        _WORKER["encoder"] = KoMiniLMEncoder(
            spec["model"], device=spec["device"], max_seq_length=spec["max_seq_length"],
            normalize=spec["normalize"], backend=spec["backend"],
        )
    return _WORKER["encoder"]


def _worker_start() -> tuple[int, int, str]:
    try:
        encoder = _worker_encoder()
    except BaseException:
        _WORKER["barrier"].abort()
        raise
    _WORKER["barrier"].wait(timeout=600)
    return encoder.dim, encoder.max_seq_length, encoder.fingerprint


def _worker_encode(texts: list[str], batch_size: int, prompt_name: str | None = None,
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    done = _worker_encoder().encode_with_stats(texts, batch_size=batch_size, show_progress=False,
                                               prompt_name=prompt_name)
    return done.vectors, asdict(done.stats)


def _progress(input: str, show: bool | None, records: bool = False):
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return None
    from tqdm.auto import tqdm

    total = None if records else _count_lines(input)
    return tqdm(total=total, unit="text", desc="encode", file=sys.stderr, dynamic_ncols=True)


def _count_lines(input: str) -> int | None:
    """Lines in a regular file (cheap: a byte count of newlines); None for stdin, pipes and FIFOs."""
    if input == STDOUT or not Path(input).is_file():  # counting would consume a stream
        return None
    n, last = 0, b"\n"
    with open(input, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")
