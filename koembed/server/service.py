"""What the HTTP routes do, without HTTP: check a request against the limits, encode, search, describe.

All encoding goes through one :class:`~koembed.server.batcher.EncodeBatcher` (concurrent requests share
forward passes); all searching runs on the worker thread of the index generation being served, where
waiting searches that ask the same thing share a call (:mod:`koembed.server.index_worker`). The
coroutines here only wait, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from functools import partial
from typing import Any

import numpy as np

from koembed.index.modes import MODES
from koembed.server.api_errors import ApiError
from koembed.server.batcher import EncodeBatcher, Encoded
from koembed.server.config import ServeConfig
from koembed.server.registry import IndexRegistry
from koembed.server.schemas import SearchRequest
from koembed.text import normalize


class _Precomputed:
    """An encoder stand-in that returns the query vectors the batcher already computed."""

    def __init__(self, texts: list[str], vectors: np.ndarray, encoder: Any) -> None:
        self._rows = {t: i for i, t in enumerate(texts)}
        self._vectors = vectors
        self.fingerprint = encoder.fingerprint
        self.dim = encoder.dim
        self.model_name = encoder.model_name
        self.source = getattr(encoder, "source", None)  # hybrid mode reads the dense weight the model records

    def encode(self, texts: list[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        return self._vectors[[self._rows[t] for t in texts]]


def _score(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None  # JSON has no NaN


def _hit_dict(hit: Any) -> dict[str, Any]:
    d = hit.as_dict()
    return {"id": d["id"], "text": d["text"], "metadata": d["metadata"], "score": _score(d["score"]),
            "scores": {name: _score(v) for name, v in (d.get("scores") or {}).items()}}


def _search_on(index: Any, queries: list[str], vectors: np.ndarray | None, *, k: int,
               filters: dict[str, Any] | None, options: dict[str, Any], model: Any,
               allow_model_mismatch: bool) -> tuple[str, list[list[dict[str, Any]]]]:
    """On the generation's worker thread: the mode this index answers in, and the hits of each query."""
    from koembed.index import search
    from koembed.index.modes import resolve_mode

    options = dict(options)
    mode = resolve_mode(index, options.pop("mode"))
    encoder = _Precomputed(queries, vectors, model) if vectors is not None else None
    results = search(index, queries, k=k, filter=filters, encoder=encoder, allow_model_mismatch=allow_model_mismatch,
                     mode=mode, **options)
    return mode, [[_hit_dict(h) for h in hits] for hits in results]


class Service:
    """The model, its batcher, the served indexes and the limits, behind the routes of :mod:`koembed.server.app`."""

    def __init__(self, encoder: Any, registry: IndexRegistry, config: ServeConfig) -> None:
        self.encoder = encoder
        self.registry = registry
        self.config = config
        self.batcher = EncodeBatcher(encoder, batch_size=config.encode_batch, max_batch_texts=config.max_batch_texts,
                                     workers=config.workers)

    def close(self) -> None:
        self.batcher.close()
        self.registry.close()

    # -- limits ------------------------------------------------------------------------------------------
    def check_texts(self, texts: list[str], field: str) -> None:
        cap = self.config.max_batch
        if not texts:
            raise ApiError(422, f"{field}: empty list; send at least one text", field, "empty")
        if len(texts) > cap:
            raise ApiError(422, f"{field}: {len(texts)} texts, at most {cap} per request (max_batch); split the "
                           "request", field, "too_many")
        limit = self.config.max_text_chars
        for i, t in enumerate(texts):
            if len(t) > limit:
                raise ApiError(422, f"{field}[{i}]: {len(t)} characters, at most {limit} (max_text_chars); "
                               "split the text", f"{field}[{i}]", "too_long")
            if not normalize(t):
                raise ApiError(422, f"{field}[{i}]: empty text", f"{field}[{i}]", "empty")

    # -- encoding ----------------------------------------------------------------------------------------
    async def encode(self, texts: list[str], field: str, *, count_tokens: bool = True) -> Encoded:
        self.check_texts(texts, field)
        return await asyncio.wrap_future(self.batcher.submit(texts, count_tokens=count_tokens))

    async def embeddings(self, texts: list[str], encoding_format: str, dimensions: int | None) -> dict[str, Any]:
        """The body of an OpenAI embeddings response."""
        if dimensions is not None and dimensions != self.encoder.dim:
            raise ApiError(422, f"dimensions: this model gives {self.encoder.dim}-dimensional vectors and cannot "
                           f"shorten them; omit dimensions or send {self.encoder.dim}", "dimensions", "unsupported")
        enc = await self.encode(texts, "input")
        if encoding_format == "base64":  # OpenAI's: the little-endian float32 bytes of each vector
            rows = enc.vectors.astype("<f4", copy=False)
            embeddings: list[Any] = [base64.b64encode(r.tobytes()).decode("ascii") for r in rows]
        else:
            embeddings = enc.vectors.tolist()
        return {"object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)],
                "model": self.encoder.model_name,
                "usage": {"prompt_tokens": enc.tokens, "total_tokens": enc.tokens},
                "truncated": enc.truncated}

    async def encode_plain(self, texts: list[str]) -> dict[str, Any]:
        enc = await self.encode(texts, "texts")
        return {"model": self.encoder.model_name, "fingerprint": self.encoder.fingerprint, "dim": self.encoder.dim,
                "vectors": enc.vectors.tolist(), "tokens": enc.tokens, "truncated": enc.truncated}

    # -- search ------------------------------------------------------------------------------------------
    def _index_names(self, requested: str | list[str] | None) -> list[str]:
        if requested is None:
            names = self.registry.names
            if not names:
                raise ApiError(404, "index: this server serves no index; start it with one (koembed serve DIR)",
                               "index", "no_index")
            return names
        names = [requested] if isinstance(requested, str) else list(dict.fromkeys(requested))
        if not names:
            raise ApiError(422, "index: empty list; name an index or leave index out", "index", "empty")
        for n in names:
            if n not in self.registry.names:
                known = ", ".join(self.registry.names) or "none"
                raise ApiError(404, f"index: unknown index {n!r}; this server has: {known}", "index", "unknown_index")
        return names

    async def search(self, req: SearchRequest) -> dict[str, Any]:
        names = self._index_names(req.index)
        if not 1 <= req.k <= self.config.max_k:
            raise ApiError(422, f"k: must be between 1 and {self.config.max_k} (max_k), got {req.k}", "k",
                           "out_of_range")
        summaries = {s.name: s for s in self.registry.summaries()}
        if req.mode in ("hybrid", "lexical"):
            missing = [n for n in names if not summaries[n].lexical]
            if missing:
                raise ApiError(422, f"mode: index {missing[0]!r} has no lexical part, so {req.mode} search cannot "
                               "run on it; use dense, or add the lexical part (koembed add-lexical) and restart",
                               "mode", "unsupported")
        if req.mode != "hybrid" and (req.dense_weight is not None or req.fusion is not None):
            field = "dense_weight" if req.dense_weight is not None else "fusion"
            raise ApiError(422, f"{field}: only hybrid search fuses; send mode: hybrid", field, "unsupported")
        queries = list(req.queries)
        self.check_texts(queries, "queries")
        vectors = None
        if req.mode != "lexical":  # hybrid and dense need the query vectors; lexical loads no model
            vectors = (await asyncio.wrap_future(self.batcher.submit(queries))).vectors
        options: dict[str, Any] = {"mode": req.mode}
        if req.dense_weight is not None:
            options["dense_weight"] = req.dense_weight
        if req.fusion is not None:
            options["fusion"] = req.fusion
        filters = dict(req.filters) if req.filters else None
        run = partial(_search_on, k=req.k, filters=filters, options=options, model=self.encoder,
                      allow_model_mismatch=self.config.allow_model_mismatch)
        # Requests with equal keys ask the same of an index and may share one search call.
        key = json.dumps([req.k, filters, options], sort_keys=True)
        per_index = await asyncio.gather(*(self._search_index(n, queries, vectors, key, run) for n in names))
        return {"mode": req.mode, "k": req.k, "indexes": per_index}

    async def _search_index(self, name: str, queries: list[str], vectors: np.ndarray | None, key: str,
                            run: Any) -> dict[str, Any]:
        gen = self.registry.acquire(name)
        try:
            mode, hits = await asyncio.wrap_future(gen.search(key, queries, vectors, run))
        finally:
            self.registry.release(gen)
        return {"name": name, "generation": gen.generation, "count": gen.summary.count, "mode": mode,
                "results": [{"query": q, "hits": h} for q, h in zip(queries, hits, strict=True)]}

    # -- description -------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        from koembed import __version__

        e = self.encoder
        c = self.config
        return {"version": __version__,
                "model": {"name": e.model_name, "fingerprint": e.fingerprint, "dim": e.dim,
                          "max_seq_length": e.max_seq_length, "backend": e.backend_name},
                "modes": list(MODES),
                "indexes": [s.as_dict() for s in self.registry.summaries()],
                "limits": {"max_batch": c.max_batch, "max_k": c.max_k, "max_text_chars": c.max_text_chars,
                           "max_body_bytes": c.max_body_bytes},
                "auth": c.api_key is not None}
