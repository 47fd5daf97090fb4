"""``koembed serve``: a thin command over :func:`koembed.server.serve` (options mirror :class:`ServeConfig`)."""

from __future__ import annotations

import dataclasses

import typer

from koembed.cli.app import app
from koembed.server.config import API_KEY_ENV, ServeConfig

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ServeConfig)}


@app.command("serve")
def serve_cmd(
    indexes: list[str] | None = typer.Argument(
        None, help="Index directories to serve, each as DIR (named after the folder) or NAME=DIR."),
    model: str | None = typer.Option(None, "--model", "-m",
                                     help="Model (default: the indexes' model, else the embedded one)."),
    host: str = typer.Option(_DEFAULTS["host"], "--host", help="Address to bind; other than loopback is warned about."),
    port: int = typer.Option(_DEFAULTS["port"], "--port", min=0, max=65535, help="TCP port."),
    api_key: str | None = typer.Option(None, "--api-key", envvar=API_KEY_ENV, show_default=False,
                                       help="Bearer token required on every route but /healthz and the page."),
    cors_origin: str | None = typer.Option(None, "--cors-origin",
                                           help="Allow browser calls from this one origin (default: CORS off)."),
    max_batch: int = typer.Option(_DEFAULTS["max_batch"], "--max-batch", min=1,
                                  help="Texts (or queries) per request."),
    max_k: int = typer.Option(_DEFAULTS["max_k"], "--max-k", min=1, help="Hits per query."),
    max_text_chars: int = typer.Option(_DEFAULTS["max_text_chars"], "--max-text-chars", min=1,
                                       help="Characters per text or query."),
    max_body_bytes: int = typer.Option(_DEFAULTS["max_body_bytes"], "--max-body-bytes", min=1,
                                       help="Request body cap (checked before parsing)."),
    encode_batch: int = typer.Option(_DEFAULTS["encode_batch"], "--batch-size", min=1, help="Texts per forward pass."),
    max_batch_texts: int = typer.Option(_DEFAULTS["max_batch_texts"], "--max-batch-texts", min=1,
                                        help="Texts one micro-batch gathers from concurrent requests."),
    workers: int = typer.Option(_DEFAULTS["workers"], "--workers", min=1, help="Encode worker threads."),
    reload_check_s: float = typer.Option(_DEFAULTS["reload_check_s"], "--reload-check", min=0.0,
                                         help="Seconds between checks of each index for a newer generation."),
    backend: str | None = typer.Option(None, "--backend", help="Inference backend (default: auto)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, ... (torch backend)."),
    allow_model_mismatch: bool = typer.Option(False, "--allow-model-mismatch",
                                              help="Serve indexes built with another model."),
    allow_writes: bool = typer.Option(False, "--allow-writes", help="Enable the write API (add, replace and delete "
                                      "documents over HTTP); needs --api-key."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr."),
) -> None:
    """Serve indexes over HTTP: POST /search, POST /v1/embeddings (OpenAI shape), POST /encode, GET /info,
    GET /healthz, and a search page at /. Stops gracefully on SIGTERM or Ctrl-C."""
    from koembed.server import serve

    config = ServeConfig(host=host, port=port, api_key=api_key, cors_origin=cors_origin, max_batch=max_batch,
                         max_k=max_k, max_text_chars=max_text_chars, max_body_bytes=max_body_bytes,
                         encode_batch=encode_batch, max_batch_texts=max_batch_texts, workers=workers,
                         reload_check_s=reload_check_s, backend=backend, device=device,
                         allow_model_mismatch=allow_model_mismatch, allow_writes=allow_writes)
    serve(indexes or None, model, config, quiet=quiet)
