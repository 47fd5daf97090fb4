"""WordPiece training: a large Korean alphabet must not crowd the merges out of a small vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _corpus() -> list[str]:
    texts = [t for t in (REPO / "examples" / "texts.txt").read_text(encoding="utf-8").splitlines() if t.strip()]
    # 1,200 distinct syllables, each seen twice (so min_frequency keeps them): web text's long tail.
    rare = " ".join(chr(0xAC00 + 7 * i) for i in range(1200))
    return texts * 5 + [rare, rare]


def _longest_piece(folder: Path) -> int:
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    return max(len(t.removeprefix("##")) for t in vocab if not t.startswith("["))


def test_without_an_alphabet_limit_the_vocabulary_is_only_characters(tmp_path):
    from distill.tokenizer import train_wordpiece

    out = train_wordpiece(_corpus(), tmp_path / "tok", vocab_size=1500, limit_alphabet=None)
    assert _longest_piece(out) == 1


def test_the_alphabet_limit_leaves_room_for_word_pieces(tmp_path):
    from transformers import AutoTokenizer

    from distill.tokenizer import train_wordpiece

    out = train_wordpiece(_corpus(), tmp_path / "tok", vocab_size=1500, limit_alphabet=400)
    assert _longest_piece(out) >= 2
    tok = AutoTokenizer.from_pretrained(out)
    sentence = (REPO / "examples" / "texts.txt").read_text(encoding="utf-8").splitlines()[0]
    pieces = tok.tokenize(sentence)
    assert len(pieces) < len(sentence.replace(" ", ""))  # fewer pieces than characters
    assert tok.unk_token not in pieces  # the frequent characters all stay in the alphabet
