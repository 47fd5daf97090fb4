"""A LangChain retriever over ``koembed serve``: ``pip install 'koembed[langchain]'``.

    from koembed.integrations.langchain import KoembedRetriever

    retriever = KoembedRetriever(url="http://127.0.0.1:8000", index="news", k=4)
    docs = retriever.invoke("서울 날씨")   # list[Document], metadata: id, score, scores, index + the document's own
"""

from __future__ import annotations

from typing import Any

from koembed.extras import require

require("langchain_core", "httpx", what="the LangChain retriever", extra="langchain")

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402

from koembed.integrations.client import KoembedClient, SearchHit  # noqa: E402


def to_document(hit: SearchHit) -> Document:
    meta = dict(hit.metadata) | {"id": hit.id, "score": hit.score, "scores": hit.scores, "index": hit.index}
    return Document(page_content=hit.text, metadata=meta, id=hit.id)


class KoembedRetriever(BaseRetriever):
    """Documents from ``POST /search`` of a koembed server (``mode``/``filters``/``index`` as /search takes them)."""

    url: str = "http://127.0.0.1:8000"
    api_key: str | None = None
    index: str | None = None
    k: int = 4
    mode: str | None = None
    filters: dict[str, Any] | None = None
    timeout: float = 30.0

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        client = KoembedClient(self.url, self.api_key, self.timeout)
        hits = client.search(query, k=self.k, index=self.index, mode=self.mode, filters=self.filters)
        return [to_document(h) for h in hits]
