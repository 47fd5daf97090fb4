"""Load benchmark of ``koembed serve``: concurrent clients on loopback against a 100k-document index.

One run, on one machine:

1. an index of ``--docs`` NSMC reviews (``../shared/data/nsmc``; ids, texts, label metadata, and the
   lexical part of every new index) whose vectors are clustered synthetic unit vectors
   (``koembed.synthetic``) recorded under the model's fingerprint: the server's search path (encode the
   query, FAISS, BM25, SQLite fetch, JSON) is the real one, only the document vectors are not the
   model's (encoding 100k texts would dominate the run). Kept in ``.cache/bench/`` and reused;
2. ``koembed serve`` in a child process (its own CPU time and RSS); RSS read before and after the load;
3. load phases of ``--seconds`` each, every client an asyncio task sending its next request when its
   last one is answered: ``/search`` (one review as query, k=10) in dense and in hybrid mode at
   ``--search-clients``;
   ``/v1/embeddings`` with one text per request at one client (latency-bound); ``/v1/embeddings`` with
   ``--texts-per-request`` texts at ``--embed-clients`` clients (batch-friendly), base64 as OpenAI's
   client asks by default, and the same with floats;
4. with no server running (half before the phases, half after, as the load of a shared machine drifts),
   ``KoMiniLMEncoder.encode`` called directly in this process on random samples of the same texts for
   ``--seconds`` (batches of 64): 1,024 texts a call (long length-sorted runs, the best encode does) and
   one request's texts a call. The baselines of the embeddings throughput ratio (target: >= 0.8 of
   direct at batch-friendly concurrency).

Because the machine may be shared, each phase also records CPU seconds used by the server process and
by the clients, and throughput per CPU-second of the server next to the direct call's per CPU-second.

Every response is checked (status 200, the number of hits or vectors); errors are counted, not hidden.
The clients run on the same machine as the server and take CPU from it; the load average is printed.

    .venv/bin/python examples/benchmarks/serve.py [--docs 100000] [--seconds 20] [--json docs/results/serve.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # the loopback helpers of the serve tests


def nsmc_texts(data: Path, n: int) -> list[tuple[str, str, int]]:
    """``(id, text, label)`` of the first ``n`` non-empty NSMC reviews (train, then test)."""
    from koembed.korean_data import read_nsmc

    rows = []
    for name in ("ratings_train.txt", "ratings_test.txt"):
        for r in read_nsmc(data / "nsmc" / name):
            rows.append((f"{name[8:-4]}-{r['line']}", r["sentence1"], r["label"]))
            if len(rows) == n:
                return rows
    raise SystemExit(f"only {len(rows)} NSMC reviews in {data / 'nsmc'}; ask for fewer --docs")


def build_index(directory: Path, rows: list[tuple[str, str, int]], encoder) -> None:
    from koembed.index import Index
    from koembed.synthetic import clustered_vectors

    if (directory / "manifest.json").is_file():
        with Index.open(directory) as ix:
            if (ix.count == len(rows) and ix.manifest.model.fingerprint == encoder.fingerprint
                    and ix.lexical is not None):
                return
        import shutil

        shutil.rmtree(directory)
    t = time.perf_counter()
    with Index.create(directory, encoder.dim, expected_count=len(rows), model_name=encoder.model_name,
                      model_fingerprint=encoder.fingerprint) as ix:
        start = 0
        for chunk in clustered_vectors(len(rows), encoder.dim, seed=0, chunk=20_000):
            part = rows[start:start + len(chunk)]
            ix.add_vectors([r[0] for r in part], chunk, [r[1] for r in part], [{"label": r[2]} for r in part],
                           commit=False)
            start += len(chunk)
        ix.commit()
        spec = ix.manifest.spec
    print(f"index: {len(rows)} documents ({spec}) built in {time.perf_counter() - t:.1f} s", file=sys.stderr)


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one by default), its threads included."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


async def load(url: str, clients: int, seconds: float, make_request, check) -> dict:
    """``clients`` tasks send requests back to back for ``seconds``; latency percentiles, rate, errors."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    items = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        async def client(seed: int) -> None:
            nonlocal items
            rng = random.Random(seed)
            while time.perf_counter() < deadline:
                path, body, n = make_request(rng)
                t = time.perf_counter()
                try:
                    r = await http.post(path, json=body)
                    ok = r.status_code == 200 and check(r.json(), n)
                    if not ok:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    continue
                latencies.append(time.perf_counter() - t)
                items += n
        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {"clients": clients, "seconds": round(elapsed, 2), "requests": len(latencies), "errors": len(errors),
            "first_error": errors[0] if errors else None, "requests_per_s": round(len(latencies) / elapsed, 1),
            "items_per_s": round(items / elapsed, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None}


def direct_rate(encoder, texts: list[str], seconds: float, per_call: int) -> dict:
    """``encoder.encode`` on random samples of ``per_call`` texts (batches of 64) for ``seconds``: texts, wall
    seconds and CPU seconds."""
    rng = random.Random(per_call)
    encoder.encode(texts[:64])
    done, start, cpu = 0, time.perf_counter(), cpu_seconds()
    while time.perf_counter() - start < seconds:
        encoder.encode(rng.sample(texts, per_call), batch_size=64)
        done += per_call
    return {"texts": done, "wall_s": time.perf_counter() - start, "cpu_s": cpu_seconds() - cpu,
            "load_average": round(os.getloadavg()[0], 1)}


def combine(parts: list[dict], per_call: int) -> dict:
    """Direct runs measured before and after the server phases, as one rate (the load drifts over a run)."""
    texts, wall, cpu = (sum(p[k] for p in parts) for k in ("texts", "wall_s", "cpu_s"))
    return {"texts_per_call": per_call, "texts_per_s": round(texts / wall, 1), "texts_per_cpu_s": round(texts / cpu, 1),
            "texts_per_s_before_after": [round(p["texts"] / p["wall_s"], 1) for p in parts],
            "load_average_before_after": [p["load_average"] for p in parts]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each load phase")
    ap.add_argument("--search-clients", type=int, default=8)
    ap.add_argument("--embed-clients", type=int, default=16)
    ap.add_argument("--texts-per-request", type=int, default=64)
    ap.add_argument("--model", default=None, help="model (default: the embedded one)")
    ap.add_argument("--serve-args", default="", help="extra koembed serve options, e.g. '--max-batch-texts 128'")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    from serve_fixtures import free_port, serve_process, wait_healthy

    from koembed import KoMiniLMEncoder
    from koembed.paths import data_dir
    from koembed.system import machine_summary

    machine = machine_summary()
    print(f"machine: {machine}", file=sys.stderr)
    encoder = KoMiniLMEncoder(args.model)
    rows = nsmc_texts(data_dir(), args.docs)
    texts = [r[1] for r in rows]
    directory = REPO / ".cache" / "bench" / f"serve-{args.docs}"
    build_index(directory, rows, encoder)

    # Direct baselines, half before the server phases and half after (see combine): large calls (the best
    # encode does: long length-sorted runs, little padding) and calls of one request's texts (what a client
    # without the server would run per request).
    sizes = (1024, args.texts_per_request)
    direct_parts = {n: [direct_rate(encoder, texts, args.seconds / 2, n)] for n in sizes}

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(directory), "--quiet", *args.serve_args.split()] + (["--model", args.model] if args.model else [])
    proc = serve_process(cmd, port)
    results: dict = {"machine": machine, "docs": args.docs, "serve_args": cmd[1:], "model": encoder.model_name,
                     "backend": encoder.backend_name, "phases": {}}
    try:
        wait_healthy(url, 300, proc)
        results["index"] = json.loads(subprocess.run(
            [sys.executable, "-c", f"import httpx; print(httpx.get('{url}/info').text)"], capture_output=True,
            text=True, check=True).stdout)["indexes"][0]
        results["rss_mb_before"] = round(rss_mb(proc.pid), 1)

        def search_request(mode: str):
            def make(rng):
                return "/search", {"queries": [rng.choice(texts)], "k": 10, "mode": mode}, 1
            return make

        def embed_request(n: int, fmt: str):
            def make(rng):
                return "/v1/embeddings", {"input": rng.sample(texts, n), "model": "koembed", "encoding_format": fmt}, n
            return make

        def hits_ok(body, _n):
            ix = body["indexes"][0]
            hits = ix["results"][0]["hits"]
            # Dense always finds k; hybrid keeps only lexical matches when the model's dense weight is 0 (the
            # embedded model's tuned weight), so a query matching fewer documents gets fewer hits.
            return len(hits) == 10 if ix["mode"] == "dense" else 0 <= len(hits) <= 10

        def vectors_ok(body, n):
            if len(body["data"]) != n:
                return False
            e = body["data"][0]["embedding"]
            size = len(base64.b64decode(e)) // 4 if isinstance(e, str) else len(e)
            return size == encoder.dim

        phases = [
            ("search, dense", args.search_clients, search_request("dense"), hits_ok),
            ("search, hybrid", args.search_clients, search_request("hybrid"), hits_ok),
            ("embeddings, 1 text, 1 client", 1, embed_request(1, "base64"), vectors_ok),
            (f"embeddings, {args.texts_per_request} texts, {args.embed_clients} clients, base64", args.embed_clients,
             embed_request(args.texts_per_request, "base64"), vectors_ok),
            (f"embeddings, {args.texts_per_request} texts, {args.embed_clients} clients, float", args.embed_clients,
             embed_request(args.texts_per_request, "float"), vectors_ok),
        ]
        for name, clients, make, check in phases:
            server_cpu, client_cpu = cpu_seconds(proc.pid), cpu_seconds()
            r = asyncio.run(load(url, clients, args.seconds, make, check))
            r["server_cpu_s"] = round(cpu_seconds(proc.pid) - server_cpu, 2)
            r["client_cpu_s"] = round(cpu_seconds() - client_cpu, 2)
            r["items_per_server_cpu_s"] = round(r["items_per_s"] * r["seconds"] / max(r["server_cpu_s"], 1e-9), 1)
            r["load_average"] = round(os.getloadavg()[0], 1)
            results["phases"][name] = r
            print(f"{name}: {json.dumps(r)}", file=sys.stderr)
        results["rss_mb_after"] = round(rss_mb(proc.pid), 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    results["server_exit"] = proc.returncode
    for n in sizes:
        direct_parts[n].append(direct_rate(encoder, texts, args.seconds / 2, n))
    big, small = (combine(direct_parts[n], n) for n in sizes)
    results["direct"] = {f"{d['texts_per_call']} texts a call": d for d in (big, small)}
    for name, r in results["phases"].items():
        if name.startswith("embeddings"):
            r["ratio_to_direct_1024"] = round(r["items_per_s"] / big["texts_per_s"], 3)
            r["cpu_ratio_to_direct_1024"] = round(r["items_per_server_cpu_s"] / big["texts_per_cpu_s"], 3)
            r[f"ratio_to_direct_{args.texts_per_request}"] = round(r["items_per_s"] / small["texts_per_s"], 3)
    print(json.dumps(results, ensure_ascii=False, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
