"""Build a tiny Korean BERT offline: a trained WordPiece tokenizer plus a randomly initialised encoder.

Tests and benchmark scripts use it as their fixture model; ``make demo`` builds one only when the
install lacks the embedded default model (koembed/models/). Its vectors carry no meaning beyond what
the random weights happen to give: it exercises every code path (tokenizer, model folder, pooling,
index) at a size that builds in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from distill.tokenizer import train_wordpiece


def build_tiny_bert(
    texts: Iterable[str],
    output_dir: str | Path,
    vocab_size: int = 2000,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 128,
    max_position_embeddings: int = 128,
    seed: int = 0,
) -> Path:
    """Train a tokenizer on ``texts`` and save it beside a random ``BertModel`` in ``output_dir``."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = Path(output_dir)
    train_wordpiece(texts, out, vocab_size=vocab_size, min_frequency=1, model_max_length=max_position_embeddings)
    tokenizer = AutoTokenizer.from_pretrained(out)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(out)
    return out


def wrap_as_sentence_transformer(bert_dir: str | Path, output_dir: str | Path, normalize: bool = True) -> Path:
    """Save ``bert_dir`` as a sentence-transformers folder: Transformer -> mean Pooling (-> Normalize)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(bert_dir))
    modules = [transformer, Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")]
    if normalize:
        modules.append(Normalize())
    model = SentenceTransformer(modules=modules, device="cpu")
    model.save(str(output_dir))
    return Path(output_dir)
