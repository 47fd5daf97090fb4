"""Retrievers over a running ``koembed serve``, for LangChain and LlamaIndex (optional extras).

    pip install 'koembed[langchain]'     # koembed.integrations.langchain.KoembedRetriever
    pip install 'koembed[llamaindex]'    # koembed.integrations.llamaindex.KoembedRetriever

Both send the query to ``POST /search`` (the server encodes it with the index's model and query prompt) and
return its hits as the framework's documents, score and signals in the metadata; :class:`KoembedClient`
is the HTTP part they share (also usable alone, with the write API). Each module imports its framework
only when imported itself.
"""

from koembed.integrations.client import KoembedClient, SearchHit

__all__ = ["KoembedClient", "SearchHit"]
