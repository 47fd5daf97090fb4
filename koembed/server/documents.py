"""The write API: upsert and delete documents of a served index, with the writer ``koembed index`` uses.

Off unless the server is started with ``--allow-writes``, which needs an API key (a write is never open
to whoever reaches the port). A write:

1. checks the documents against the server's limits, and encodes their texts through the shared batcher
   with the model's document prompt (as ``koembed index`` does);
2. on a worker thread, opens the index writable (:meth:`koembed.index.Index.open`: the folder lock makes it
   the one writer, across processes too: a ``koembed index`` running on the same folder gets a 409 here
   and this server's next write waits its turn), checks the model against the index's, upserts or
   removes, and commits (the crash-safe commit of every koembed write: the index is at its last generation
   or this one, never between);
3. has the registry serve the new generation before answering, so the writer reads its own write;
   searches in flight finish on the snapshot they started on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from koembed.errors import IndexRefusedError, WriteError
from koembed.server.api_errors import ApiError
from koembed.text import normalize

DOCUMENT = "document"  # the role whose prompt documents are encoded with (koembed.backends.prompts)


def _check_allowed(service: Any) -> None:
    if not getattr(service.config, "allow_writes", False):
        raise ApiError(403, "writes are off on this server; start it with --allow-writes (and an API key) to add or "
                       "delete documents", None, "writes_disabled")


def _check_index(service: Any, name: str) -> None:
    if name not in service.registry.names:
        known = ", ".join(service.registry.names) or "none"
        raise ApiError(404, f"index: unknown index {name!r}; this server has: {known}", "index", "unknown_index")


def _check_documents(service: Any, documents: list[Any]) -> None:
    cap, limit = service.config.max_batch, service.config.max_text_chars
    if len(documents) > cap:
        raise ApiError(422, f"documents: {len(documents)} documents, at most {cap} per request (max_batch); split the "
                       "request", "documents", "too_many")
    for i, d in enumerate(documents):
        if not d.id.strip():
            raise ApiError(422, f"documents[{i}].id: blank; give each document an id", f"documents[{i}].id", "empty")
        if len(d.text) > limit:
            raise ApiError(422, f"documents[{i}].text: {len(d.text)} characters, at most {limit} (max_text_chars); "
                           "split the text", f"documents[{i}].text", "too_long")
        if not normalize(d.text):
            raise ApiError(422, f"documents[{i}].text: empty text", f"documents[{i}].text", "empty")


def _document_prompt(encoder: Any) -> str | None:
    return encoder.prompt_for(DOCUMENT) if hasattr(encoder, "prompt_for") else None


class DocumentWriter:
    """Serialises the writes of one server: one at a time per index (the folder lock covers other processes)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def upsert(self, service: Any, name: str, documents: list[Any]) -> dict[str, Any]:
        _check_allowed(service)
        _check_index(service, name)
        _check_documents(service, documents)
        prompt = _document_prompt(service.encoder)
        texts = [d.text for d in documents]
        enc = await service.encode(texts, "documents", **({"prompt": prompt} if prompt is not None else {}))
        ids = [d.id for d in documents]
        metadata = [d.metadata for d in documents]

        def write(index: Any) -> dict[str, int]:
            extra = {"prompts": {DOCUMENT: prompt}} if prompt is not None else {}
            index.check_model(service.encoder.fingerprint, service.encoder.dim, name=service.encoder.model_name,
                              **extra)
            counts = index.add_vectors(ids, enc.vectors, [normalize(t) for t in texts], metadata, commit=True)
            return {"added": counts["added"], "replaced": counts["replaced"]}

        return await self._run(service, name, write)

    async def delete(self, service: Any, name: str, ids: list[str]) -> dict[str, Any]:
        _check_allowed(service)
        _check_index(service, name)
        if len(ids) > service.config.max_batch:
            raise ApiError(422, f"ids: {len(ids)} ids, at most {service.config.max_batch} per request (max_batch); "
                           "split the request", "ids", "too_many")
        return await self._run(service, name, lambda index: {"removed": index.remove(ids, commit=True)})

    async def _run(self, service: Any, name: str, change: Any) -> dict[str, Any]:
        path = service.registry.path_of(name)

        def in_thread() -> dict[str, Any]:
            from koembed.index import Index

            index = Index.open(path, writable=True)
            try:
                result = change(index)
                return result | {"generation": index.generation, "count": index.count}
            finally:
                index.close()

        async with self._lock(name):
            try:
                result = await asyncio.to_thread(in_thread)
            except IndexRefusedError as exc:  # named by the index, not by the server's folder for it
                reason = str(exc).split(": ", 1)[-1]
                raise ApiError(409, f"index {name!r}: {reason}", "index", "index_refused") from None
            except WriteError as exc:
                reason = str(exc).split(": ", 1)[-1]
                raise ApiError(507, f"index {name!r}: the write failed ({reason})", "index", "write_failed") from None
            await asyncio.to_thread(service.registry.reload, name)
        return {"index": name, **result}
