"""Helpers shared by the ``koembed serve`` tests: Korean documents, indexes built from them, live servers."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
TEXTS = (REPO / "examples" / "texts.txt").read_text(encoding="utf-8").splitlines()
TOPICS = ["날씨", "경제", "생활"]


def write_docs(path: Path, version: int = 0, n: int | None = None) -> Path:
    """The example texts as JSONL: ids ``t0..``, metadata ``{"topic", "line", "version"}``, texts tagged (판 N)."""
    rows = []
    for i, text in enumerate(TEXTS[:n]):
        body = text if version == 0 else f"{text} (판 {version})"
        rows.append({"id": f"t{i}", "text": body, "metadata": {"topic": TOPICS[i % 3], "line": i + 1,
                                                                "version": version}})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def build(directory: Path, docs: Path, model: Path, lexical: bool = True) -> Path:
    from koembed.index import IndexConfig, build_index

    build_index(IndexConfig(input=str(docs), output=str(directory), model=str(model), lexical=lexical), quiet=True)
    return directory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not become healthy in {timeout} s")


@contextlib.contextmanager
def live_server(app, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, 60)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


def serve_process(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``koembed serve ARGS --port PORT`` in a child process (stderr piped)."""
    return subprocess.Popen([sys.executable, "-m", "koembed", "serve", *args, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, cwd=REPO)
