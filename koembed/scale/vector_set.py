"""A vector set: the folder a distributed encode writes and a sharded index build reads.

Layout::

    manifest.json             model (name, fingerprint, backend), dim, count, inputs, config, and per
                              shard: input slice, digest, rows, counts, bytes and sha256
    shards/part-000000.parquet  id (string), vector (fixed-size list of float32), text, metadata (JSON)

Each shard also carries its own description (model, dim, input slice) in the Parquet footer under
``koembed``, so a shard copied between folders, or written by a worker whose driver died before
recording it, still says what it holds. The manifest is rewritten atomically by the driver only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from koembed.atomic import atomic_path, atomic_write_text
from koembed.errors import IndexRefusedError, InputError

FORMAT = "koembed-vectors"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARDS = "shards"
FOOTER_KEY = b"koembed"
READ_ROWS = 65536


@dataclass
class ShardRecord:
    """A finished shard as the manifest lists it."""

    name: str
    index: int
    file: str
    start: int
    stop: int
    digest: str
    count: int  # records written (non-empty, not bad)
    empty: int = 0
    bad: int = 0
    replaced: int = 0
    truncated: int = 0
    tokens: int = 0
    seconds: float = 0.0
    bytes: int = 0
    sha256: str = ""
    bad_locations: list[str] = field(default_factory=list)


@dataclass
class VectorManifest:
    model: dict[str, Any]  # name, fingerprint, backend
    dim: int | None = None  # None until the first shard is written
    normalize: bool = True
    max_seq_length: int | None = None
    count: int = 0
    complete: bool = False
    inputs: list[dict[str, Any]] = field(default_factory=list)
    shards: list[ShardRecord] = field(default_factory=list)
    planned_shards: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    updated: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION} | asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: object) -> VectorManifest:
        if d.get("format") != FORMAT:
            raise IndexRefusedError(f"{where}: not a koembed vector set (no {FORMAT!r} manifest); "
                                    "make one with `koembed encode INPUT -o DIR --engine ray`")
        if d.get("format_version") != FORMAT_VERSION:
            raise IndexRefusedError(f"{where}: vector set format {d.get('format_version')} is not supported by this "
                                    f"koembed (version {FORMAT_VERSION}); upgrade koembed or encode again")
        body = {k: v for k, v in d.items() if k not in ("format", "format_version")}
        try:
            return cls(**(body | {"shards": [ShardRecord(**s) for s in body.get("shards", [])]}))
        except TypeError as exc:
            raise IndexRefusedError(f"{where}: malformed manifest ({exc}); encode again") from None


def read_manifest(directory: str | Path) -> VectorManifest:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise IndexRefusedError(f"{directory}: not a koembed vector set (no {MANIFEST}); "
                                "make one with `koembed encode INPUT -o DIR --engine ray`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise IndexRefusedError(f"{path}: corrupt manifest (not valid JSON); encode again") from None
    return VectorManifest.from_dict(data, path)


def write_manifest(directory: str | Path, manifest: VectorManifest) -> None:
    atomic_write_text(Path(directory) / MANIFEST, json.dumps(manifest.to_dict(), ensure_ascii=False, indent=1) + "\n")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def write_shard(path: Path, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str] | None,
                metadata: Sequence[str] | None, footer: dict[str, Any]) -> dict[str, Any]:
    """Write one shard atomically (the file appears complete or not at all); returns its bytes and sha256."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.ascontiguousarray(vectors, dtype="<f4")
    dim = x.shape[1]
    cols = {"id": pa.array(list(ids), type=pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), type=pa.float32()), dim)}
    if texts is not None:
        cols["text"] = pa.array(list(texts), type=pa.string())
    if metadata is not None:
        cols["metadata"] = pa.array(list(metadata), type=pa.string())
    table = pa.table(cols).replace_schema_metadata({FOOTER_KEY: json.dumps(footer, ensure_ascii=False).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, str(tmp), row_group_size=READ_ROWS)
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def shard_footer(path: Path) -> dict[str, Any] | None:
    """The koembed description stored in a shard's Parquet footer, or None if it has none or is unreadable."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(str(path)).metadata or {}
        return json.loads(meta[FOOTER_KEY])
    except Exception:  # a torn or foreign file is simply not a finished shard
        return None


@dataclass
class ShardBatch:
    ids: list[str]
    vectors: np.ndarray
    texts: list[str]
    metadata: list[str]  # canonical JSON objects


def iter_shard(path: Path, *, columns: Sequence[str] = ("id", "vector", "text", "metadata"),
               rows: int = READ_ROWS) -> Iterator[ShardBatch]:
    """Batches of a shard; columns the shard lacks (a vectors-only encode) come back as '' and '{}'."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(str(path))
    have = set(pf.schema_arrow.names)
    want = [c for c in columns if c in have]
    for batch in pf.iter_batches(batch_size=rows, columns=want):
        n = batch.num_rows
        get = {name: batch.column(name) for name in want}
        vectors = np.zeros((n, 0), np.float32)
        if "vector" in get:
            col = get["vector"]
            vectors = col.values.to_numpy(zero_copy_only=False).reshape(n, col.type.list_size)
        yield ShardBatch(ids=get["id"].to_pylist() if "id" in get else [],
                         vectors=vectors,
                         texts=get["text"].to_pylist() if "text" in get else [""] * n,
                         metadata=get["metadata"].to_pylist() if "metadata" in get else ["{}"] * n)


@dataclass
class VectorSet:
    """An opened vector set, its finished shards checked against the manifest (size and sha256)."""

    directory: Path
    manifest: VectorManifest

    @classmethod
    def open(cls, directory: str | Path, *, verify: bool = True) -> VectorSet:
        d = Path(directory)
        m = read_manifest(d)
        if not m.complete:
            done, planned = len(m.shards), m.planned_shards
            raise IndexRefusedError(f"{d}: the encode is unfinished ({done} of {planned} shards); rerun the same "
                                    "`koembed encode` command to finish it")
        vs = cls(d, m)
        for s in m.shards:
            vs.check_shard(s, verify=verify)
        return vs

    @property
    def dim(self) -> int:
        return int(self.manifest.dim or 0)

    @property
    def fingerprint(self) -> str | None:
        return self.manifest.model.get("fingerprint")

    def shard_path(self, s: ShardRecord) -> Path:
        return self.directory / SHARDS / s.name

    def check_shard(self, s: ShardRecord, *, verify: bool = True) -> None:
        """Refuse a shard that is missing, changed on disk, or written by another model or dimension."""
        path = self.shard_path(s)
        if not path.is_file():
            raise IndexRefusedError(f"{path}: missing; rerun `koembed encode` to rewrite it")
        if path.stat().st_size != s.bytes or (verify and sha256_file(path) != s.sha256):
            raise IndexRefusedError(f"{path}: does not match the manifest's checksum (changed or corrupt); "
                                    "delete it and rerun `koembed encode` to rewrite it")
        footer = shard_footer(path) or {}
        fp = (footer.get("model") or {}).get("fingerprint")
        if fp != self.fingerprint or footer.get("dim") != self.dim:
            raise IndexRefusedError(f"{path}: holds vectors of model fingerprint {str(fp)[:12]} (dim "
                                    f"{footer.get('dim')}), the set's manifest says {str(self.fingerprint)[:12]} "
                                    f"(dim {self.dim}); do not mix shards of different encodes")


def check_same_model(sets: Sequence[VectorSet]) -> None:
    """Refuse vector sets of different models or dimensions: their vectors are not comparable."""
    first = sets[0]
    for vs in sets[1:]:
        if vs.dim != first.dim or vs.fingerprint != first.fingerprint:
            raise IndexRefusedError(
                f"{vs.directory}: vectors of model {vs.manifest.model.get('name')!r} (fingerprint "
                f"{str(vs.fingerprint)[:12]}, dim {vs.dim}) cannot be indexed with {first.directory}'s "
                f"(model {first.manifest.model.get('name')!r}, fingerprint {str(first.fingerprint)[:12]}, "
                f"dim {first.dim}); encode every input with one model")


def write_vector_set(directory: str | Path, shards: Iterable[tuple[Sequence[str], np.ndarray, Sequence[str] | None,
                                                                   Sequence[dict[str, Any]] | None]],
                     *, model: dict[str, Any], normalize: bool = True) -> VectorManifest:
    """A vector set from vectors made elsewhere: each ``(ids, vectors, texts, metadata)`` becomes one shard.

    The files are those a distributed encode writes, so ``koembed index --from-vectors`` builds from
    them; ``model`` is ``{"name", "fingerprint", "backend"}`` of the model that made the vectors.
    """
    from koembed.index.files import now
    from koembed.index.store import metadata_json

    d = Path(directory)
    (d / SHARDS).mkdir(parents=True, exist_ok=True)
    m = VectorManifest(model=dict(model), normalize=normalize, created=now())
    for i, (ids, vectors, texts, metadata) in enumerate(shards):
        x = np.asarray(vectors, dtype=np.float32)
        if m.dim is not None and x.shape[1] != m.dim:
            raise InputError(f"shard {i}: vectors of dimension {x.shape[1]}, earlier shards have {m.dim}")
        m.dim = int(x.shape[1])
        record = ShardRecord(name=f"part-{i:06d}.parquet", index=i, file="", start=m.count, stop=m.count + len(x),
                             digest="", count=len(x))
        footer = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": m.model, "dim": m.dim,
                  "record": asdict(record)}
        meta = [metadata_json(v) for v in metadata] if metadata is not None else None
        written = write_shard(d / SHARDS / record.name, ids, x, texts, meta, footer)
        record.bytes, record.sha256 = written["bytes"], written["sha256"]
        m.shards.append(record)
        m.count += len(x)
    m.planned_shards, m.complete, m.updated = len(m.shards), True, now()
    write_manifest(d, m)
    return m
