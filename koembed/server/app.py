"""``create_app``: the FastAPI application of ``koembed serve``, usable from Python.

    from koembed.server import ServeConfig, create_app

    app = create_app(indexes={"docs": "my-index"}, config=ServeConfig(api_key="secret"))
    # run it with any ASGI server, e.g. uvicorn.run(app, host="127.0.0.1", port=8000)

The model is loaded once, here; every index is opened here, so a bad path or a model that does not
match an index fails before the server starts, with one ``error:`` line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from koembed.errors import InputError
from koembed.server import api_errors
from koembed.server.body_limit import BodyLimit
from koembed.server.config import ServeConfig
from koembed.server.head import HeadAsGet
from koembed.server.registry import IndexRegistry
from koembed.server.routes import require_token, router
from koembed.server.service import Service

STATIC = Path(__file__).resolve().parent / "static"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# The page loads nothing from elsewhere and runs no inline script.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

IndexArg = Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike] | None


def index_paths(indexes: IndexArg) -> dict[str, Path]:
    """``{"name": path}`` from a mapping, or from paths / ``NAME=PATH`` strings (name: the folder's name)."""
    if indexes is None:
        return {}
    if isinstance(indexes, str | os.PathLike):
        indexes = [indexes]
    pairs: list[tuple[str, Path]] = []
    if isinstance(indexes, Mapping):
        pairs = [(str(n), Path(p)) for n, p in indexes.items()]
    else:
        for item in indexes:
            text = str(item)
            name, sep, path = text.partition("=")
            if sep and NAME.match(name) and not Path(text).exists():
                pairs.append((name, Path(path)))
            else:
                p = Path(text)
                pairs.append((p.resolve().name, p))
    out: dict[str, Path] = {}
    for name, path in pairs:
        if not NAME.match(name):
            raise InputError(f"index name {name!r}: use letters, digits, '_', '.' or '-' (name it with NAME=PATH)")
        if name in out:
            raise InputError(f"index name {name!r} is given twice ({out[name]} and {path}); name them with "
                             "NAME=PATH")
        out[name] = path
    return out


def load_model(model: Any, registry: IndexRegistry, config: ServeConfig) -> Any:
    """The one encoder of the server: ``model`` (an encoder or a name), else the indexes' model, else the default.

    Refuses (as ``koembed search`` does) an index whose vectors that model did not make.
    """
    from koembed.encoder import KoMiniLMEncoder

    summaries = registry.summaries()
    if model is not None and not isinstance(model, str | os.PathLike):
        encoder = model
    else:
        name, backend = model, config.backend
        if name is None and summaries:
            first = summaries[0].manifest.model
            name = first.name  # not its backend: any backend's vectors search it (koembed.index.query)
        encoder = KoMiniLMEncoder(str(name) if name is not None else None, device=config.device,
                                  backend=backend or "auto")
    for s in summaries:
        s.manifest.check_model(f"index {s.name}", encoder.fingerprint, encoder.dim,
                               allow_mismatch=config.allow_model_mismatch, name=encoder.model_name)
    return encoder


def bare_app(lifespan: Any = None) -> FastAPI:
    """The routes and error handlers without a model or indexes: what the OpenAPI schema is made from."""
    from koembed import __version__

    app = FastAPI(title="koembed", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None,
                  description="Korean sentence embeddings and search: OpenAI-compatible /v1/embeddings, /encode, "
                              "/search over koembed indexes, and a search page at /. Errors are JSON "
                              '{"error": {"message", "type", "param", "code"}}; param names the offending field.')
    api_errors.install(app)
    app.include_router(router)
    return app


def create_app(indexes: IndexArg = None, model: Any = None, config: ServeConfig | None = None) -> FastAPI:
    """The application serving ``indexes`` (names -> directories, or directories) with ``model``.

    ``model`` is a :class:`~koembed.KoMiniLMEncoder`, a model name or folder, or None for the model the
    indexes were built with (the embedded default when there is no index).
    """
    config = config or ServeConfig()
    registry = IndexRegistry(index_paths(indexes), check_interval_s=config.reload_check_s)
    try:
        encoder = load_model(model, registry, config)
        svc = Service(encoder, registry, config)
    except BaseException:
        registry.close()
        raise

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        try:
            yield
        finally:  # after uvicorn has let in-flight requests finish
            svc.close()

    app = bare_app(lifespan)
    app.state.service = svc

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(HeadAsGet)
    if config.cors_origin:  # added last: outermost, so preflight requests are answered before anything else
        app.add_middleware(CORSMiddleware, allow_origins=[config.cors_origin], allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app
