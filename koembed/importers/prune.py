"""A Korean-pruned vocabulary for multilingual-e5: which of XLM-R's 250,002 pieces a Korean model keeps.

96M of e5-small's 118M parameters are the embedding rows of its 250k pieces, most of them for scripts a Korean
model never sees. The kept set is (1) the special pieces, (2) every piece that tokenising the Korean corpus used
(counted once, offline, by ``python -m distill e5-vocab``), and (3) every single-character piece (bare or after
"▁"), whatever its script: so any character the full model knows, the pruned one knows too, and text the corpus
did not hold (Hanja, Japanese or Chinese names, symbols, other alphabets in Korean Wikipedia) splits into known
pieces instead of new ``<unk>``. (Keeping only the characters of KS X 1001 saved 7,503 rows but gave 64 new
``<unk>`` on KorQuAD's paragraphs.) The list ships in the package (``e5_ko_pieces.txt.gz``, one piece a line, in
the original id order) so that building the pruned model needs no corpus.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

SHIPPED_KO_PIECES = Path(__file__).resolve().parent / "e5_ko_pieces.txt.gz"
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
def korean_keep_ids(pieces: Sequence[str], counts: np.ndarray | None, min_count: int = 1) -> list[int]:
    """Ids of the pieces to keep, ascending: specials, pieces used ``min_count`` times, single characters."""
    keep = []
    for i, piece in enumerate(pieces):
        bare = piece[1:] if piece.startswith("\u2581") else piece
        if piece in SPECIALS or piece == "\u2581":
            keep.append(i)
        elif counts is not None and counts[i] >= min_count:
            keep.append(i)
        elif len(bare) == 1:
            keep.append(i)
    return keep


def write_piece_list(pieces: Iterable[str], path: str | Path) -> None:
    from koembed.atomic import atomic_write_bytes

    atomic_write_bytes(path, gzip.compress(("\n".join(pieces) + "\n").encode("utf-8"), mtime=0))


def read_piece_list(path: str | Path = SHIPPED_KO_PIECES) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read().split("\n")[:-1]


def ids_for_pieces(all_pieces: Sequence[str], kept: Sequence[str]) -> list[int]:
    """The ids (in ``all_pieces``) of the ``kept`` pieces; every kept piece must exist there."""
    index = {p: i for i, p in enumerate(all_pieces)}
    missing = [p for p in kept if p not in index]
    if missing:
        from koembed.errors import InputError

        raise InputError(f"{len(missing)} kept pieces are not in this model's vocabulary (first: {missing[0]!r}): "
                         "the piece list was made for another model file")
    return sorted(index[p] for p in kept)
