"""``koembed serve``: an HTTP service for search and embeddings, with a search page.

    from koembed.server import ServeConfig, create_app, serve

    app = create_app(indexes={"docs": "my-index"}, config=ServeConfig(port=8080))  # any ASGI server
    serve(["my-index"], config=ServeConfig(port=8080))  # or run it with uvicorn, as the CLI does

Modules: :mod:`~koembed.server.app` (the application factory), :mod:`~koembed.server.routes` (the routes),
:mod:`~koembed.server.service` (what they do, without HTTP), :mod:`~koembed.server.schemas` (request and
response bodies), :mod:`~koembed.server.registry` (served indexes and their reloads),
:mod:`~koembed.server.batcher` (micro-batched encoding), :mod:`~koembed.server.api_errors` (JSON errors),
:mod:`~koembed.server.run` (uvicorn), :mod:`~koembed.server.config` (:class:`ServeConfig`); the page's files
are in ``static/``. FastAPI and uvicorn come with the ``serve`` extra (``pip install 'koembed[serve]'``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from koembed.server.config import ServeConfig

_LAZY = {"create_app": "koembed.server.app", "serve": "koembed.server.run"}

if TYPE_CHECKING:
    from koembed.server.app import create_app
    from koembed.server.run import serve

__all__ = ["ServeConfig", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from koembed.server.run import require_extra

        require_extra()
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'koembed.server' has no attribute {name!r}")
