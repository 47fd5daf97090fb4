"""Distributed encode: shards of the input go through a Ray Data actor pool, each actor loading the model once.

The driver plans the shards (:mod:`koembed.scale.plan`), skips those already finished, and hands the
rest to ``Dataset.map_batches`` with a class UDF on an actor pool: an actor reads its shard's slice of
the input, encodes it with :class:`~koembed.encoder.KoMiniLMEncoder` and writes the shard's Parquet
file atomically; the driver records each finished shard in the manifest. Killing a worker costs the
shard it was on (Ray restarts the actor and retries it); killing the driver costs nothing finished,
because a rerun finds every shard that reached the disk by its file name and the digest in its footer.

Each shard is encoded by one ``encode`` call on its texts, exactly what one process does with the same
texts, so vectors differ from a one-process run over the whole file only by how texts fall into
padded batches (float rounding; the tests hold them to cosine >= 0.9999).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from koembed import errors
from koembed.backends import resolve_backend
from koembed.corpus import CorpusStats, Record
from koembed.errors import IndexRefusedError, InputError, KoembedError
from koembed.scale.job_config import EncodeJobConfig
from koembed.scale.plan import Shard, list_inputs, plan_shards
from koembed.scale.ray_session import import_ray, ray_session
from koembed.scale.read import read_shard
from koembed.scale.vector_set import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SHARDS,
    ShardRecord,
    VectorManifest,
    read_manifest,
    sha256_file,
    shard_footer,
    write_manifest,
    write_shard,
)

# The driver rewrites the manifest at most this often; shards finished in between are found on disk.
MANIFEST_EVERY_S = 5.0


@dataclass
class EncodeJobResult:
    output: str
    model: str
    fingerprint: str
    dim: int
    shards: int
    encoded_shards: int  # this run
    resumed_shards: int  # found finished and skipped
    count: int  # records in the vector set
    encoded: int  # records encoded by this run
    empty: int
    bad: int
    truncated: int
    replaced: int
    workers: int
    seconds: float
    ray: str = ""
    bad_locations: list[str] = field(default_factory=list)

    @property
    def texts_per_s(self) -> float:
        return self.encoded / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        bad = f", {self.bad} bad skipped (first: {'; '.join(self.bad_locations)})" if self.bad else ""
        return (f"{self.output}: {self.count} vectors (dim {self.dim}) in {self.shards} shards; this run encoded "
                f"{self.encoded} texts in {self.encoded_shards} shards with {self.workers} workers in "
                f"{self.seconds:.1f} s ({self.texts_per_s:.1f} texts/s), {self.resumed_shards} shards already done; "
                f"{self.empty} empty skipped, {self.truncated} truncated, {self.replaced} with bad UTF-8 "
                f"replaced{bad}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"texts_per_s": round(self.texts_per_s, 1)}


def encode_distributed(config: EncodeJobConfig, *, quiet: bool = True) -> EncodeJobResult:
    """Encode ``config.input`` into the vector set ``config.output`` on Ray; rerun to resume."""
    from koembed.index.files import lock_dir, now, unlock_dir
    from koembed.model_source import model_fingerprint, resolve_model

    config.validate()
    start = time.perf_counter()
    files = list_inputs(config.input, config.fmt)
    plan = plan_shards(files, config.shard_rows)
    source = resolve_model(config.model)
    config.backend = resolve_backend(config.backend, source, config.resolved_device)
    model = {"name": source.name, "fingerprint": model_fingerprint(source, config.normalize),
             "backend": config.backend}
    out = Path(config.output)
    (out / SHARDS).mkdir(parents=True, exist_ok=True)
    lock = lock_dir(out)
    try:
        manifest = _start_manifest(out, model, config, files, len(plan), now())
        done, pending = _sort_shards(out, plan, manifest)
        manifest.shards = list(done)
        write_manifest(out, manifest)
        n_workers, ray_info = 0, ""
        if pending:
            with ray_session(config.address) as session:
                n_workers = _workers(config, session, len(pending))
                ray_info = f"Ray {session.ray_version} at {session.address}"
                _run(config, out, manifest, pending, n_workers, quiet, now)
        manifest.shards.sort(key=lambda s: s.index)
        manifest.count = sum(s.count for s in manifest.shards)
        manifest.complete = len(manifest.shards) == len(plan)
        manifest.updated = now()
        write_manifest(out, manifest)
    finally:
        unlock_dir(lock)
    this_run = [s for s in manifest.shards if s.name in {p.name for p in pending}]
    return EncodeJobResult(
        output=str(out), model=source.name, fingerprint=model["fingerprint"], dim=int(manifest.dim or 0),
        shards=len(plan), encoded_shards=len(this_run), resumed_shards=len(done), count=manifest.count,
        encoded=sum(s.count for s in this_run), empty=sum(s.empty for s in manifest.shards),
        bad=sum(s.bad for s in manifest.shards), truncated=sum(s.truncated for s in manifest.shards),
        replaced=sum(s.replaced for s in manifest.shards), workers=n_workers,
        seconds=round(time.perf_counter() - start, 3), ray=ray_info,
        bad_locations=[loc for s in manifest.shards for loc in s.bad_locations][:5])


def _settings(model: dict[str, Any], config: EncodeJobConfig) -> dict[str, Any]:
    """What decides the vectors besides the model files: shards made under other settings are not reused."""
    return {"fingerprint": model["fingerprint"], "backend": config.backend, "normalize": config.normalize,
            "max_seq_length": config.max_seq_length, "with_text": config.with_text,
            "fields": [config.text_field, config.id_field, config.metadata_field]}


def _start_manifest(out: Path, model: dict[str, Any], config: EncodeJobConfig, files: list, planned: int,
                    stamp: str) -> VectorManifest:
    settings = _settings(model, config)
    if (out / MANIFEST).is_file():
        old = read_manifest(out)
        old_settings = old.config.get("settings")
        if old_settings is not None and old_settings != settings:
            differs = ", ".join(k for k in settings if settings[k] != old_settings.get(k))
            raise IndexRefusedError(f"{out}: holds vectors made with other settings ({differs}: model "
                                    f"{old.model.get('name')!r}); encode into a new directory, or rerun with the "
                                    "same model and options to finish it")
        created = old.created
    else:
        created = stamp
    return VectorManifest(model=model, normalize=config.normalize, max_seq_length=config.max_seq_length,
                          inputs=[asdict(f) for f in files], planned_shards=planned,
                          config=asdict(config) | {"settings": settings}, created=created, updated=stamp)


def _sort_shards(out: Path, plan: list[Shard], manifest: VectorManifest) -> tuple[list[ShardRecord], list[Shard]]:
    """Finished shards (recorded, or on disk with a matching footer) and those still to encode."""
    settings = manifest.config["settings"]
    recorded = {}
    if (out / MANIFEST).is_file():
        recorded = {s.name: s for s in read_manifest(out).shards}
    names = {s.name for s in plan}
    for p in (out / SHARDS).iterdir():  # shards of an older, longer plan and files of killed writers
        if p.name not in names:
            p.unlink(missing_ok=True)
    done, pending = [], []
    for shard in plan:
        path = out / SHARDS / shard.name
        rec = recorded.get(shard.name)
        if rec is not None and rec.digest == shard.digest and path.is_file() and path.stat().st_size == rec.bytes:
            done.append(rec)
            continue
        found = finished_shard(path, shard, settings)
        if found is not None:
            done.append(ShardRecord(**found["record"], bytes=found["bytes"], sha256=found["sha256"]))
            manifest.dim = found["dim"]
            continue
        pending.append(shard)
    if done and manifest.dim is None:
        manifest.dim = shard_footer(out / SHARDS / done[0].name).get("dim")  # type: ignore[union-attr]
    return done, pending


def finished_shard(path: Path, shard: Shard, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The footer of a complete shard at ``path`` written for ``shard`` under ``settings`` (plus its bytes and
    sha256), or None when it must be (re)encoded."""
    footer = shard_footer(path) if path.is_file() else None
    if not footer or footer.get("settings") != settings or footer.get("shard", {}).get("digest") != shard.digest:
        return None
    return footer | {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _workers(config: EncodeJobConfig, session: Any, pending: int) -> int:
    if config.num_workers:
        return min(config.num_workers, pending)
    if config.gpus_per_worker > 0:
        n = int(session.gpus // config.gpus_per_worker)
        if n < 1:
            raise InputError(f"--gpus-per-worker {config.gpus_per_worker}: the Ray cluster has {session.gpus:g} GPUs; "
                             "start GPU workers or encode on CPUs (--gpus-per-worker 0)")
    else:
        n = int(session.cpus // config.cpus_per_worker)
    return max(1, min(n, pending))


def _run(config: EncodeJobConfig, out: Path, manifest: VectorManifest, pending: list[Shard], n_workers: int,
         quiet: bool, now: Any) -> None:
    ray = import_ray()
    job = {"config": asdict(config), "out": str(out.resolve()), "model": manifest.model,
           "settings": manifest.config["settings"]}
    items = [{"shard": json.dumps(s.as_dict())} for s in pending]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ShardEncoder, fn_constructor_kwargs={"job": job}, batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=n_workers), num_cpus=config.cpus_per_worker,
        num_gpus=config.gpus_per_worker or None)
    bar = None
    if not quiet and sys.stderr.isatty():  # a bar is for a person watching: none in logs and pipes
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(s.rows for s in pending), unit="row", desc="encode", file=sys.stderr,
                   dynamic_ncols=True)
    last_write = time.monotonic()
    try:
        for row in ds.iter_rows():
            res = json.loads(row["result"])
            if "error" in res:
                raise getattr(errors, res["error"], KoembedError)(res["message"])
            manifest.dim = res.pop("dim")
            manifest.max_seq_length = res.pop("max_seq_length")
            # A task Ray re-ran can report its shard twice; one record per shard keeps the count right.
            manifest.shards = [s for s in manifest.shards if s.name != res["name"]] + [ShardRecord(**res)]
            if bar is not None:
                bar.update(res["stop"] - res["start"])
            if time.monotonic() - last_write >= MANIFEST_EVERY_S:
                manifest.updated = now()
                write_manifest(out, manifest)
                last_write = time.monotonic()
    finally:
        if bar is not None:
            bar.close()


class ShardEncoder:
    """The Ray Data class UDF: loads the model once per actor, then encodes one shard per call."""

    def __init__(self, job: dict[str, Any]) -> None:
        from koembed.encoder import KoMiniLMEncoder

        c = job["config"]
        self.job = job
        self.config = EncodeJobConfig(**c)
        options: dict[str, Any] = {}
        if self.config.backend == "torch":
            import torch

            torch.set_num_threads(self.config.cpus_per_worker)
        elif self.config.backend.startswith("onnx"):
            options["threads"] = self.config.cpus_per_worker
        self.encoder = KoMiniLMEncoder(c["model"], device=self.config.resolved_device,
                                       max_seq_length=c["max_seq_length"], normalize=c["normalize"],
                                       backend=c["backend"], **options)
        if self.encoder.fingerprint != job["model"]["fingerprint"]:
            import socket

            raise IndexRefusedError(
                f"model {c['model']!r} on worker {socket.gethostname()} has fingerprint "
                f"{self.encoder.fingerprint[:12]}, the driver's has {job['model']['fingerprint'][:12]}; "
                "install the same model files on every node")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = []
        for s in batch["shard"]:
            try:
                results.append(self.encode_shard(Shard.from_dict(json.loads(s))))
            except KoembedError as exc:
                # Ray Data passes a UDF's exception back as a string; the class and one-line message would be lost.
                results.append({"error": type(exc).__name__, "message": str(exc)})
        return {"result": np.array([json.dumps(r, ensure_ascii=False) for r in results], dtype=object)}

    def encode_shard(self, shard: Shard) -> dict[str, Any]:
        return encode_shard(shard, self.encoder, self.config, Path(self.job["out"]), self.job["model"],
                            self.job["settings"])


def encode_shard(shard: Shard, encoder: Any, config: EncodeJobConfig, out: Path, model: dict[str, Any],
                 settings: dict[str, Any]) -> dict[str, Any]:
    """Read, encode and write one shard; returns its manifest record (plus dim and max_seq_length)."""
    from koembed.index.store import metadata_json

    path = out / SHARDS / shard.name
    found = finished_shard(path, shard, settings)
    if found is not None:
        # Ray re-runs a task whose output died with its actor, after the shard was already written: keep that
        # file, so that the record the driver keeps and the bytes on disk are always the same ones.
        return found["record"] | {"bytes": found["bytes"], "sha256": found["sha256"], "dim": found["dim"],
                                  "max_seq_length": found["max_seq_length"]}
    t0 = time.perf_counter()
    stats = CorpusStats()
    records: list[Record] = read_shard(shard, text_field=config.text_field, id_field=config.id_field,
                                       metadata_field=config.metadata_field, errors=config.errors,
                                       skip_bad=config.skip_bad, stats=stats)
    vectors = encoder.encode([r.text for r in records], batch_size=config.batch_size, show_progress=False)
    es = encoder.last_stats
    record = {"name": shard.name, "index": shard.index, "file": shard.file, "start": shard.start, "stop": shard.stop,
              "digest": shard.digest, "count": len(records), "empty": stats.empty, "bad": stats.bad,
              "replaced": stats.replaced, "truncated": es.truncated, "tokens": es.tokens,
              "seconds": round(time.perf_counter() - t0, 3), "bad_locations": stats.bad_locations}
    footer = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model, "settings": settings,
              "dim": encoder.dim, "max_seq_length": encoder.max_seq_length, "shard": shard.as_dict(),
              "record": record}
    texts = [r.text for r in records] if config.with_text else None
    metadata = [metadata_json(r.metadata) for r in records] if config.with_text else None
    written = write_shard(path, [r.id for r in records], vectors.reshape(-1, encoder.dim),
                          texts, metadata, footer)
    return record | written | {"dim": encoder.dim, "max_seq_length": encoder.max_seq_length}
