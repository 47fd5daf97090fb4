"""Run the service under uvicorn: what ``koembed serve`` does after parsing its options.

uvicorn handles SIGTERM and SIGINT gracefully: it stops accepting connections, lets the requests in
flight finish (up to ``shutdown_timeout_s``), then runs the app's shutdown, which drains the encode
queue and closes the indexes.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any

from koembed.errors import MissingExtraError
from koembed.server.config import ServeConfig

SHUTDOWN_TIMEOUT_S = 30


def require_extra() -> None:
    """Refuse with the extra to install when FastAPI or uvicorn is missing."""
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(f"koembed serve needs {' and '.join(missing)}: pip install 'koembed[serve]'")


def bind_warning(config: ServeConfig) -> str | None:
    """The warning printed when the server is reachable from other machines."""
    if config.is_loopback:
        return None
    auth = ("requests need the API key" if config.api_key else
            "no API key is set, so anyone who can reach it can use it (set --api-key or KOEMBED_API_KEY)")
    return f"warning: listening on {config.host}:{config.port}, reachable from other machines; {auth}"


def serve(indexes: Any = None, model: Any = None, config: ServeConfig | None = None, *, quiet: bool = False) -> None:
    """Load the model and indexes, then serve until SIGTERM/SIGINT (see :func:`koembed.server.create_app`)."""
    require_extra()
    import uvicorn

    from koembed.server.app import create_app

    config = config or ServeConfig()
    warning = bind_warning(config)
    if warning:
        print(warning, file=sys.stderr)
    app = create_app(indexes, model, config)
    svc = app.state.service
    if not quiet:
        names = ", ".join(svc.registry.names) or "none"
        print(f"koembed serve: http://{config.host}:{config.port}/ (model {svc.encoder.model_name}; indexes: {names}; "
              f"API key {'required' if config.api_key else 'not set'})", file=sys.stderr, flush=True)
    level = "warning" if quiet else config.log_level
    logging.getLogger("koembed.server").setLevel(level.upper())
    uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level=level,
                                  timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_S, server_header=False)).run()
