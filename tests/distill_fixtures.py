"""Tiny teachers, students and corpora for the distillation tests (built offline, in seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLE_TEXTS = Path(__file__).resolve().parent.parent / "examples" / "texts.txt"
HATE_UNLABELED = "korean_hate_speech/unlabeled/unlabeled_comments_5.txt"


def korean_lines(data_dir: Path | None, n: int = 1500) -> list[str]:
    """Real Korean comments from the shared data, or the repo's example sentences when it is absent."""
    if data_dir is not None and (data_dir / HATE_UNLABELED).is_file():
        lines = (data_dir / HATE_UNLABELED).read_text(encoding="utf-8").splitlines()
        return [ln for ln in lines if ln.strip()][:n]
    # Without the shared data: the example texts, repeated to n lines so that sharding over blocks of
    # records still gives every process data (the contents matter less than the count here).
    lines = [ln for ln in EXAMPLE_TEXTS.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return (lines * (n // len(lines) + 1))[:n]


def build_teacher(texts: list[str], out: Path, layers: int = 4, hidden: int = 64, heads: int = 4,
                  initializer_range: float = 0.2, seed: int = 0) -> Path:
    """A small random BERT whose attention is far from uniform (a wide init), so relations carry signal."""
    import torch
    from transformers import BertConfig, BertModel

    from distill.tiny import build_tiny_bert

    build_tiny_bert(texts, out, vocab_size=1500, hidden_size=hidden, num_layers=layers, num_heads=heads,
                    intermediate_size=2 * hidden, max_position_embeddings=128, seed=seed)
    config = BertConfig.from_pretrained(out)
    config.initializer_range = initializer_range
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(out)
    return out


def write_student_config(path: Path, **fields) -> Path:
    base = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
    path.write_text(json.dumps({**base, **fields}), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def distill_corpus_lines() -> list[str]:
    from koembed.paths import data_dir

    d = data_dir()
    return korean_lines(d if d.is_dir() else None)


@pytest.fixture(scope="session")
def distill_corpus(distill_corpus_lines, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("distill-corpus") / "corpus.txt"
    path.write_text("\n".join(distill_corpus_lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def teacher_dir(distill_corpus_lines, tmp_path_factory) -> Path:
    import torch

    torch.set_num_threads(1)
    return build_teacher(distill_corpus_lines, tmp_path_factory.mktemp("teacher"))
