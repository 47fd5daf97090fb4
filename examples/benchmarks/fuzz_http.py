"""Fuzz a live ``koembed serve`` for longer than the suite does (tests/test_serve_reliability.py, same strategies).

A child ``koembed serve`` (the embedded model, an index of examples/texts.txt with its lexical part) takes
arbitrary request bodies from hypothesis for ``--seconds``: JSON with strings from the whole of Unicode
(lone surrogates included, as ``\\uD8xx`` escapes), huge numbers, deep nesting, near-valid requests, raw
bytes, on /search, /v1/embeddings, /encode and the write route. The property, checked on every request:
no 5xx, a JSON answer, /healthz still answers; at the end: no traceback in the server's log, the process
alive. Hypothesis shrinks a failure to its smallest body and prints it.

    .venv/bin/python examples/benchmarks/fuzz_http.py [--seconds 120] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # the loopback helpers and the fuzz strategies of the serve tests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from hypothesis import given, seed, settings
    from serve_fixtures import free_port, serve_process, wait_healthy
    from test_serve_reliability import bodies, routes

    from koembed.cli import main as koembed

    work = Path(tempfile.mkdtemp(prefix="koembed-fuzz-"))
    index = work / "ix"
    if koembed(["index", str(REPO / "examples" / "texts.txt"), "-o", str(index), "-q"]) != 0:
        return 1
    port = free_port()
    log = work / "server.log"
    server = serve_process([str(index), "--batch-size", "16"], port)
    url = f"http://127.0.0.1:{port}"
    counts: dict[int, int] = {}
    try:
        wait_healthy(url, 120, server)
        client = httpx.Client(base_url=url, timeout=30)
        deadline = time.monotonic() + args.seconds

        def check(route: str, body: bytes) -> None:
            if time.monotonic() > deadline:
                return
            r = client.post(route, content=body, headers={"content-type": "application/json"})
            counts[r.status_code] = counts.get(r.status_code, 0) + 1
            assert r.status_code < 500, (route, body[:300], r.text[:300])
            assert r.headers["content-type"].startswith("application/json"), (route, body[:300])
            assert client.get("/healthz").status_code == 200

        rounds = 0
        while time.monotonic() < deadline:  # rounds of 200 examples, each round from its own seed
            seed(args.seed + rounds)(settings(max_examples=200, deadline=None, database=None)(
                given(route=routes, body=bodies)(check)))()
            rounds += 1
        alive = server.poll() is None
    finally:
        server.terminate()
        _, err = server.communicate(timeout=60)
        log.write_text(err or "", encoding="utf-8")
    tracebacks = (err or "").count("Traceback")
    total = sum(counts.values())
    print(f"{total} requests in {args.seconds:.0f} s; status counts {dict(sorted(counts.items()))}; "
          f"server alive at the end: {alive}; tracebacks in its log: {tracebacks} ({log})")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    return 0 if alive and tracebacks == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
