"""Build or update an index from a document file: validate, then stream encode -> add -> commit in chunks.

Memory stays bounded: documents are read ``chunk_size`` at a time, encoded and added to FAISS, and
committed (see :mod:`koembed.index.core`) every ``commit_every`` documents or ``commit_seconds``, whichever
comes first; the commit interval grows with the index (at least a quarter of its size) so that
rewriting the FAISS file costs O(n) in total rather than O(n^2). IVF/PQ types first collect a
training sample of at most ``IndexSpec.train_size()`` vectors.

Rerunning the same command resumes: a document whose id is already stored with the same text and
metadata is skipped without being encoded, so an interrupted build continues where its last commit
ended, and an unchanged corpus costs one pass of SQLite look-ups.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from koembed.backends.prompts import DOCUMENT
from koembed.corpus import CorpusStats, Record, detect_format, iter_records
from koembed.errors import IndexRefusedError
from koembed.index.core import Index
from koembed.index.layout import MANIFEST
from koembed.index.modes import add_lexical_hint
from koembed.index.spec import resolve_spec
from koembed.index.store import metadata_json
from koembed.lexical.analysers import DEFAULT_ANALYSER, get_analyser


@dataclass
class IndexConfig:
    """Everything ``koembed index`` needs; saved in the index manifest under ``config``."""

    input: str
    output: str
    model: str | None = None  # None: the existing index's model, else the default model
    backend: str = "auto"  # the manifest records what it resolved to (koembed.backends.resolve_backend)
    index_type: str = "auto"  # auto | flat | hnsw | ivf | ivfsq | ivfpq | a FAISS factory string
    fmt: str | None = None  # txt | jsonl | tsv | csv | parquet; None: from the suffix
    text_field: str = "text"
    id_field: str = "id"
    metadata_field: str = "metadata"
    skip_bad: bool = False
    errors: str = "strict"
    batch_size: int = 64
    chunk_size: int = 2048
    commit_every: int = 20_000
    commit_seconds: float = 300.0
    memory_budget: int | None = None  # bytes for the auto rule; None: half the RAM
    device: str | None = None
    lexical: bool = True  # a new index gets a lexical (BM25) part beside its vectors; False: dense search only
    analyser: str | None = None  # lexical analyser (koembed.lexical.analysers); None: the index's, else bigram


@dataclass
class BuildResult:
    directory: str
    spec: str
    read: int = 0
    empty: int = 0
    bad: int = 0
    unchanged: int = 0  # already stored with the same text and metadata: not re-encoded
    added: int = 0
    replaced: int = 0
    commits: int = 0
    count: int = 0
    seconds: float = 0.0
    bad_locations: list[str] = field(default_factory=list)
    duplicates: int = 0  # records whose id an earlier record of the input had: the last one is kept
    duplicate_locations: list[str] = field(default_factory=list)
    truncated: int = 0  # texts longer than the model reads (see EncodeStats.truncated)
    lexical_cut: int = 0  # texts longer than the lexical part reads (koembed.index.lexical_part.MAX_CHARS)
    unknown: int = 0  # texts with words the model cannot read ([UNK] tokens)
    analyser: str | None = None  # the index's lexical analyser; None: the index has no lexical part

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_index(config: IndexConfig, encoder: Any = None, *, quiet: bool = True,
                on_commit: Callable[[Index], None] | None = None) -> BuildResult:
    """Index ``config.input`` into ``config.output`` (created, or upserted into when it is an index).

    Documents are encoded with the model's document prompt (none if it has none); the index records the
    model's prompts, and an existing index refuses a model or document prompt other than its own.
    """
    start = time.perf_counter()
    out = Path(config.output)
    if config.analyser is not None:
        get_analyser(config.analyser).check()  # an unknown name or a missing extra, before any work
    existing = Index.open(out, writable=True) if (out / MANIFEST).is_file() else None
    try:
        if existing is not None and config.analyser is not None:
            if existing.lexical is None:
                raise IndexRefusedError(f"{out}: has no lexical part, so an analyser (--analyser) does not apply; "
                                        f"add one without re-encoding: {add_lexical_hint(out)} "
                                        f"--analyser {config.analyser}")
            existing.lexical.check_analyser(config.analyser, out)
        with _readable_input(config) as path:
            # A full validation pass first: malformed input is refused before anything is written.
            stats = CorpusStats(track_ids=True)
            total = sum(1 for _ in _records(config, path, stats))
            if encoder is None:
                from koembed.encoder import KoMiniLMEncoder

                model = config.model or (existing.manifest.model.name if existing else None)
                encoder = KoMiniLMEncoder(model, device=config.device, backend=config.backend)
            document_prompt = encoder.prompt_for(DOCUMENT)
            if existing is not None:  # new documents must be encoded as the stored ones were
                existing.check_model(encoder.fingerprint, encoder.dim, name=encoder.model_name,
                                     prompts={DOCUMENT: document_prompt})
            if existing is None:
                _check_trainable(config, total, encoder.dim)
            elif config.index_type not in ("auto", existing.manifest.index_type, existing.manifest.spec):
                raise IndexRefusedError(f"{out}: is a {existing.manifest.spec} index; it keeps its type "
                                        f"(index type {config.index_type}, --index-type, applies to new indexes only)")
            index = existing or Index.create(out, encoder.dim, index_type=config.index_type,
                                             expected_count=total, model_name=encoder.model_name,
                                             model_fingerprint=encoder.fingerprint, backend=encoder.backend_name,
                                             memory_budget=config.memory_budget, config=asdict(config),
                                             analyser=(config.analyser or DEFAULT_ANALYSER) if config.lexical else None,
                                             prompts=encoder.role_prompts())
            existing = index
            result = BuildResult(directory=str(out), spec=index.manifest.spec, read=stats.read, empty=stats.empty,
                                 bad=stats.bad, bad_locations=stats.bad_locations, duplicates=stats.duplicates,
                                 duplicate_locations=stats.duplicate_locations,
                                 analyser=index.lexical.info["analyser"] if index.lexical is not None else None)
            index.manifest.config = asdict(config)
            _stream(index, encoder, document_prompt, config, _records(config, path, CorpusStats()), total, result,
                    quiet, on_commit)
            result.count = index.count
    finally:
        if existing is not None:
            existing.close()
    result.seconds = round(time.perf_counter() - start, 3)
    return result


def _check_trainable(config: IndexConfig, total: int, dim: int) -> None:
    spec = resolve_spec(config.index_type, total, dim, config.memory_budget)
    if spec.min_train() > 1 and total < spec.min_train():
        raise IndexRefusedError(f"{config.input}: {total} documents are too few to train {spec.factory} (needs "
                                f"{spec.min_train()}); use index type flat (--index-type flat) or a smaller IVF")


def _records(config: IndexConfig, path: str, stats: CorpusStats) -> Iterator[Record]:
    return iter_records(path, text_field=config.text_field, id_field=config.id_field,
                        metadata_field=config.metadata_field, fmt=config.fmt, errors=config.errors,
                        skip_bad=config.skip_bad, stats=stats)


class _readable_input:
    """The input path; stdin is spooled to a temporary file so it can be validated and then read again."""

    def __init__(self, config: IndexConfig) -> None:
        self.config = config
        self.tmp: str | None = None

    def __enter__(self) -> str:
        if self.config.input != "-":
            detect_format(self.config.input, self.config.fmt)
            return self.config.input
        fd, self.tmp = tempfile.mkstemp(prefix="koembed-stdin-", suffix=".input")
        with os.fdopen(fd, "wb") as fh:
            shutil.copyfileobj(sys.stdin.buffer, fh)
        if self.config.fmt is None:
            self.config.fmt = "txt"
        return self.tmp

    def __exit__(self, *exc: object) -> None:
        if self.tmp:
            Path(self.tmp).unlink(missing_ok=True)


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for rec in records:
        chunk.append(rec)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _stream(index: Index, encoder: Any, prompt: str, config: IndexConfig, records: Iterator[Record], total: int,
            result: BuildResult, quiet: bool, on_commit: Callable[[Index], None] | None) -> None:
    bar = None
    if not quiet and sys.stderr.isatty():  # a bar is for a person watching: none in logs and pipes
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="doc", desc="index", file=sys.stderr, dynamic_ncols=True)
    pending, last_commit = 0, time.monotonic()
    train_buf: list[tuple[list[Record], np.ndarray]] = []
    train_need = index.spec.train_size() if not index.is_trained else 0

    def add(recs: list[Record], vecs: np.ndarray) -> None:
        r = index.add_vectors([x.id for x in recs], vecs, [x.text for x in recs], [x.metadata for x in recs],
                              commit=False)
        result.added += r["added"]
        result.replaced += r["replaced"]
        result.lexical_cut += r["lexical_cut"]

    def commit() -> None:
        nonlocal pending, last_commit
        index.commit()
        result.commits += 1
        pending, last_commit = 0, time.monotonic()
        if on_commit is not None:
            on_commit(index)

    for chunk in _chunks(records, config.chunk_size):
        todo, distinct = _changed(index, chunk)
        result.unchanged += distinct - len(todo)  # a repeated id is counted in result.duplicates, not here
        if todo:
            # The document prompt goes to the model only: the store and the lexical part get the text as it is.
            encoded = encoder.encode_with_stats([r.text for r in todo], batch_size=config.batch_size,
                                                show_progress=False, prompt=prompt)
            vecs = encoded.vectors
            result.truncated += encoded.stats.truncated
            result.unknown += encoded.stats.unknown
            if train_need:
                train_buf.append((todo, vecs))
                if sum(len(v) for _, v in train_buf) >= train_need:
                    _train_and_flush(index, train_buf, add)
                    train_need = 0
            else:
                add(todo, vecs)
            pending += len(todo)
        if bar is not None:
            bar.update(len(chunk))
        due = pending >= max(config.commit_every, index.count // 4) or (
            pending and time.monotonic() - last_commit >= config.commit_seconds)
        if due and not train_need:
            commit()
    if train_buf:
        _train_and_flush(index, train_buf, add)
    if pending or index.has_changes:
        commit()
    if bar is not None:
        bar.close()


def _changed(index: Index, chunk: list[Record]) -> tuple[list[Record], int]:
    """The records of ``chunk`` not already stored identically (the last of a repeated id wins), and how many
    distinct ids the chunk has."""
    last = {r.id: r for r in chunk}
    stored = index.store.lookup(last)
    out = []
    for r in last.values():
        old = stored.get(r.id)
        if old is None or old[1] != r.text or old[2] != metadata_json(r.metadata):
            out.append(r)
    return out, len(last)


def _train_and_flush(index: Index, buf: list[tuple[list[Record], np.ndarray]], add: Callable) -> None:
    index.train(np.vstack([v for _, v in buf]))
    for recs, vecs in buf:
        add(recs, vecs)
    buf.clear()
