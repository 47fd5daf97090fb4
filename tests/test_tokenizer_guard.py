"""Hangul must reach the model as syllables, never as jamo (the monologg/KoBERT-Transformers #1 failure).

Accent stripping and NFD/NFKD normalisation decompose every syllable into conjoining jamo; a tokenizer
that does either sees a different alphabet than the one it was trained on.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SENTENCES = [
    line for line in (REPO / "examples" / "texts.txt").read_text(encoding="utf-8").splitlines() if line.strip()
][:40]


def is_jamo(ch: str) -> bool:
    """Conjoining jamo (what NFD produces from a syllable), not the compatibility jamo of 'ㅋㅋ'."""
    cp = ord(ch)
    return 0x1100 <= cp <= 0x11FF or 0xA960 <= cp <= 0xA97F or 0xD7B0 <= cp <= 0xD7FF


def is_syllable(ch: str) -> bool:
    return 0xAC00 <= ord(ch) <= 0xD7A3


def hangul_problems(tokenizer, text: str) -> list[str]:
    """Tokens that break Hangul: ones holding conjoining jamo, and [UNK] where the text had syllables."""
    tokens = tokenizer.tokenize(text)
    bad = [t for t in tokens if any(is_jamo(c) for c in t)]
    if tokenizer.unk_token in tokens:
        bad.append(tokenizer.unk_token)
    return bad


@pytest.fixture(scope="module")
def tokenizers(tiny_bert_dir, tiny_st_dir):
    from transformers import AutoTokenizer

    from koembed.backends.torch_backend import build_sentence_transformer
    from koembed.model_source import resolve_model

    st_model = build_sentence_transformer(resolve_model(str(tiny_st_dir)))
    return {"bert": AutoTokenizer.from_pretrained(str(tiny_bert_dir)), "sentence-transformers": st_model.tokenizer}


def test_sample_is_korean():
    assert len(SENTENCES) >= 40
    assert all(any(is_syllable(c) for c in s) for s in SENTENCES)


def assert_syllables_survive(tokenizer, text: str, sentence: str) -> None:
    assert hangul_problems(tokenizer, text) == [], sentence
    # Every syllable of the input survives tokenisation, in order.
    pieces = "".join(t.removeprefix("##") for t in tokenizer.tokenize(text))
    assert [c for c in pieces if is_syllable(c)] == [c for c in sentence if is_syllable(c)]


@pytest.mark.parametrize("kind", ["bert", "sentence-transformers"])
def test_hangul_syllables_never_become_jamo_tokens(tokenizers, kind):
    for sentence in SENTENCES:
        assert_syllables_survive(tokenizers[kind], sentence, sentence)


@pytest.mark.parametrize("kind", ["bert", "sentence-transformers"])
def test_nfd_input_reaches_the_tokenizer_as_syllables_through_koembed(tokenizers, kind):
    # koembed NFC-normalises every text before tokenising (koembed.text.normalize in the encoder).
    from koembed.text import normalize

    for sentence in SENTENCES:
        nfd = unicodedata.normalize("NFD", sentence)
        assert_syllables_survive(tokenizers[kind], normalize(nfd), sentence)


@pytest.mark.parametrize("kind", ["bert", "sentence-transformers"])
def test_the_saved_tokenizer_alone_handles_nfd_input(tokenizers, kind):
    tok = tokenizers[kind]
    for sentence in SENTENCES:
        nfd = unicodedata.normalize("NFD", sentence)
        assert_syllables_survive(tok, nfd, sentence)
        assert tok(nfd)["input_ids"] == tok(sentence)["input_ids"]


def test_the_guard_catches_an_accent_stripping_tokenizer(tiny_bert_dir):
    # The failure this file guards against, reproduced: BERT's usual uncased normaliser runs NFD.
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    broken = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    broken.backend_tokenizer.normalizer = normalizers.BertNormalizer(strip_accents=True, lowercase=True)
    assert any(hangul_problems(broken, s) for s in SENTENCES)


def test_saved_tokenizer_config_neither_lowercases_nor_strips_accents(tiny_bert_dir, tiny_st_dir):
    for folder in (tiny_bert_dir, tiny_st_dir):
        files = list(Path(folder).rglob("tokenizer.json"))
        assert files, f"no tokenizer.json under {folder}"
        for f in files:
            normalizer = json.loads(f.read_text(encoding="utf-8"))["normalizer"]
            steps = normalizer.get("normalizers", [normalizer])
            types = {s["type"] for s in steps}
            assert not types & {"NFD", "NFKD", "StripAccents", "Lowercase"}, types
            for s in steps:
                if s["type"] == "BertNormalizer":
                    assert s["lowercase"] is False and s["strip_accents"] is False
        for f in Path(folder).rglob("tokenizer_config.json"):
            cfg = json.loads(f.read_text(encoding="utf-8"))
            assert cfg.get("do_lower_case", False) is False
            assert cfg.get("strip_accents") in (None, False)
