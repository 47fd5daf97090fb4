"""Train a Korean WordPiece tokenizer and save it as a Hugging Face (BERT) tokenizer folder.

Hangul must reach the model as syllables: the normaliser is NFC and never strips accents or
lowercases (accent stripping runs NFD first, which splits every syllable into jamo).

The folder is saved as a ``PreTrainedTokenizerFast``: transformers 5 rebuilds a ``BertTokenizer``'s
normaliser from ``do_lower_case``/``strip_accents`` on load, silently dropping the NFC step saved in
``tokenizer.json``; the generic fast class loads ``tokenizer.json`` exactly as saved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(
    texts: Iterable[str],
    output_dir: str | Path,
    vocab_size: int = 8000,
    min_frequency: int = 2,
    model_max_length: int = 512,
    limit_alphabet: int | None = 2000,
) -> Path:
    """Train WordPiece on ``texts`` (an iterable of strings, streamed) and save it as a fast tokenizer folder.

    ``limit_alphabet`` keeps the N most frequent characters as the base alphabet (rarer ones become
    ``[UNK]``). Korean web text holds thousands of distinct syllables, Hanja and emoji; each kept one
    costs two entries (``x`` and ``##x``), so without a limit the alphabet alone fills a small
    vocabulary and no merge is ever learned: the model becomes character-level.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = korean_normalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix="##",
        **({} if limit_alphabet is None else {"limit_alphabet": limit_alphabet}),
    )
    tok.train_from_iterator(_batches(texts), trainer=trainer)
    # The trainer numbers tokens that tie in its merge order differently from run to run (a hash map inside);
    # WordPiece lookup ignores ids, so renumbering in a fixed order changes nothing but makes builds repeatable.
    vocab = tok.get_vocab()
    order = [t for t in SPECIAL_TOKENS if t in vocab] + sorted(t for t in vocab if t not in SPECIAL_TOKENS)
    tok.model = models.WordPiece({t: i for i, t in enumerate(order)}, unk_token="[UNK]",
                                 continuing_subword_prefix="##")
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=model_max_length,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return out


def korean_normalizer():
    """NFC, then BERT's text cleanup without lowercasing or accent stripping (both would split Hangul)."""
    from tokenizers import normalizers

    return normalizers.Sequence(
        [
            normalizers.NFC(),
            normalizers.BertNormalizer(
                clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
            ),
        ]
    )


def make_tokenizer_folder_nfc_safe(folder: str | Path) -> None:
    """Rewrite a saved tokenizer so that it loads with the NFC normaliser in any transformers version.

    For folders saved as ``BertTokenizer`` (whose normaliser transformers 5 rebuilds on load): the
    normaliser in ``tokenizer.json`` becomes :func:`korean_normalizer` and the class the generic fast one.
    """
    import json

    from tokenizers import Tokenizer

    from koembed.atomic import atomic_write_text

    folder = Path(folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.normalizer = korean_normalizer()
    atomic_write_text(folder / "tokenizer.json", tok.to_str())
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    for key in ("do_lower_case", "strip_accents"):
        cfg.pop(key, None)
    atomic_write_text(cfg_path, json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch: list[str] = []
    for t in texts:
        if t and t.strip():
            batch.append(t)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
