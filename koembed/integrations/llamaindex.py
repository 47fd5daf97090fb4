"""A LlamaIndex retriever over ``koembed serve``: ``pip install 'koembed[llamaindex]'``.

    from koembed.integrations.llamaindex import KoembedRetriever

    retriever = KoembedRetriever(url="http://127.0.0.1:8000", index="news", k=4)
    nodes = retriever.retrieve("서울 날씨")   # list[NodeWithScore]: TextNode(id_=doc id, metadata), score
"""

from __future__ import annotations

from typing import Any

from koembed.extras import require

require("llama_index.core", "httpx", what="the LlamaIndex retriever", extra="llamaindex")

from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402

from koembed.integrations.client import KoembedClient  # noqa: E402


class KoembedRetriever(BaseRetriever):
    """Nodes from ``POST /search`` of a koembed server (``mode``/``filters``/``index`` as /search takes them)."""

    def __init__(self, url: str = "http://127.0.0.1:8000", *, api_key: str | None = None, index: str | None = None,
                 k: int = 4, mode: str | None = None, filters: dict[str, Any] | None = None, timeout: float = 30.0,
                 **kwargs: Any) -> None:
        self.client = KoembedClient(url, api_key, timeout)
        self.index, self.k, self.mode, self.filters = index, k, mode, filters
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.client.search(query_bundle.query_str, k=self.k, index=self.index, mode=self.mode,
                                  filters=self.filters)
        return [NodeWithScore(node=TextNode(id_=h.id, text=h.text, metadata=dict(h.metadata)
                                            | {"scores": h.scores, "index": h.index}), score=h.score) for h in hits]
