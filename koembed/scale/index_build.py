"""Build one index from vector sets: train once, build parts in parallel, merge, and add the documents.

``koembed index --from-vectors DIR [--from-vectors DIR2 ...] -o IDX``. Steps, each resumable:

1. open the vector sets (manifest checksums of every shard, one model and dimension across all);
2. train an empty index of the chosen type on a sample (IVF: coarse quantiser, PQ/SQ codebooks) and
   calibrate its nprobe, once; saved as ``trained.faiss``;
3. build the parts in parallel (a local process pool, or Ray tasks on a cluster): part ``i`` holds the
   vectors of a run of consecutive shards with their global row ids; each part file is written
   atomically, so a rerun keeps every part that exists;
4. meanwhile the driver writes the documents (id, text, metadata) into a document store, one SQLite
   transaction per part; a repeated id keeps its last occurrence (the earlier rows become tombstones,
   as an upsert in ``koembed index`` would leave them);
5. merge the parts into a new index folder (IVF: one memory-mapped ``.ivfdata`` file) and commit it
   with the documents, then move it to IDX.

The work happens in a folder beside IDX (``.IDX.from-vectors``), deleted when IDX is complete. A
killed build rerun with the same command redoes only what had not reached the disk.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from koembed.atomic import atomic_path, atomic_write_text
from koembed.errors import IndexRefusedError, InputError
from koembed.scale.faiss_parts import build_part, check_mergeable, merge_parts, training_sample
from koembed.scale.vector_set import VectorSet, check_same_model, iter_shard
from koembed.system import cpu_count

DEFAULT_PART_ROWS = 1_000_000
PLAN = "plan.json"
TRAINED = "trained.faiss"
STAGING = "index"  # the new index, trained and empty until the merge, moved to the output when complete


@dataclass
class VectorIndexConfig:
    """One ``koembed index --from-vectors`` build; saved in the index manifest under ``config``."""

    vectors: list[str]  # vector set folders written by `koembed encode --engine ray` (one model)
    output: str
    index_type: str = "auto"
    engine: str = "local"  # local: a process pool on this machine; ray: Ray tasks (address, or a local Ray)
    address: str | None = None
    num_workers: int | None = None  # None: this machine's cores (local) or the cluster's CPUs (ray)
    part_rows: int = DEFAULT_PART_ROWS  # vectors per part (whole shards): the unit of parallel work and resume
    memory_budget: int | None = None  # bytes, for the auto rule; None: half the RAM
    verify: bool = True  # sha256 of every shard against its manifest before building
    lexical: bool = True  # give the index a lexical (BM25) part, from the texts in the shards
    analyser: str | None = None  # its analyser (koembed.lexical.analysers); None: the default

    def validate(self) -> None:
        if not self.vectors:
            raise InputError("no vector sets given: pass --from-vectors DIR")
        if self.engine not in ("local", "ray"):
            raise InputError(f"engine must be 'local' or 'ray', not {self.engine!r}")
        if self.part_rows < 1 or (self.num_workers is not None and self.num_workers < 1):
            raise InputError("part_rows and num_workers must be >= 1")
        if self.lexical and self.analyser is not None:
            from koembed.lexical.analysers import get_analyser

            get_analyser(self.analyser).check()  # an unknown name or a missing extra, before any work


@dataclass
class VectorIndexResult:
    directory: str
    spec: str
    count: int  # documents (distinct ids)
    vectors: int  # vectors in FAISS (a repeated id's earlier vectors stay, as tombstones)
    replaced: int  # rows superseded by a later row with the same id
    parts: int
    built_parts: int  # this run
    workers: int
    nprobe: int | None = None
    analyser: str | None = None  # the lexical part's analyser; None: no lexical part
    seconds: dict[str, float] = field(default_factory=dict)  # train, parts (docs alongside), merge, lexical, total
    lexical_cut: int = 0  # texts longer than the lexical part reads (koembed.index.lexical_part.MAX_CHARS)

    def summary(self) -> str:
        s = self.seconds
        return (f"{self.directory}: {self.count} documents ({self.spec}) from {self.vectors} vectors, {self.replaced} "
                f"replaced by a later row with the same id; {self.built_parts} of {self.parts} parts built now with "
                f"{self.workers} workers; train {s.get('train', 0):.1f} s, parts+docs {s.get('parts', 0):.1f} s, "
                f"merge {s.get('merge', 0):.1f} s, lexical part {s.get('lexical', 0):.1f} s "
                f"({self.analyser or 'none'}), total {s.get('total', 0):.1f} s")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_index_from_vectors(config: VectorIndexConfig, *, quiet: bool = True) -> VectorIndexResult:
    """Build the index ``config.output`` from the vector sets ``config.vectors``; rerun to resume."""
    from koembed.index import Index, resolve_spec
    from koembed.index.files import lock_dir, unlock_dir
    from koembed.index.layout import MANIFEST

    config.validate()
    t0 = time.perf_counter()
    out = Path(config.output)
    if (out / MANIFEST).is_file():
        raise IndexRefusedError(f"{out}: is already an index; building from vector sets makes a new one (choose a "
                                f"new output folder), or add documents to it with `koembed index FILE -o {out}`")
    say = _say(quiet)
    say(f"checking {len(config.vectors)} vector set(s)")
    sets = [VectorSet.open(v, verify=config.verify) for v in config.vectors]
    check_same_model(sets)
    dim, total = sets[0].dim, sum(vs.manifest.count for vs in sets)
    spec = resolve_spec(config.index_type, total, dim, config.memory_budget)
    check_mergeable(spec.factory)
    shards = [(vs, s) for vs in sets for s in vs.manifest.shards]
    parts = _group(shards, config.part_rows)
    work = out.parent / f".{out.name}.from-vectors"
    work.mkdir(parents=True, exist_ok=True)
    lock = lock_dir(work)
    staging = None
    try:
        _start_plan(work, sets, spec.factory, parts, config)
        seconds: dict[str, float] = {}
        t = time.perf_counter()
        staging = _trained(work, config, dim, total, sets[0].manifest.model,
                           [vs.shard_path(s) for vs, s in shards], say)
        factory = staging.manifest.spec  # auto's choice, made on the training sample as `koembed index` makes it
        check_mergeable(factory)
        seconds["train"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        todo = [p for p in parts if not (work / p["name"]).is_file()]
        say(f"{len(parts)} parts ({len(parts) - len(todo)} built before), {total} vectors (dim {dim}), {factory}")
        workers = _worker_count(config, len(todo))
        replaced = _run_parts(config, work, todo, parts, workers, say)
        seconds["parts"] = round(time.perf_counter() - t, 3)
        say("merging parts")
        lexical_cut = _assemble(work, staging, parts, total, config, seconds, say)
        staging.close()
        staging = None
        _move_into_place(work / STAGING, out)
        with Index.open(out) as done:
            count, vectors = done.count, int(done.faiss.ntotal)
            analyser = done.lexical.info["analyser"] if done.lexical is not None else None
            nprobe = done.spec.search_defaults.get("nprobe")
    finally:
        if staging is not None:
            staging.close()
        unlock_dir(lock)
    shutil.rmtree(work, ignore_errors=True)
    seconds["total"] = round(time.perf_counter() - t0, 3)
    return VectorIndexResult(directory=str(out), spec=factory, count=count, vectors=vectors, replaced=replaced,
                             parts=len(parts), built_parts=len(todo), workers=workers, nprobe=nprobe,
                             analyser=analyser, seconds=seconds, lexical_cut=lexical_cut)


def _say(quiet: bool):
    def say(msg: str) -> None:
        if not quiet:
            print(f"index --from-vectors: {msg}", file=sys.stderr, flush=True)
    return say


def _group(shards: list[tuple[VectorSet, Any]], part_rows: int) -> list[dict[str, Any]]:
    """Runs of consecutive shards of at least ``part_rows`` vectors (the last may be smaller), with row offsets."""
    parts: list[dict[str, Any]] = []
    run: list[tuple[VectorSet, Any]] = []
    row = start = 0
    for i, (vs, s) in enumerate(shards):
        run.append((vs, s))
        row += s.count
        if row - start >= part_rows or i == len(shards) - 1:
            parts.append({"name": f"part-{len(parts):06d}.faiss", "first_row_id": start, "rows": row - start,
                          "shards": [str(v.shard_path(x)) for v, x in run],
                          "sha256": [x.sha256 for _, x in run]})
            run, start = [], row
    return parts


def _start_plan(work: Path, sets: list[VectorSet], factory: str, parts: list[dict[str, Any]],
                config: VectorIndexConfig) -> None:
    """Keep the work folder of an identical earlier run; start afresh when anything that shapes the result changed."""
    plan = {"factory": factory, "fingerprint": sets[0].fingerprint, "dim": sets[0].dim,
            "parts": [{k: p[k] for k in ("name", "first_row_id", "rows", "sha256")} for p in parts]}
    text = json.dumps(plan, sort_keys=True)
    old = (work / PLAN).read_text(encoding="utf-8") if (work / PLAN).is_file() else None
    if old != text:
        for p in work.iterdir():
            if p.name != ".lock":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        atomic_write_text(work / PLAN, text)


def _trained(work: Path, config: VectorIndexConfig, dim: int, total: int, model: dict[str, Any],
             shard_paths: list[Path], say) -> Any:
    """The new index, trained and still empty, in ``work/index`` (made once), and its FAISS file for the parts.

    Training is :meth:`Index.train`'s: the same nprobe calibration, and for ``auto`` the same choice between
    IVF and exact search on the sample, as a one-process ``koembed index`` build makes.
    """
    import faiss

    from koembed.index import Index
    from koembed.index.layout import MANIFEST

    staging = work / STAGING
    if (staging / MANIFEST).is_file():
        index = Index.open(staging, writable=True)
    else:
        if staging.exists():
            shutil.rmtree(staging)
        # No lexical part yet: the documents arrive in bulk at the end, and add_lexical then tokenises them.
        index = Index.create(staging, dim, index_type=config.index_type, expected_count=total,
                             model_name=model.get("name"), model_fingerprint=model.get("fingerprint"),
                             backend=model.get("backend"), memory_budget=config.memory_budget,
                             config=asdict(config), analyser=None)
    try:
        if not index.is_trained:
            x = training_sample(shard_paths, index.spec.train_size())
            say(f"training {index.spec.factory} on {len(x)} sampled vectors")
            index.train(x)
            index.commit()
        if not (work / TRAINED).is_file():
            with atomic_path(work / TRAINED) as tmp:
                faiss.write_index(index.faiss, str(tmp))
    except BaseException:
        index.close()
        raise
    return index


def _worker_count(config: VectorIndexConfig, todo: int) -> int:
    if config.num_workers:
        return max(1, min(config.num_workers, todo or 1))
    return max(1, min(cpu_count(), todo or 1))


def _run_parts(config: VectorIndexConfig, work: Path, todo: list[dict[str, Any]], parts: list[dict[str, Any]],
               workers: int, say) -> int:
    """Build the missing parts in workers while this process writes the documents; returns rows replaced."""
    trained = str(work / TRAINED)
    jobs = [(trained, p["shards"], p["first_row_id"], str(work / p["name"])) for p in todo]
    if config.engine == "ray":
        from koembed.scale.ray_session import import_ray, ray_session

        with ray_session(config.address):
            ray = import_ray()
            remote = ray.remote(num_cpus=1)(build_part)
            pending = [remote.remote(*job) for job in jobs]
            replaced = _write_docs(work, parts, say)
            ray.get(pending)
        return replaced
    if not jobs:
        return _write_docs(work, parts, say)
    # spawn, not fork: FAISS's OpenMP threads in this process do not survive a fork.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures: list[Future] = [pool.submit(build_part, *job) for job in jobs]
        replaced = _write_docs(work, parts, say)
        while futures:
            done, rest = wait(futures, return_when=FIRST_COMPLETED)
            for f in done:
                f.result()  # raises a worker's error here
            futures = list(rest)
    return replaced


def _write_docs(work: Path, parts: list[dict[str, Any]], say) -> int:
    """Documents of every part into ``work/docs.sqlite``, one transaction per part (resumable); returns replaced."""
    from koembed.index.layout import STORE
    from koembed.index.store import DocStore

    store = DocStore(work / STORE, create=True)  # its own work file, resumed: the tables may exist
    try:
        done = set(store.get_state("parts_done", []))
        replaced = int(store.get_state("replaced", 0))
        for p in parts:
            if p["name"] in done:
                continue
            store.begin()
            row = p["first_row_id"]
            for shard in p["shards"]:
                for b in iter_shard(Path(shard), columns=("id", "text", "metadata")):
                    replaced += _insert(store, row, b.ids, b.texts, b.metadata)
                    row += len(b.ids)
            done.add(p["name"])
            store.set_state("parts_done", sorted(done))
            store.set_state("replaced", replaced)
            store.commit()
        say(f"documents written ({replaced} replaced by a later row with the same id)")
        return replaced
    finally:
        store.rollback()
        store.close()


def _insert(store: Any, first_row: int, ids: list[str], texts: list[str], metadata: list[str]) -> int:
    """Insert one batch; an id seen before (in the store or earlier in the batch) keeps its last row."""
    last = {e: j for j, e in enumerate(ids)}
    dropped = [first_row + j for j, e in enumerate(ids) if last[e] != j]
    old = store.lookup(last)
    dropped += [v[0] for v in old.values()]
    if old:
        store.delete_rows(v[0] for v in old.values())
    if dropped:
        store.add_tombstones(dropped)
    store.insert((first_row + j, e, texts[j], metadata[j]) for e, j in last.items())
    return len(dropped)


def _assemble(work: Path, index: Any, parts: list[dict[str, Any]], total: int, config: VectorIndexConfig,
              seconds: dict[str, float], say) -> int:
    """Merge the parts into the staging index and commit them with the documents, then add the lexical part.

    The merge and the documents commit in one SQLite transaction: a build killed before it leaves the
    staging index trained and empty, and the rerun merges again.
    """
    import faiss

    from koembed.index.layout import STORE, lists_file_name
    from koembed.lexical.analysers import DEFAULT_ANALYSER

    t = time.perf_counter()
    if index.count or index.faiss.ntotal:  # merged before, killed during the lexical part: that is what is left
        merged = None
    else:
        lists = index.directory / lists_file_name(index.generation + 1)
        lists.unlink(missing_ok=True)  # from a merge killed before its commit
        merged = merge_parts(faiss.read_index(str(work / TRAINED)), [work / p["name"] for p in parts], lists)
        if int(merged.ntotal) != total:
            raise IndexRefusedError(f"{work}: the parts hold {merged.ntotal} vectors, the vector sets {total}; "
                                    f"delete {work} and rebuild")
    if merged is not None:
        conn = index.store.conn
        conn.execute("ATTACH DATABASE ? AS built", (str(work / STORE),))
        try:
            index.store.begin()  # the documents commit with the adopted FAISS index, in one transaction
            conn.execute("INSERT INTO docs (row_id, ext_id, text, metadata) "
                         "SELECT row_id, ext_id, text, metadata FROM built.docs")
            conn.execute("INSERT INTO tombstones (row_id) SELECT row_id FROM built.tombstones")
            index.adopt(merged, next_row_id=total)
            index.commit()
        finally:
            index.store.rollback()
            conn.execute("DETACH DATABASE built")
    seconds["merge"] = round(time.perf_counter() - t, 3)
    if config.lexical and index.lexical is None:
        t = time.perf_counter()
        say("tokenising the texts for the lexical part")
        cut = index.add_lexical(config.analyser or DEFAULT_ANALYSER).cut
        seconds["lexical"] = round(time.perf_counter() - t, 3)
        return cut
    return 0


def _move_into_place(staging: Path, out: Path) -> None:
    """Rename the finished folder to ``out`` (absent, or an empty folder that is replaced)."""
    if out.exists():
        if not out.is_dir() or any(out.iterdir()):
            raise IndexRefusedError(f"{out}: exists and is not empty; choose a new -o (the finished index is in "
                                    f"{staging})")
        out.rmdir()
    os.rename(staging, out)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

