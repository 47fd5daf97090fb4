"""Scale benchmark (issue 19): Ray encode vs one process, sharded index build vs one process, quantiser recall.

Three phases, each printing one JSON object (with the machine's CPU flags and load average):

- ``encode``: NSMC reviews (``--texts`` of the 200k; the shared data folder) through the one-process
  path (``koembed encode``'s ``encode_file``, one process using every core), koembed's own process
  pool on this machine (``koembed encode --workers N``: N processes of cores/N threads) and
  ``encode_distributed`` on a local Ray with ``--workers`` actors of one core each. Reports wall time
  (Ray's includes starting Ray and loading the model in every actor), the steady texts/s of each
  path, the ratio, the engine's fixed overhead, and the fidelity (minimum cosine, same backend).
  ``--keep DIR`` keeps the vector set for the ``quantizers`` phase.
- ``index``: ``--n`` clustered synthetic vectors (koembed.synthetic) as a vector set; the one-process
  build (``Index.create`` + ``train`` on a 100k sample + ``add_vectors`` in chunks + commit, what
  ``koembed index`` does) vs ``build_index_from_vectors`` (shared quantiser, ``--parts`` parts on
  ``--workers`` processes, on-disk merge). Each build runs in a child process; peak memory is the
  largest summed RSS of its process tree, sampled every 0.1 s. Then recall@10 against exact search
  and QPS (1,000 queries in one batch, best of 3) of both indexes, each at its calibrated nprobe.
- ``quantizers``: recall@10 and QPS of IVF-Flat, IVF-SQ8 and IVF-PQ built by ``--from-vectors`` on
  real encoded text (the vector set ``encode --keep`` wrote; 1,000 held-out reviews as queries), and
  on synthetic vectors of the same size and dimension, to show how far synthetic data flatters IVF.

    python examples/benchmarks/scale.py encode --texts 200000 --keep /tmp/nsmc-vectors
    python examples/benchmarks/scale.py index --n 1000000 --dim 384
    python examples/benchmarks/scale.py quantizers --vectors /tmp/nsmc-vectors
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_bf16")


def machine() -> dict:
    from koembed.system import cpu_info

    model, flags = cpu_info()
    return {"cpu": model, "cores": os.cpu_count(), "flags": [f for f in CPU_FLAGS if f in flags],
            "load_average": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version()}


class PeakRSS:
    """Largest summed RSS of a process and its descendants, sampled every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        import psutil

        self.proc, self.every, self.peak = psutil.Process(pid), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                for p in [self.proc, *self.proc.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        continue
            except psutil.Error:
                return
            self.peak = max(self.peak, total)
            time.sleep(self.every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_child(code: str, *args: str) -> tuple[dict, float]:
    """Run ``code`` in a fresh interpreter; returns (its last stdout line as JSON, peak tree RSS in GB)."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    peak = PeakRSS(proc.pid)
    out, _ = proc.communicate()
    gb = peak.stop() / 1e9
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode})")
    return json.loads(out.strip().splitlines()[-1]), round(gb, 2)


# -- encode -----------------------------------------------------------------------------------------

def nsmc_texts(data: Path, n: int) -> list[str]:
    from koembed.korean_data import read_nsmc

    rows = read_nsmc(data / "nsmc" / "ratings_train.txt") + read_nsmc(data / "nsmc" / "ratings_test.txt")
    return [r["sentence1"] for r in rows][:n]


def bench_encode(args: argparse.Namespace) -> dict:
    from koembed.file_encoding import encode_file
    from koembed.paths import data_dir
    from koembed.scale import EncodeJobConfig, encode_distributed
    from koembed.scale.vector_set import VectorSet, iter_shard

    texts = nsmc_texts(Path(args.data_dir) if args.data_dir else data_dir(), args.texts)
    tmp = Path(tempfile.mkdtemp(prefix="koembed-scale-"))
    try:
        src = tmp / "reviews.txt"
        src.write_text("".join(t.replace("\n", " ") + "\n" for t in texts), encoding="utf-8")
        load_avg_before = os.getloadavg()[0]
        t = time.perf_counter()
        one = encode_file(src, tmp / "one.npy", model=args.model, backend=args.backend, batch_size=64,
                          show_progress=False)
        one_wall = time.perf_counter() - t
        t = time.perf_counter()
        pool = encode_file(src, tmp / "pool.npy", model=args.model, backend=args.backend, batch_size=64,
                           workers=args.workers, show_progress=False)
        pool_wall = time.perf_counter() - t
        out = Path(args.keep) if args.keep else tmp / "vectors"
        if out.exists():
            shutil.rmtree(out)
        t = time.perf_counter()
        ray = encode_distributed(EncodeJobConfig(input=str(src), output=str(out), model=args.model,
                                                 backend=args.backend, shard_rows=args.shard_rows,
                                                 num_workers=args.workers, gpus_per_worker=args.gpus_per_worker))
        ray_wall = time.perf_counter() - t
        vs = VectorSet.open(out)
        shard_seconds = [s.seconds for s in vs.manifest.shards]
        got = np.vstack([b.vectors for s in vs.manifest.shards for b in iter_shard(vs.shard_path(s),
                                                                                  columns=("vector",))])
        want = np.load(tmp / "one.npy")
        cos = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
        # Steady state: texts per second of shard work, summed over the actors working side by side.
        steady = len(texts) / (sum(shard_seconds) / args.workers)
        return {
            "phase": "encode", "texts": len(texts), "model": one.model, "backend": args.backend,
            "one_process": {"wall_s": round(one_wall, 1), "encode_s": round(one.seconds, 1),
                            "load_s": round(one.load_seconds, 1), "texts_per_s": round(one.texts_per_s, 1)},
            "process_pool": {"workers": args.workers, "wall_s": round(pool_wall, 1), "encode_s": round(pool.seconds, 1),
                             "texts_per_s": round(pool.texts_per_s, 1)},
            "ray": {"workers": args.workers, "shards": ray.shards, "wall_s": round(ray_wall, 1),
                    "texts_per_s_wall": round(len(texts) / ray_wall, 1), "texts_per_s_steady": round(steady, 1),
                    "texts_per_s_per_worker": round(steady / args.workers, 1),
                    "overhead_s": round(ray_wall - len(texts) / steady, 1)},
            "ratio_ray_wall_over_one_wall": round(ray_wall / one_wall, 3),
            "ratio_ray_wall_over_pool_wall": round(ray_wall / pool_wall, 3),
            "ratio_steady_ray_over_one": round(steady / one.texts_per_s, 3),
            "fidelity_min_cosine": float(cos.min()), "load_average_at_start": round(load_avg_before, 2),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- index ------------------------------------------------------------------------------------------

ONE_PROCESS = """
import json, sys, time
import numpy as np
from pathlib import Path
from koembed.index import Index
from koembed.scale.vector_set import VectorSet, iter_shard
vs = VectorSet.open(sys.argv[1], verify=False)
t = time.perf_counter()
index = Index.create(sys.argv[2], vs.dim, index_type=sys.argv[3], expected_count=vs.manifest.count,
                     model_name=vs.manifest.model["name"], model_fingerprint=vs.manifest.model["fingerprint"])
batches = (b for s in vs.manifest.shards for b in iter_shard(vs.shard_path(s)))
need, seen, pending = index.spec.train_size(), [], []
for b in batches:  # like koembed index: a training sample first, then add in chunks, one commit at the end
    if not index.is_trained:
        seen.append(b)
        if sum(len(x.ids) for x in seen) < need:
            continue
        index.train(np.vstack([x.vectors for x in seen]))
        pending, seen = seen, []
    else:
        pending = [b]
    for x in pending:
        index.add_vectors(x.ids, x.vectors, x.texts, [json.loads(m) for m in x.metadata], commit=False)
for x in seen:
    if not index.is_trained:
        index.train(np.vstack([y.vectors for y in seen]))
    index.add_vectors(x.ids, x.vectors, x.texts, [json.loads(m) for m in x.metadata], commit=False)
index.commit()
spec = index.manifest.spec
index.close()
print(json.dumps({"seconds": round(time.perf_counter() - t, 1), "spec": spec}))
"""

SHARDED = """
import json, sys
from koembed.scale.index_build import VectorIndexConfig, build_index_from_vectors
r = build_index_from_vectors(VectorIndexConfig(vectors=[sys.argv[1]], output=sys.argv[2], index_type=sys.argv[3],
                                               num_workers=int(sys.argv[4]), part_rows=int(sys.argv[5])))
print(json.dumps({"seconds": r.seconds, "spec": r.spec, "parts": r.parts, "workers": r.workers}))
"""


def synthetic_set(directory: Path, n: int, dim: int, shard_rows: int, seed: int = 0) -> None:
    from koembed.scale.vector_set import write_vector_set
    from koembed.synthetic import clustered_vectors

    def shards():
        row = 0
        for x in clustered_vectors(n, dim, seed=seed, chunk=shard_rows):
            ids = [f"d{row + i}" for i in range(len(x))]
            yield ids, x, ids, None
            row += len(x)

    write_vector_set(directory, shards(), model={"name": "synthetic", "fingerprint": "s" * 32, "backend": None})


def all_vectors(directory: Path) -> np.ndarray:
    from koembed.scale.vector_set import VectorSet, iter_shard

    vs = VectorSet.open(directory, verify=False)
    return np.vstack([b.vectors for s in vs.manifest.shards for b in iter_shard(vs.shard_path(s),
                                                                              columns=("vector",))])


def exact_top(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((len(q), k), dtype=np.int64)
    for s in range(0, len(q), 100):
        sims = q[s:s + 100] @ x.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[s:s + 100] = np.take_along_axis(top, order, axis=1)
    return out


def measure(directory: Path, q: np.ndarray, truth: np.ndarray, k: int = 10, nprobe: int | None = None) -> dict:
    from koembed.index import Index, search_vectors

    with Index.open(directory) as index:
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            _, rows = search_vectors(index, q, k, nprobe=nprobe)
            best = min(best, time.perf_counter() - t)
        recall = float(np.mean([len(set(r) & set(t)) / k for r, t in zip(rows.tolist(), truth.tolist(),
                                                                         strict=True)]))
        return {"spec": index.manifest.spec, "nprobe": nprobe or index.spec.search_defaults.get("nprobe"),
                "recall_at_10": round(recall, 4), "qps": round(len(q) / best, 1),
                "bytes": sum(p.stat().st_size for p in Path(directory).iterdir() if p.is_file())}


def bench_index(args: argparse.Namespace) -> dict:
    from koembed.synthetic import queries_like

    tmp = Path(tempfile.mkdtemp(prefix="koembed-scale-", dir=args.tmp))
    try:
        t = time.perf_counter()
        synthetic_set(tmp / "vectors", args.n, args.dim, args.shard_rows)
        write_s = time.perf_counter() - t
        load = os.getloadavg()[0]
        one, one_gb = run_child(ONE_PROCESS, str(tmp / "vectors"), str(tmp / "one"), args.index_type)
        part_rows = -(-args.n // args.parts)
        sharded, sharded_gb = run_child(SHARDED, str(tmp / "vectors"), str(tmp / "sharded"), args.index_type,
                                        str(args.workers), str(part_rows))
        x = all_vectors(tmp / "vectors")
        q = queries_like(args.queries, args.dim, n_corpus=args.n)
        truth = exact_top(x, q, 10)
        del x
        return {"phase": "index", "n": args.n, "dim": args.dim, "write_vector_set_s": round(write_s, 1),
                "one_process": {"seconds": one["seconds"], "peak_rss_gb": one_gb, "spec": one["spec"],
                                **measure(tmp / "one", q, truth)},
                "sharded": {**sharded, "peak_rss_gb": sharded_gb, **measure(tmp / "sharded", q, truth)},
                "ratio_sharded_over_one_time": round(sharded["seconds"]["total"] / one["seconds"], 3),
                "load_average_at_start": round(load, 2)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- quantizers -------------------------------------------------------------------------------------

def bench_quantizers(args: argparse.Namespace) -> dict:
    from koembed.scale.index_build import VectorIndexConfig, build_index_from_vectors
    from koembed.scale.vector_set import write_vector_set
    from koembed.synthetic import queries_like

    real = all_vectors(Path(args.vectors))
    corpus, q_real = real[:-args.queries], real[-args.queries:]
    n, dim = corpus.shape
    tmp = Path(tempfile.mkdtemp(prefix="koembed-scale-", dir=args.tmp))
    out: dict = {"phase": "quantizers", "n": n, "dim": dim, "queries": args.queries, "real": {}, "synthetic": {}}
    try:
        ids = [f"d{i}" for i in range(n)]
        step = args.shard_rows
        write_vector_set(tmp / "real", ((ids[s:s + step], corpus[s:s + step], None, None) for s in range(0, n, step)),
                         model={"name": "real", "fingerprint": "r" * 32, "backend": None})
        synthetic_set(tmp / "synthetic", n, dim, step)
        q_syn = queries_like(args.queries, dim, n_corpus=n)
        cases = {"real": (q_real, exact_top(corpus, q_real, 10)),
                 "synthetic": (q_syn, exact_top(all_vectors(tmp / "synthetic"), q_syn, 10))}
        for kind, (q, truth) in cases.items():
            for index_type in args.types.split(","):
                target = tmp / f"{kind}-{index_type}"
                t = time.perf_counter()
                build_index_from_vectors(VectorIndexConfig(vectors=[str(tmp / kind)], output=str(target),
                                                               index_type=index_type, num_workers=args.workers))
                row = {"build_s": round(time.perf_counter() - t, 1), **measure(target, q, truth)}
                row["nprobe_x2"] = measure(target, q, truth, nprobe=2 * row["nprobe"])
                out[kind][index_type] = row
                shutil.rmtree(target)
        out["load_average_at_end"] = round(os.getloadavg()[0], 2)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="phase", required=True)
    e = sub.add_parser("encode")
    e.add_argument("--texts", type=int, default=200_000)
    e.add_argument("--model", default=None)
    e.add_argument("--backend", default="torch")
    e.add_argument("--workers", type=int, default=2)
    e.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPU actors (the baselines stay on the CPU)")
    e.add_argument("--shard-rows", type=int, default=5000)
    e.add_argument("--data-dir", default=None)
    e.add_argument("--keep", default=None)
    i = sub.add_parser("index")
    i.add_argument("--n", type=int, default=1_000_000)
    i.add_argument("--dim", type=int, default=384)
    i.add_argument("--index-type", default="auto")
    i.add_argument("--parts", type=int, default=4)
    i.add_argument("--workers", type=int, default=2)
    i.add_argument("--shard-rows", type=int, default=50_000)
    i.add_argument("--queries", type=int, default=1000)
    i.add_argument("--tmp", default=None)
    qz = sub.add_parser("quantizers")
    qz.add_argument("--vectors", required=True)
    qz.add_argument("--types", default="ivf,ivfsq,ivfpq")
    qz.add_argument("--queries", type=int, default=1000)
    qz.add_argument("--workers", type=int, default=2)
    qz.add_argument("--shard-rows", type=int, default=50_000)
    qz.add_argument("--tmp", default=None)
    args = ap.parse_args(argv)
    result = {"encode": bench_encode, "index": bench_index, "quantizers": bench_quantizers}[args.phase](args)
    print(json.dumps(result | {"machine": machine(), "command": " ".join(sys.argv)}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
