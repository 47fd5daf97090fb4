"""The HTTP routes: thin wrappers over :class:`~koembed.server.service.Service`.

Every route but ``/healthz`` and the static search page requires the bearer token when one is set; the
page itself loads without it and sends the token the user types with each API call.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from koembed.server.api_errors import ApiError
from koembed.server.documents import DocumentWriter
from koembed.server.highlight import add_highlights
from koembed.server.schemas import (
    DeleteRequest,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EncodeRequest,
    EncodeResponse,
    ErrorResponse,
    Health,
    InfoResponse,
    ModelCard,
    ModelList,
    SearchRequest,
    SearchResponse,
    UpsertRequest,
    WriteResponse,
    is_token_array,
)
from koembed.server.service import Service

_bearer = HTTPBearer(auto_error=False, description="The server's API key (--api-key or $KOEMBED_API_KEY), when set.")


def service(request: Request) -> Service:
    return request.app.state.service


async def require_token(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    key = service(request).config.api_key
    if key is None:
        return
    given = creds.credentials.encode("utf-8") if creds is not None else b""
    if not hmac.compare_digest(given, key.encode("utf-8")):  # constant time: no guessing the key byte by byte
        raise ApiError(401, "missing or wrong API key; send the header Authorization: Bearer <key>", None,
                       "invalid_api_key", {"WWW-Authenticate": "Bearer"})


async def require_json(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError(415, f"body: Content-Type must be application/json, got {media or 'none'}", "body",
                       "unsupported_media_type")


def _json(body: dict[str, Any]) -> Response:
    # Serialised here, not validated against the response model: a batch of vectors is many floats.
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), media_type="application/json")


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": what} for status, what in [
        (400, "Malformed JSON or no body"), (401, "Missing or wrong API key"), (404, "Unknown index"),
        (413, "Body over max_body_bytes"), (415, "Content-Type is not application/json"),
        (422, "A field is invalid or over a limit; error.param names it"),
        (503, "Index being rewritten too fast to read; retry"), (500, "Unexpected failure (details in the log)")]
}
POST = [Depends(require_token), Depends(require_json)]

router = APIRouter()


@router.get("/healthz", response_model=Health, tags=["service"], summary="Liveness (no token needed)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/info", response_model=InfoResponse, tags=["service"], dependencies=[Depends(require_token)],
            responses={401: ERRORS[401]}, summary="Model, modes, limits and each index's count and generation")
async def info(request: Request) -> dict[str, Any]:
    return service(request).info()


@router.post("/search", response_model=SearchResponse, tags=["search"], dependencies=POST, responses=ERRORS,
             summary="Search one or more indexes")
async def search(body: SearchRequest, request: Request) -> Response:
    svc = service(request)
    result = await svc.search(body)
    if body.highlight:  # off the event loop: a character walk over every hit's text
        analysers = {s.name: (s.manifest.lexical or {}).get("analyser") for s in svc.registry.summaries()}
        result = await asyncio.to_thread(add_highlights, result, analysers)
    return _json(result)


@router.post("/v1/embeddings", response_model=EmbeddingsResponse, tags=["embeddings"], dependencies=POST,
             responses=ERRORS, summary="OpenAI-compatible embeddings")
async def embeddings(body: EmbeddingsRequest, request: Request) -> Response:
    if is_token_array(body.input):
        raise ApiError(400, "input: token arrays (lists of token ids) are not accepted: this server's model has its "
                       "own tokenizer, so send the text. LangChain's OpenAIEmbeddings sends token arrays unless "
                       "check_embedding_ctx_length=False (docs/serve.md)", "input", "token_arrays")
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    return _json(await service(request).embeddings(texts, body.encoding_format, body.dimensions, body.input_type))


@router.get("/v1/models", response_model=ModelList, tags=["embeddings"], dependencies=[Depends(require_token)],
            responses={401: ERRORS[401]}, summary="OpenAI-compatible model list: the one model this server has")
async def models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": [_model_card(request)]}


@router.get("/v1/models/{model_id:path}", response_model=ModelCard,
            tags=["embeddings"], dependencies=[Depends(require_token)], responses={401: ERRORS[401], 404: ERRORS[404]},
            summary="OpenAI-compatible model lookup")
async def model(model_id: str, request: Request) -> dict[str, Any]:
    card = _model_card(request)
    if model_id != card["id"]:
        raise ApiError(404, f"model {model_id!r}: this server has one model, {card['id']!r}", "model", "unknown_model")
    return card


def _model_card(request: Request) -> dict[str, Any]:
    from koembed.model_names import public_model_name

    return {"id": public_model_name(service(request).encoder.model_name), "object": "model", "created": 0,
            "owned_by": "koembed"}


WRITE_ERRORS = ERRORS | {403: {"model": ErrorResponse, "description": "Writes are off (--allow-writes)"},
                         409: {"model": ErrorResponse, "description": "Another process is writing the index"}}


@router.post("/v1/indexes/{index}/documents", response_model=WriteResponse, tags=["write"], dependencies=POST,
             responses=WRITE_ERRORS, summary="Add or replace documents (needs --allow-writes and the API key)")
async def upsert_documents(index: str, body: UpsertRequest, request: Request) -> Response:
    return _json(await _writer(request).upsert(service(request), index, list(body.documents)))


@router.post("/v1/indexes/{index}/documents/delete", response_model=WriteResponse, tags=["write"], dependencies=POST,
             responses=WRITE_ERRORS, summary="Delete documents by id (needs --allow-writes and the API key)")
async def delete_documents(index: str, body: DeleteRequest, request: Request) -> Response:
    return _json(await _writer(request).delete(service(request), index, list(body.ids)))


def _writer(request: Request) -> DocumentWriter:
    state = request.app.state
    if getattr(state, "document_writer", None) is None:
        state.document_writer = DocumentWriter()
    return state.document_writer


@router.post("/encode", response_model=EncodeResponse, tags=["embeddings"], dependencies=POST, responses=ERRORS,
             summary="Encode texts (plain shape)")
async def encode(body: EncodeRequest, request: Request) -> Response:
    return _json(await service(request).encode_plain(list(body.texts)))
