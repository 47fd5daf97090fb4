"""The PyTorch backend: a sentence-transformers module chain, run batch by batch under inference_mode.

Texts are tokenised once, by the encoder's call to :meth:`TorchBackend.tokenize` (the model's own
fast tokenizer, lower-casing included); batches of those ids go straight to the module chain,
skipping sentence-transformers' ``preprocess``, which would tokenise every text a second time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np
import torch

from koembed.backends.tokens import TextTokenizer, Tokens
from koembed.errors import KoembedError
from koembed.model_source import ModelSource


def build_sentence_transformer(source: ModelSource, device: str | None = None):
    """A ``SentenceTransformer`` for ``source``: loaded as is, or Transformer -> mean Pooling for a bare BERT."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    with quiet_hf_loading():
        if source.kind == "sentence-transformers":
            return SentenceTransformer(str(source.path), device=device or "cpu")
        transformer = Transformer(str(source.path))
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
        return SentenceTransformer(modules=[transformer, pooling], device=device or "cpu")


@contextlib.contextmanager
def quiet_hf_loading() -> Iterator[None]:
    """Silence transformers' "Loading weights" bar and warnings for one load, leaving the user's settings alone.

    The bar is drawn on stderr for every load: noise between koembed's own progress bar and summary.
    """
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
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
        hf_tokenizer = self.model.tokenizer
        fast = getattr(hf_tokenizer, "backend_tokenizer", None)
        if fast is None:
            raise KoembedError(f"model {source.name!r}: its tokenizer has no tokenizer.json (fast tokenizer)")
        # sentence-transformers puts do_lower_case into the fast tokenizer's normaliser, so the copy keeps it.
        self.tokenizer = TextTokenizer(fast, pad_id=hf_tokenizer.pad_token_id or 0)
        self._type_ids = "token_type_ids" in getattr(hf_tokenizer, "model_input_names", ())
        # Pooling with include_prompt=false leaves the prompt's tokens out of the mean: it needs their count.
        self.excludes_prompt = any(getattr(m, "include_prompt", True) is False for m in self.model)

    def prompt_length(self, prompt: str) -> int:
        """Tokens of ``prompt`` at the start of every input: its ids with the leading special tokens, as
        sentence-transformers counts them (the trailing special token left out)."""
        return len(self.tokenizer.tokenize([prompt]).ids[0]) - self.tokenizer.tail

    def tokenize(self, texts: list[str]) -> Tokens:
        return self.tokenizer.tokenize(texts)

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        return self.tokenize(texts).lengths

    def embed_tokens(self, tokens: Tokens, prompt_length: int | None = None) -> np.ndarray:
        ids, mask = self.tokenizer.pad(tokens, self.max_seq_length)
        features = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if self._type_ids:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        features = {k: v.to(self.device) for k, v in features.items()}
        if prompt_length is not None:
            features["prompt_length"] = prompt_length
        with torch.inference_mode():
            out = self.model(features)["sentence_embedding"]
        return out.float().cpu().numpy()
