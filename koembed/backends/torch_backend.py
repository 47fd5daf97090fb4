"""The PyTorch backend: a sentence-transformers module chain, run batch by batch under inference_mode."""

from __future__ import annotations

import logging

import numpy as np
import torch

from koembed.model_source import ModelSource


def build_sentence_transformer(source: ModelSource, device: str | None = None):
    """A ``SentenceTransformer`` for ``source``: loaded as is, or Transformer -> mean Pooling for a bare BERT."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers.utils import logging as hf_logging

    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    # transformers draws a "Loading weights" bar on stderr for every load: noise between our own
    # progress bar and summary. Silence it for this load only, leaving the user's setting alone.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        if source.kind == "sentence-transformers":
            return SentenceTransformer(str(source.path), device=device or "cpu")
        transformer = Transformer(str(source.path))
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
        return SentenceTransformer(modules=[transformer, pooling], device=device or "cpu")
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()


class TorchBackend:
    def __init__(self, source: ModelSource, device: str | None = None, max_seq_length: int | None = None):
        self.model = build_sentence_transformer(source, device)
        self.model.eval()
        if max_seq_length is not None:
            self.model.max_seq_length = int(max_seq_length)
        self.max_seq_length = int(self.model.max_seq_length or self.model.tokenizer.model_max_length)
        self.dim = int(self.model.get_embedding_dimension())
        self.normalizes = any(type(m).__name__ == "Normalize" for m in self.model)
        self.device = self.model.device

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        enc = self.model.tokenizer(
            texts, add_special_tokens=True, truncation=False, return_attention_mask=False,
            return_token_type_ids=False, verbose=False,
        )
        return np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))

    def embed(self, texts: list[str]) -> np.ndarray:
        self.model.max_seq_length = self.max_seq_length
        features = self.model.preprocess(texts)
        features = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        with torch.inference_mode():
            out = self.model(features)["sentence_embedding"]
        return out.float().cpu().numpy()
