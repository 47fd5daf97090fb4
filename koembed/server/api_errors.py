"""Every error the service returns is JSON in OpenAI's shape, naming the offending field; none shows internals.

    {"error": {"message": "k: must be between 1 and 100, got 0", "type": "invalid_request_error",
               "param": "k", "code": "out_of_range"}}

``param`` is the request field in path notation (``input[3]``, ``filters.lang``), or ``body`` for the
request body as a whole. An unexpected exception is logged with its traceback on the server and
answered with a 500 that says only that something went wrong.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from koembed.errors import IndexRefusedError, InputError, KoembedError
from koembed.text import safe_text

log = logging.getLogger("koembed.server")

STATUS_TYPES = {401: "authentication_error", 404: "not_found_error", 413: "request_too_large",
                503: "service_unavailable"}


class ApiError(Exception):
    """A request the service refuses, with the HTTP status, a message and the field it concerns."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    kind = "server_error" if status >= 500 and status != 503 else STATUS_TYPES.get(status, "invalid_request_error")
    # Messages and field paths may echo what the client sent; a lone surrogate in them could not be sent as UTF-8.
    return {"error": {"message": safe_text(message), "type": kind, "param": None if param is None else safe_text(param),
                      "code": code}}


def error_response(status: int, message: str, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code), status_code=status, headers=headers)


def field_path(loc: tuple | list) -> str:
    """``("body", "input", 3)`` -> ``input[3]``; the body itself -> ``body``."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in ("str", "list[str]", "function-after[...]") or str(p).startswith(("function-", "list[", "union[")):
            continue  # pydantic's names for union branches and validators, not fields
        else:
            out += f".{p}" if out else str(p)
    return out or "body"


def _validation_message(err: dict[str, Any]) -> tuple[int, str, str, str]:
    kind = err.get("type", "")
    param = field_path(err.get("loc", ()))
    if kind == "json_invalid":
        where = err.get("loc", ())
        pos = f" at character {where[-1]}" if where and isinstance(where[-1], int) else ""
        reason = (err.get("ctx") or {}).get("error", "")
        return 400, "body", f"body: malformed JSON{pos} ({reason}); send a JSON object", "json_invalid"
    if kind == "missing" and param == "body":
        return 400, "body", "body: missing; send a JSON object with Content-Type: application/json", "missing"
    if kind == "model_attributes_type" and param == "body":
        return 400, "body", "body: expected a JSON object", "invalid_type"
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if kind == "extra_forbidden":
        msg = "unknown field (check its spelling)"
    return 422, param, f"{param}: {msg}", kind


class CatchUnexpected:
    """ASGI middleware answering an unexpected exception with the JSON 500, logged once with its traceback.

    Starlette's own last-resort handler answers too, but then re-raises, so the server logs the traceback a
    second time and drops the connection: a client reusing it (keep-alive) saw a reset on its next request.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # half an answer is out: only closing the connection can tell the client
                raise
            log.error("unexpected error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
            await error_response(500, "internal server error; the server log has the details", None,
                                 "internal")(scope, receive, send)


# An absolute path of two parts or more in a message: "/srv/data/news/docs.sqlite" (up to a space, quote, colon
# or bracket).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/>])/(?:[^\s/:;,'\"()<>]+/)+[^\s/:;,'\"()<>]+")


def public_message(message: str, request: Request) -> str:
    """``message`` without the server's paths: an index's directory reads as the index's name, any other
    absolute path as its last part. Clients know indexes by name; the layout of the server's disk is not theirs."""
    service = getattr(request.app.state, "service", None)
    registry = getattr(service, "registry", None)
    for name in getattr(registry, "names", []):
        message = message.replace(str(registry.path_of(name)), f"<index {name}>")
    return _ABSOLUTE_PATH.sub(lambda m: "…/" + m.group(0).rsplit("/", 1)[-1], message)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into a JSON error."""
    app.add_middleware(CatchUnexpected)  # the first added is the innermost: it sees the routes' exceptions

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.param, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # An unknown field first: a misspelt name also shows up as the required field it was meant to be.
        errors = sorted(exc.errors(), key=lambda e: e.get("type") != "extra_forbidden")
        status, param, message, code = _validation_message(errors[0]) if errors else (422, "body", "invalid", None)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        return error_response(status, message, param, code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, f"no route {request.url.path}; see /openapi.json", None, "not_found")
        if exc.status_code == 405:
            return error_response(405, f"{request.method} is not allowed on {request.url.path}", None,
                                  "method_not_allowed", dict(exc.headers or {}))
        if exc.status_code == 400:  # FastAPI could not parse the body (e.g. a number of over 4300 digits)
            return error_response(400, f"body: {exc.detail}; send a JSON object", "body", "invalid_body")
        return error_response(exc.status_code, str(exc.detail), None, None, dict(exc.headers or {}))

    @app.exception_handler(KoembedError)
    async def _koembed(request: Request, exc: KoembedError) -> JSONResponse:
        status = 422 if isinstance(exc, InputError) else 409 if isinstance(exc, IndexRefusedError) else 500
        if status == 500:
            log.error("request failed: %s", exc)
            return error_response(500, "internal server error; the server log has the details", None, "internal")
        log.info("request refused: %s", exc)  # the log keeps the paths the answer leaves out
        return error_response(status, public_message(str(exc), request), None, type(exc).__name__)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal server error; the server log has the details", None, "internal")
