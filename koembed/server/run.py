"""Run the service under uvicorn: what ``koembed serve`` does after parsing its options.

uvicorn handles SIGTERM and SIGINT gracefully: it stops accepting connections, lets the requests in
flight finish (up to ``shutdown_timeout_s``), then runs the app's shutdown, which drains the encode
queue and closes the indexes.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import socket
import sys
from typing import Any

from koembed.errors import InputError, KoembedError, MissingExtraError, Terminated
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


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port``, or one line saying why the address cannot be had.

    Bound before the model loads: a port in use is reported at once and clearly (uvicorn, binding it
    itself after the model had loaded, exited 3, the code of "model not found").
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart may reuse the port
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc)
        hint = {errno.EADDRINUSE: "another program is listening there; stop it or choose another --port",
                errno.EACCES: "ports below 1024 need privileges; choose another --port",
                errno.EADDRNOTAVAIL: "that address is not one of this machine's; check --host"}.get(
                    getattr(exc, "errno", None), "check --host and --port")
        raise InputError(f"cannot listen on {host}:{port} ({reason}); {hint}") from None
    sock.set_inheritable(True)
    return sock


def serve(indexes: Any = None, model: Any = None, config: ServeConfig | None = None, *, quiet: bool = False) -> None:
    """Load the model and indexes, then serve until SIGTERM/SIGINT (see :func:`koembed.server.create_app`)."""
    require_extra()
    import uvicorn

    from koembed.server.app import create_app

    config = config or ServeConfig()
    warning = bind_warning(config)
    if warning:
        print(warning, file=sys.stderr)
    sock = bind(config.host, config.port)
    try:
        app = create_app(indexes, model, config)
        svc = app.state.service
        port = sock.getsockname()[1]  # the one the system chose, for --port 0
        if not quiet:
            names = ", ".join(svc.registry.names) or "none"
            print(f"koembed serve: http://{config.host}:{port}/ (model {svc.encoder.model_name}; indexes: {names}; "
                  f"API key {'required' if config.api_key else 'not set'})", file=sys.stderr, flush=True)
        level = "warning" if quiet else config.log_level
        logging.getLogger("koembed.server").setLevel(level.upper())
        server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=port, log_level=level,
                                               timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_S, server_header=False))
        try:
            server.run(sockets=[sock])
        except Terminated:  # uvicorn stopped gracefully on SIGTERM, then re-raised it: the normal way to stop
            if not quiet:
                print("koembed serve: stopped (SIGTERM); requests in flight were answered", file=sys.stderr,
                      flush=True)
            return
        except SystemExit as exc:  # uvicorn's startup failure is exit 3, koembed's "model not found": say what it was
            if exc.code in (0, None):
                raise
            raise KoembedError(f"the server on {config.host}:{port} failed to start (uvicorn's message is above)") \
                from None
    finally:
        sock.close()
