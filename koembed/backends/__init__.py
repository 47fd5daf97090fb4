"""Inference backends: each turns a batch of texts into pooled sentence vectors.

A backend is chosen by name (``backend="torch"``); its module is imported only when chosen, so that
a backend that needs no torch (ONNX Runtime) never pays for importing it.

Every backend provides:

- ``dim`` (int) and ``max_seq_length`` (int, settable before first use),
- ``normalizes`` (bool): whether the model's own pipeline already L2-normalises,
- ``token_lengths(texts) -> np.ndarray``: untruncated token counts including special tokens,
- ``embed(texts) -> np.ndarray``: float32 ``(len(texts), dim)``, the model pipeline's output.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np

from koembed.errors import KoembedError
from koembed.model_source import ModelSource

# name -> "module:factory"; factories take (source, device, max_seq_length, **options).
BACKENDS: dict[str, str] = {
    "torch": "koembed.backends.torch_backend:TorchBackend",
    "onnx": "koembed.backends.onnx.backend:OnnxBackend",
    "onnx-int8": "koembed.backends.onnx.backend:OnnxInt8Backend",
}


class Backend(Protocol):
    dim: int
    max_seq_length: int
    normalizes: bool

    def token_lengths(self, texts: list[str]) -> np.ndarray: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


def load_backend(
    name: str, source: ModelSource, device: str | None, max_seq_length: int | None, **options: Any
) -> Backend:
    """Instantiate backend ``name`` for ``source``; unknown names list the available ones."""
    if name not in BACKENDS:
        raise KoembedError(f"unknown backend {name!r}; choose one of: {', '.join(sorted(BACKENDS))}")
    module_name, attr = BACKENDS[name].split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(source, device=device, max_seq_length=max_seq_length, **options)
