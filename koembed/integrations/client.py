"""``KoembedClient``: the HTTP calls the retrievers make to a ``koembed serve`` (search, and the write API).

Errors come back as :class:`~koembed.errors.KoembedError` carrying the server's one-line message (which
names the offending field), never as a bare HTTP status.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from koembed.errors import KoembedError
from koembed.extras import require

API_KEY_ENV = "KOEMBED_API_KEY"


@dataclass(frozen=True)
class SearchHit:
    id: str
    text: str
    score: float | None
    metadata: dict[str, Any]
    scores: dict[str, float | None]  # dense, lexical, fused (None where the mode computed none)
    index: str


@dataclass
class KoembedClient:
    """A client of one server: ``url`` like ``http://127.0.0.1:8000``; ``api_key`` defaults to ``$KOEMBED_API_KEY``."""

    url: str = "http://127.0.0.1:8000"
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    def __post_init__(self) -> None:
        require("httpx", what="the koembed client", extra="langchain")
        self.url = self.url.rstrip("/")
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_ENV) or None

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            r = httpx.post(self.url + path, json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise KoembedError(f"koembed server {self.url}: cannot be reached ({exc}); is `koembed serve` running?") \
                from None
        if r.status_code != 200:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:200]
            raise KoembedError(f"koembed server {self.url}{path}: {r.status_code}: {message}")
        return r.json()

    def search(self, query: str, *, k: int = 4, index: str | None = None, mode: str | None = None,
               filters: dict[str, Any] | None = None) -> list[SearchHit]:
        """The ``k`` best hits for ``query``, best first (several indexes: merged by score)."""
        body: dict[str, Any] = {"queries": [query], "k": k}
        for key, value in (("index", index), ("mode", mode), ("filters", filters)):
            if value is not None:
                body[key] = value
        out = self._post("/search", body)
        hits = [SearchHit(h["id"], h["text"], h["score"], h["metadata"], h.get("scores") or {}, ix["name"])
                for ix in out["indexes"] for h in ix["results"][0]["hits"]]
        if len(out["indexes"]) > 1:
            hits.sort(key=lambda h: -(h.score if h.score is not None else float("-inf")))
        return hits[:k]

    def upsert(self, index: str, documents: list[dict[str, Any]]) -> dict[str, Any]:
        """Add or replace ``documents`` (``{"id", "text", "metadata"?}``) in ``index`` (server needs --allow-writes)."""
        return self._post(f"/v1/indexes/{index}/documents", {"documents": documents})

    def delete(self, index: str, ids: list[str]) -> dict[str, Any]:
        return self._post(f"/v1/indexes/{index}/documents/delete", {"ids": ids})
