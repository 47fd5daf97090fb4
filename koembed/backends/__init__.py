"""Inference backends: each turns a batch of texts into pooled sentence vectors.

A backend is chosen by name (``backend="torch"``); its module is imported only when chosen, so that
a backend that needs no torch (ONNX Runtime) never pays for importing it. ``auto`` (the default
everywhere) resolves to ``onnx`` when ONNX Runtime is installed, the device is the CPU and the model's
pipeline can run in an ONNX graph, else to ``torch``; ``onnx`` gives the same vectors as ``torch``
(cosine >= 0.9999, checked at export), so either can search an index the other built.

Every backend provides:

- ``dim`` (int) and ``max_seq_length`` (int, settable before first use),
- ``normalizes`` (bool): whether the model's own pipeline already L2-normalises,
- ``tokenize(texts) -> Tokens``: token ids, untruncated, special tokens included (one tokeniser call),
- ``embed_tokens(tokens) -> np.ndarray``: float32 ``(len(tokens), dim)``, the model pipeline's output
  for the ids cut to ``max_seq_length``,
- ``token_lengths(texts) -> np.ndarray``: ``tokenize(texts).lengths``.

Prompts (:mod:`koembed.backends.prompts`) are put before the texts by the encoder, before ``tokenize``,
so every backend sees them as text. A backend whose pooling leaves the prompt out
(``include_prompt: false``, torch only) sets ``excludes_prompt`` and takes ``prompt_length``
(from its ``prompt_length(prompt)``) in ``embed_tokens``.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Protocol

import numpy as np

from koembed.backends.tokens import Tokens
from koembed.errors import InputError, KoembedError, MissingExtraError
from koembed.model_source import ModelSource

# name -> "module:factory"; factories take (source, device, max_seq_length, **options).
BACKENDS: dict[str, str] = {
    "torch": "koembed.backends.torch_backend:TorchBackend",
    "onnx": "koembed.backends.onnx.backend:OnnxBackend",
    "onnx-int8": "koembed.backends.onnx.backend:OnnxInt8Backend",
}
AUTO = "auto"
# What --backend accepts, in the order --help lists them.
BACKEND_CHOICES = (AUTO, *BACKENDS)


class Backend(Protocol):
    dim: int
    max_seq_length: int
    normalizes: bool

    def tokenize(self, texts: list[str]) -> Tokens: ...

    def embed_tokens(self, tokens: Tokens) -> np.ndarray: ...

    def token_lengths(self, texts: list[str]) -> np.ndarray: ...


def resolve_backend(name: str, source: ModelSource, device: str | None = None) -> str:
    """The backend ``name`` stands for: itself, or for ``auto`` the fastest faithful one that can run ``source``."""
    if name != AUTO:
        return name
    if device not in (None, "cpu") or not _installed("onnxruntime"):
        return "torch"
    from koembed.backends.onnx.pipeline import read_pipeline

    try:
        read_pipeline(source)  # modules an ONNX graph cannot reproduce (Dense, custom) stay on torch
    except KoembedError:
        return "torch"
    return "onnx"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None  # looks for it without importing it
    except (ImportError, ValueError):
        return False


def load_backend(
    name: str, source: ModelSource, device: str | None, max_seq_length: int | None, **options: Any
) -> Backend:
    """Instantiate backend ``name`` (``auto`` resolved by :func:`resolve_backend`); an unknown name is bad input
    (:class:`~koembed.errors.InputError`, exit 2, as everywhere else a backend is named) listing the choices."""
    name = resolve_backend(name, source, device)
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose one of: {', '.join(BACKEND_CHOICES)}")
    module_name, attr = BACKENDS[name].split(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
        return factory(source, device=device, max_seq_length=max_seq_length, **options)
    except ModuleNotFoundError as exc:  # a slim install (pip install koembed) without the extra this needs
        from koembed.extras import EXPORT_MODULES, install_hint, missing_extra

        if name != "torch" and exc.name and exc.name.split(".")[0] in EXPORT_MODULES:
            raise MissingExtraError(
                f"model {source.name!r} has no ONNX graph yet, and exporting one (once, then cached) needs "
                f"{exc.name.split('.')[0]}, which is not installed: {install_hint('export')}") from None
        raise (missing_extra(exc) or exc) from None
