"""A live ``koembed serve`` on a loopback port: OpenAI's own client against it, and a graceful SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from serve_fixtures import TEXTS, build, free_port, live_server, serve_process, wait_healthy, write_docs

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'koembed[serve]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'koembed[serve]')")

from koembed.server import ServeConfig, create_app  # noqa: E402


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_st_dir):
    root = tmp_path_factory.mktemp("serve-live")
    return build(root / "news", write_docs(root / "news.jsonl"), tiny_st_dir)


def test_openai_python_client_works_unchanged(index_dir, tiny_encoder):
    openai = pytest.importorskip("openai", reason="the openai client is not installed (pip install openai)")
    app = create_app({"news": index_dir}, tiny_encoder, ServeConfig(api_key="test-key"))
    with live_server(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="test-key", max_retries=0)
        texts = ["안녕하세요, 반갑습니다.", TEXTS[9]]
        direct = tiny_encoder.encode(texts)
        lengths = np.minimum(tiny_encoder.token_lengths(texts), tiny_encoder.max_seq_length)
        # The client asks for base64 by default and decodes it itself: the bytes must be OpenAI's layout.
        r = client.embeddings.create(model="text-embedding-3-small", input=texts)
        assert [d.index for d in r.data] == [0, 1] and r.object == "list"
        np.testing.assert_allclose(np.array([d.embedding for d in r.data]), direct, atol=1e-6)
        assert r.model == Path(tiny_encoder.model_name).name  # the model's name, never the server's path
        assert r.usage.prompt_tokens == r.usage.total_tokens == int(lengths.sum())
        r = client.embeddings.create(model="any", input=texts[1], encoding_format="float")
        np.testing.assert_allclose(r.data[0].embedding, direct[1], atol=1e-6)

        with pytest.raises(openai.BadRequestError) as bad:
            client.embeddings.create(model="any", input=[[101, 2023, 102]])
        assert "token arrays" in str(bad.value)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).embeddings.create(
                model="any", input="x")


def _send_slowly(port: int, body: bytes) -> tuple[socket.socket, bytes]:
    """Open a request to /v1/embeddings and send its headers and half its body; return the socket and the rest."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    half = len(body) // 2
    sock.sendall(head + body[:half])
    return sock, body[half:]


def _read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(payload)


@pytest.mark.slow
def test_sigterm_lets_the_request_in_flight_finish(index_dir, tiny_st_dir):
    port = free_port()
    proc = serve_process([str(index_dir), "--model", str(tiny_st_dir)], port)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", 180, proc)
        body = json.dumps({"input": TEXTS[:5]}, ensure_ascii=False).encode()
        sock, rest = _send_slowly(port, body)
        time.sleep(0.5)  # the server has the headers: the request is in flight
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert proc.poll() is None, "the server exited with a request in flight"
        with pytest.raises(OSError):  # but it takes no new connections
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        sock.sendall(rest)
        status, payload = _read_response(sock)
        sock.close()
        assert status == 200 and len(payload["data"]) == 5
        rc = proc.wait(60)
        err = proc.stderr.read()
        assert rc == 0, (rc, err)  # SIGTERM is how a server is stopped: a normal stop, said as one
        assert f"koembed serve: http://127.0.0.1:{port}/" in err
        assert err.strip().splitlines()[-1] == "koembed serve: stopped (SIGTERM); requests in flight were answered"
        assert "Traceback" not in err and "error:" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
