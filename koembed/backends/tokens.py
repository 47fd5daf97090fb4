"""Tokenise once: texts -> untruncated token ids, then padded batches cut to the model's length.

The encoder needs each text's full token count (to report truncation) and the truncated ids (to
embed it). Both come from one batched Rust call of a Hugging Face ``tokenizers.Tokenizer``: ids are
kept with their special tokens and untruncated, and a batch is cut to ``max_seq_length`` here by
keeping the leading special tokens, the first content tokens and the trailing special tokens, which
is what the tokenizer's own ``longest_first`` truncation gives for a single text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from koembed.errors import KoembedError

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class Tokens:
    """Token ids of some texts: special tokens included, not truncated; ``lengths[i] == len(ids[i])``.

    ``unknown[i]`` counts the unknown-word tokens (``[UNK]``) of text i: words the model cannot read.
    """

    ids: list[list[int]]
    lengths: np.ndarray
    unknown: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, idx: np.ndarray | list[int]) -> Tokens:
        at = np.asarray(idx, dtype=np.int64)
        return Tokens([self.ids[i] for i in idx], self.lengths[at], self.unknown[at])


class TextTokenizer:
    """A ``tokenizers.Tokenizer`` used for single texts, lower-casing first when the model asks for it."""

    def __init__(self, tokenizer: Tokenizer, pad_id: int, lowercase: bool = False, *, own: bool = False) -> None:
        from tokenizers import Tokenizer

        # A private copy (unless ``own``: ours alone already): padding and truncation are switched off here,
        # never on a tokenizer someone else holds.
        self._tok = tokenizer if own else Tokenizer.from_str(tokenizer.to_str())
        self._tok.no_padding()
        self._tok.no_truncation()
        self.pad_id = int(pad_id)
        self.lowercase = lowercase
        unk = getattr(self._tok.model, "unk_token", None)  # WordPiece and BPE name theirs; None: no such token
        self.unk_id = self._tok.token_to_id(unk) if unk else None
        mask = self._tok.encode("a", add_special_tokens=True).special_tokens_mask
        self.head = _run_length(mask)
        self.tail = _run_length(mask[::-1]) if self.head < len(mask) else 0

    @classmethod
    def from_file(cls, path: str, pad_id: int, lowercase: bool = False) -> TextTokenizer:
        from tokenizers import Tokenizer

        try:
            return cls(Tokenizer.from_file(str(path)), pad_id, lowercase, own=True)  # one JSON parse, not two
        except Exception as exc:  # the tokenizers library raises plain Exceptions
            raise KoembedError(f"cannot read tokenizer {path} ({exc})") from None

    def tokenize(self, texts: list[str]) -> Tokens:
        if self.lowercase:
            texts = [t.lower() for t in texts]
        encodings = self._tok.encode_batch(texts, add_special_tokens=True)
        ids = [e.ids for e in encodings]
        n = len(ids)
        unknown = (np.fromiter((t.count(self.unk_id) for t in ids), dtype=np.int64, count=n)
                   if self.unk_id is not None else np.zeros(n, dtype=np.int64))
        return Tokens(ids, np.fromiter(map(len, ids), dtype=np.int64, count=n), unknown)

    def pad(self, tokens: Tokens, max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask)`` int64 arrays, right-padded to the longest text (at most ``max_length``)."""
        if max_length < self.head + self.tail + 1:
            raise KoembedError(f"max_seq_length {max_length} leaves no room for text between the special tokens")
        width = int(min(tokens.lengths.max(initial=0), max_length))
        ids = np.full((len(tokens), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(tokens), width), dtype=np.int64)
        keep = max_length - self.tail
        for row, seq in enumerate(tokens.ids):
            if len(seq) > max_length:
                seq = seq[:keep] + seq[len(seq) - self.tail :] if self.tail else seq[:max_length]
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return ids, mask


def _run_length(mask: list[int]) -> int:
    n = 0
    for m in mask:
        if not m:
            break
        n += 1
    return n
