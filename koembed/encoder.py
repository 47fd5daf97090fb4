"""``KoMiniLMEncoder``: Korean text in, L2-normalised float32 vectors out, in input order."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from koembed.backends import AUTO, load_backend, resolve_backend
from koembed.backends.prompts import DOCUMENT, QUERY, ModelPrompts, read_prompts
from koembed.model_card import read_model_card
from koembed.model_source import model_fingerprint, resolve_model
from koembed.text import normalize as normalize_text
from koembed.vectors import l2_normalize

# A text is cut to max_seq_length * this many characters before it is tokenised: far more than the
# tokens kept ever span (Korean averages 1.5-3 characters a token), so only texts that would have been
# truncated anyway are cut, and a 50 MB line costs what a 2,000-character one does.
CHARS_PER_TOKEN_BOUND = 16
# Below this many texts a progress bar is noise.
PROGRESS_MIN_TEXTS = 1000


@dataclass
class EncodeStats:
    """What the last ``encode`` call did.

    ``truncated`` counts texts cut to ``max_seq_length`` tokens (or first to ``max_chars``, which bounds
    the tokeniser's work); ``unknown`` counts texts holding words the model cannot read (``[UNK]``
    tokens: a character outside its vocabulary, or a word longer than its tokenizer takes), whose
    content is partly or wholly lost.
    """

    texts: int = 0
    empty: int = 0
    truncated: int = 0
    unknown: int = 0
    tokens: int = 0
    seconds: float = 0.0

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: EncodeStats) -> None:
        for k in ("texts", "empty", "truncated", "unknown", "tokens", "seconds"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"texts_per_s": round(self.texts_per_s, 1)}


@dataclass(frozen=True)
class Encoding:
    """What :meth:`KoMiniLMEncoder.encode_with_stats` returns: the vectors and what making them did.

    ``lengths[i]`` is text i's untruncated token count (prompt and special tokens included; the model
    read at most ``max_seq_length`` of them), so callers that report usage per text need no second
    tokenisation. ``prompt`` is the text put before each input ("" for none).
    """

    vectors: np.ndarray
    stats: EncodeStats
    lengths: np.ndarray
    prompt: str = ""


class KoMiniLMEncoder:
    """Encode Korean sentences with a KoMiniLM (or any BERT-style) sentence model.

    ``model`` is a local folder or a Hugging Face Hub id, of a sentence-transformers model
    (``modules.json``) or a bare BERT checkpoint (mean pooling is added). ``None`` takes the
    embedded default. Text is NFC-normalised before tokenising; texts longer than
    ``max_seq_length`` tokens are truncated and counted in the stats :meth:`encode_with_stats` returns
    (the last call's also in :attr:`last_stats`).

    A model folder's prompts (``config_sentence_transformers.json``) are honoured as sentence-transformers
    honours them: ``encode(texts, prompt_name="query")`` (or a literal ``prompt=``) puts the prompt before
    each text; without either the model's default prompt applies. :meth:`encode_query` and
    :meth:`encode_document` pick the prompt of that role (:mod:`koembed.backends.prompts`).

    ``backend="auto"`` runs ONNX Runtime when it is installed (and the device is the CPU), else torch;
    :attr:`backend_name` is the one chosen. Both give the same vectors (cosine >= 0.9999).
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        device: str | None = None,
        max_seq_length: int | None = None,
        normalize: bool = True,
        backend: str = AUTO,
        **backend_options: Any,
    ) -> None:
        self.source = resolve_model(model)
        self.model_name = self.source.name
        self.normalize = normalize
        # Read before the backend loads, so that a bad config is refused in koembed's words.
        self.prompts: ModelPrompts = read_prompts(self.source.path, self.source.kind)
        self.backend_name = resolve_backend(backend, self.source, device)
        self._backend = load_backend(self.backend_name, self.source, device=device, max_seq_length=max_seq_length,
                                     **backend_options)
        self.fingerprint = model_fingerprint(self.source, normalize)
        # The weight hybrid search gives this model's side (koembed_model.json), read once here; None: not recorded.
        self.dense_weight: float | None = read_model_card(self.source.path).search.dense_weight
        self.last_stats = EncodeStats()

    @property
    def dim(self) -> int:
        return self._backend.dim

    @property
    def max_seq_length(self) -> int:
        return self._backend.max_seq_length

    @property
    def max_chars(self) -> int:
        """Characters of a text read at most (the rest could never reach the model)."""
        return self.max_seq_length * CHARS_PER_TOKEN_BOUND

    def prompt_for(self, role: str) -> str:
        """The prompt this model puts before a ``role`` input (``query`` or ``document``); ``""`` for none."""
        return self.prompts.for_role(role)

    def role_prompts(self) -> dict[str, str]:
        """The prompts this model puts before queries and documents, by role, leaving out roles without one.

        An index records these (:class:`koembed.index.manifest.ModelInfo`), so that a search is refused when
        its queries would get another prompt than the one the index's documents were made to meet.
        """
        return {role: p for role in (QUERY, DOCUMENT) if (p := self.prompt_for(role))}

    def token_lengths(self, texts: Sequence[str], *, prompt_name: str | None = None,
                      prompt: str | None = None) -> np.ndarray:
        """Untruncated token counts (prompt and special tokens included) of the NFC-normalised ``texts``.

        A text longer than :attr:`max_seq_length` is cut to it by :meth:`encode`.
        """
        if isinstance(texts, str):
            raise TypeError("token_lengths() takes a list of texts; wrap a single text as [text]")
        before = self.prompts.resolve(prompt_name, prompt)
        clean = [before + normalize_text(t) for t in texts]
        return self._backend.token_lengths(clean) if clean else np.zeros(0, dtype=np.int64)

    def __repr__(self) -> str:
        return (f"KoMiniLMEncoder(model={self.model_name!r}, dim={self.dim}, max_seq_length={self.max_seq_length}, "
                f"backend={self.backend_name!r}, fingerprint={self.fingerprint[:12]})")

    def encode(self, texts: Sequence[str] | str, batch_size: int = 64, show_progress: bool | None = None, *,
               prompt_name: str | None = None, prompt: str | None = None) -> np.ndarray:
        """Return float32 ``(len(texts), dim)`` vectors, row i for ``texts[i]``.

        ``prompt_name`` picks one of the model's prompts, ``prompt`` gives one literally; with neither the
        model's default prompt (if any) applies. :meth:`encode_with_stats` also returns what encoding did.
        """
        result = self.encode_with_stats(texts, batch_size, show_progress, prompt_name=prompt_name, prompt=prompt)
        return result.vectors

    def encode_query(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool | None = None) -> np.ndarray:
        """:meth:`encode` with the model's query prompt (for search queries)."""
        return self.encode(texts, batch_size, show_progress, prompt=self.prompt_for(QUERY))

    def encode_document(self, texts: Sequence[str], batch_size: int = 64,
                        show_progress: bool | None = None) -> np.ndarray:
        """:meth:`encode` with the model's document prompt (for the texts an index holds)."""
        return self.encode(texts, batch_size, show_progress, prompt=self.prompt_for(DOCUMENT))

    def encode_with_stats(self, texts: Sequence[str] | str, batch_size: int = 64, show_progress: bool | None = None,
                          *, prompt_name: str | None = None, prompt: str | None = None) -> Encoding:
        """:meth:`encode`, returning the vectors with their :class:`EncodeStats` and per-text token counts.

        Texts are sorted by token length so each batch pads little, then restored to input order. The
        prompt goes before the normalised text and counts toward ``max_seq_length``; ``stats.empty``
        counts texts empty before it.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts; wrap a single text as [text]")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        before = self.prompts.resolve(prompt_name, prompt)
        start = time.perf_counter()
        limit = self.max_chars
        # Decomposed Hangul takes up to 3 code points a syllable, so 3 * limit raw characters give `limit`
        # normalised ones whenever the text has that many.
        clean = [normalize_text(t[: 3 * limit]) for t in texts]
        cut = np.fromiter((len(c) > limit or len(t) > 3 * limit for c, t in zip(clean, texts, strict=True)),
                          dtype=bool, count=len(clean))
        if cut.any():
            clean = [t[:limit] for t in clean]
        stats = EncodeStats(texts=len(clean), empty=sum(1 for t in clean if not t))
        if before:
            clean = [before + t for t in clean]
        out = np.zeros((len(clean), self.dim), dtype=np.float32)
        lengths = np.zeros(len(clean), dtype=np.int64)
        if clean:
            tokens = self._backend.tokenize(clean)
            lengths = tokens.lengths
            stats.truncated = int(((lengths > self.max_seq_length) | cut).sum())
            stats.unknown = int((tokens.unknown > 0).sum())
            stats.tokens = int(np.minimum(lengths, self.max_seq_length).sum())
            options = self._backend_prompt_options(before)
            # Longest first: the peak-memory batch comes first, and the order is deterministic.
            order = np.argsort(-lengths, kind="stable")
            bar = _progress(len(clean), show_progress)
            for s in range(0, len(order), batch_size):
                idx = order[s : s + batch_size]
                out[idx] = self._backend.embed_tokens(tokens.take(idx), **options)
                if bar is not None:
                    bar.update(len(idx))
            if bar is not None:
                bar.close()
            if self.normalize and not self._backend.normalizes:
                out = l2_normalize(out)
        stats.seconds = time.perf_counter() - start
        self.last_stats = stats
        return Encoding(out, stats, lengths, before)

    def _backend_prompt_options(self, prompt: str) -> dict[str, Any]:
        """What a backend that pools without the prompt (``include_prompt: false``) needs to know of it."""
        if not prompt or not getattr(self._backend, "excludes_prompt", False):
            return {}
        return {"prompt_length": self._backend.prompt_length(prompt)}


def _progress(total: int, show: bool | None):
    if show is None:
        show = total >= PROGRESS_MIN_TEXTS and sys.stderr.isatty()
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="text", desc="encode", file=sys.stderr, dynamic_ncols=True)
