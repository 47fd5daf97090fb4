"""koembed: Korean sentence embeddings and retrieval on KoMiniLM.

Heavy modules (torch, transformers, sentence-transformers, faiss) load on first use, so
``import koembed`` and the CLI start fast.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time, and a Ctrl-C then is a traceback (koembed.cli.interrupt)
    from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "KoMiniLMEncoder": "koembed.encoder",
    "EncodeStats": "koembed.encoder",
    "KoembedError": "koembed.errors",
    "encode_file": "koembed.file_encoding",  # not koembed.encode_file: a submodule of that name would shadow it
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'koembed' has no attribute {name!r}")
