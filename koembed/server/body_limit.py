"""The request-body cap, enforced before anything parses the body.

A declared ``Content-Length`` over the cap is answered at once (the body is never read); a body sent
without one (chunked) is counted as it arrives and refused as soon as it passes the cap. Either way the
answer is the service's JSON error (Starlette's own body limit answers in plain text).
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koembed.server.api_errors import error_response


def _message(limit: int) -> str:
    return f"body: larger than the cap of {limit} bytes (max_body_bytes); send fewer or shorter texts per request"


class BodyLimit:
    """ASGI middleware refusing request bodies over ``limit`` bytes with a JSON 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0 or size > self.limit:
                status, message, code = ((413, _message(self.limit), "too_large") if size > self.limit
                                         else (400, "body: invalid Content-Length header", "invalid_length"))
                await error_response(status, message, "body", code, {"Connection": "close"})(scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # An HTTPException passes through FastAPI's body parsing to the JSON error handler.
                    raise HTTPException(413, _message(self.limit))
            return message

        await self.app(scope, counted, send)
