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

from koembed.backends.prompts import QUERY
from koembed.index.modes import MODES
from koembed.model_names import public_model_name
from koembed.server.api_errors import ApiError
from koembed.server.batcher import EncodeBatcher, Encoded
from koembed.server.config import ServeConfig
from koembed.server.registry import IndexRegistry
from koembed.server.schemas import SearchRequest
from koembed.text import normalize


def _score(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None  # JSON has no NaN


def _hit_dict(hit: Any) -> dict[str, Any]:
    d = hit.as_dict()
    return {"id": d["id"], "text": d["text"], "metadata": d["metadata"], "score": _score(d["score"]),
            "scores": {name: _score(v) for name, v in (d.get("scores") or {}).items()}}


def _search_on(index: Any, queries: list[str], vectors: np.ndarray | None, *, k: int,
               filters: dict[str, Any] | None, options: dict[str, Any], model: Any, prompt: str,
               allow_model_mismatch: bool) -> tuple[str, list[list[dict[str, Any]]]]:
    """On the generation's worker thread: the mode this index answers in, and the hits of each query.

    The batcher's vectors go with the texts; ``model`` encodes nothing here, it vouches for them (its
    fingerprint and query prompt are checked against the index's, and it gives the hybrid weight).
    """
    from koembed.index.query import Query, answer

    query = Query(texts=queries, vectors=vectors, k=k, filter=filters, prompt=prompt, **options)
    mode, results = answer(index, query, model if vectors is not None else None,
                           allow_model_mismatch=allow_model_mismatch)
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
    async def encode(self, texts: list[str], field: str, *, count_tokens: bool = True,
                     prompt: str | None = None) -> Encoded:
        """Vectors of ``texts`` with ``prompt`` (None: the model's default prompt), from the shared batcher."""
        self.check_texts(texts, field)
        if prompt is None:
            prompt = self.encoder.prompts.resolve() if hasattr(self.encoder, "prompts") else ""
        return await asyncio.wrap_future(self.batcher.submit(texts, count_tokens=count_tokens, prompt=prompt))

    def role_prompt(self, input_type: str | None) -> str | None:
        """The prompt of an ``input_type`` (``query``, ``document``; None: the model's default)."""
        if input_type is None:
            return None
        return self.encoder.prompt_for(input_type) if hasattr(self.encoder, "prompt_for") else ""

    async def embeddings(self, texts: list[str], encoding_format: str, dimensions: int | None,
                         input_type: str | None = None) -> dict[str, Any]:
        """The body of an OpenAI embeddings response; ``input_type`` picks the query or document prompt."""
        if dimensions is not None and dimensions != self.encoder.dim:
            raise ApiError(422, f"dimensions: this model gives {self.encoder.dim}-dimensional vectors and cannot "
                           f"shorten them; omit dimensions or send {self.encoder.dim}", "dimensions", "unsupported")
        enc = await self.encode(texts, "input", prompt=self.role_prompt(input_type))
        if encoding_format == "base64":  # OpenAI's: the little-endian float32 bytes of each vector
            rows = enc.vectors.astype("<f4", copy=False)
            embeddings: list[Any] = [base64.b64encode(r.tobytes()).decode("ascii") for r in rows]
        else:
            embeddings = enc.vectors.tolist()
        return {"object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)],
                "model": public_model_name(self.encoder.model_name),
                "usage": {"prompt_tokens": enc.tokens, "total_tokens": enc.tokens},
                "truncated": enc.truncated}

    async def encode_plain(self, texts: list[str]) -> dict[str, Any]:
        enc = await self.encode(texts, "texts")
        return {"model": public_model_name(self.encoder.model_name), "fingerprint": self.encoder.fingerprint,
                "dim": self.encoder.dim,
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
        if req.mode is not None:  # each generation's modes were resolved by the library when it was opened
            missing = [n for n in names if req.mode not in summaries[n].modes]
            if missing:
                raise ApiError(422, f"mode: index {missing[0]!r} has no lexical part, so {req.mode} search cannot "
                               f"run on it; use {' or '.join(summaries[missing[0]].modes)}, or add the lexical part "
                               "(koembed add-lexical) and restart", "mode", "unsupported")
        if req.mode != "hybrid" and (req.dense_weight is not None or req.fusion is not None):
            field = "dense_weight" if req.dense_weight is not None else "fusion"
            raise ApiError(422, f"{field}: only hybrid search fuses; send mode: hybrid", field, "unsupported")
        queries = list(req.queries)
        self.check_texts(queries, "queries")
        vectors = None
        prompt = self.role_prompt(QUERY) or ""
        if req.mode != "lexical":  # hybrid and dense need the query vectors; lexical loads no model
            vectors = (await asyncio.wrap_future(self.batcher.submit(queries, prompt=prompt))).vectors
        options: dict[str, Any] = {"mode": req.mode}
        if req.dense_weight is not None:
            options["dense_weight"] = req.dense_weight
        if req.fusion is not None:
            options["fusion"] = req.fusion
        filters = dict(req.filters) if req.filters else None
        run = partial(_search_on, k=req.k, filters=filters, options=options, model=self.encoder, prompt=prompt,
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
                "model": {"name": public_model_name(e.model_name), "fingerprint": e.fingerprint, "dim": e.dim,
                          "max_seq_length": e.max_seq_length, "backend": e.backend_name},
                "modes": list(MODES),
                "indexes": [s.as_dict() for s in self.registry.summaries()],
                "limits": {"max_batch": c.max_batch, "max_k": c.max_k, "max_text_chars": c.max_text_chars,
                           "max_body_bytes": c.max_body_bytes},
                "auth": c.api_key is not None}
