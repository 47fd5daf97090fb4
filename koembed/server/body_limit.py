"""The request-body cap and the text check, enforced before anything parses the body.

A declared ``Content-Length`` over the cap is answered at once (the body is never read); a body sent
without one (chunked) is counted as it arrives and refused as soon as it passes the cap. A JSON body
within the cap is then checked for text that is not text (:mod:`koembed.server.text_check`) and handed
on. Either way the answer is the service's JSON error (Starlette's own body limit answers in plain text).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koembed.server.api_errors import error_response
from koembed.server.text_check import body_problem


def _message(limit: int) -> str:
    return f"body: larger than the cap of {limit} bytes (max_body_bytes); send fewer or shorter texts per request"


def _is_json(scope: Scope) -> bool:
    media = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
    return media == b"application/json"


class BodyLimit:
    """ASGI middleware refusing request bodies over ``limit`` bytes with a JSON 413, and JSON bodies that
    hold a lone surrogate or bytes that are not UTF-8 with a JSON 422 / 400."""

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
        # The whole body is read here (within the cap; the route would read it all anyway), then replayed.
        chunks: list[bytes] = []
        seen = 0
        first: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                first = message
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await error_response(413, _message(self.limit), "body", "too_large",
                                     {"Connection": "close"})(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if first is None and _is_json(scope):
            problem = body_problem(body)
            if problem is not None:
                status, param, message_text, code = problem
                await error_response(status, message_text, param, code)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first or {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
