"""Shared fixtures: a tiny Korean model built offline once per test run (from the repository alone), and the
shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KOEMBED_CPU_BF16", "0")  # fp32 on every CPU, so DDP/resume comparisons are exact
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_TEXTS = REPO / "examples" / "texts.txt"


def _shared_data() -> Path:
    from koembed.paths import data_dir

    return data_dir()


def tokenizer_corpus() -> list[str]:
    """The example texts written for this repo, then every Hangul syllable the test files use and printable ASCII,
    each at the start of a word and inside one.

    Built from the repository alone, so the tiny model is the same on every machine, with the shared data
    or without it, and it reads every test's Korean text without [UNK] (tests that want an unknown word
    use an emoji or a word longer than the tokenizer takes).
    """
    lines = EXAMPLE_TEXTS.read_text(encoding="utf-8").splitlines()
    hangul = sorted({c for path in sorted(Path(__file__).parent.glob("*.py"))
                     for c in path.read_text(encoding="utf-8") if "가" <= c <= "힣"} | {c for t in lines for c in t
                                                                                       if "가" <= c <= "힣"})
    for chars in (hangul, [chr(c) for c in range(0x21, 0x7F)]):
        words = [a + b for a, b in zip(chars, chars[1:] + chars[:1], strict=True)]
        lines += [" ".join(words[i : i + 40]) for i in range(0, len(words), 40)]
    return lines


@pytest.fixture(scope="session", autouse=True)
def _private_koembed_cache(tmp_path_factory: pytest.TempPathFactory):
    """ONNX exports made by tests (the default backend exports each tiny model once) go to this run's own cache,
    never the user's ~/.cache/koembed; subprocesses inherit it. An explicit KOEMBED_CACHE is left alone."""
    if os.environ.get("KOEMBED_CACHE"):
        yield
        return
    os.environ["KOEMBED_CACHE"] = str(tmp_path_factory.mktemp("koembed-cache"))
    try:
        yield
    finally:
        os.environ.pop("KOEMBED_CACHE", None)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real Korean data (``../shared/data``); tests that need it skip when it is absent."""
    d = _shared_data()
    if not d.is_dir():
        pytest.skip(f"shared Korean data not found at {d} (set KOEMBED_DATA_DIR to run this test)")
    return d


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare 2-layer BERT (hidden 64) with a WordPiece tokenizer trained on Korean text."""
    import torch

    from distill.tiny import build_tiny_bert

    torch.set_num_threads(1)
    return build_tiny_bert(tokenizer_corpus(), tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_st_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny BERT wrapped as a sentence-transformers folder (Transformer -> mean Pooling -> Normalize)."""
    from distill.tiny import wrap_as_sentence_transformer

    return wrap_as_sentence_transformer(tiny_bert_dir, tmp_path_factory.mktemp("tiny-st") / "model")


# The prompts of multilingual-e5 models (issue 24), saved the way sentence-transformers saves them.
E5_PROMPTS = {"query": "query: ", "document": "passage: "}


@pytest.fixture(scope="session")
def tiny_prompt_dir(tiny_st_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny sentence-transformers model with query/document prompts in config_sentence_transformers.json."""
    import json
    import shutil

    out = tmp_path_factory.mktemp("tiny-prompts") / "model"
    shutil.copytree(tiny_st_dir, out)
    path = out / "config_sentence_transformers.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    config.update(prompts=dict(E5_PROMPTS), default_prompt_name=None)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def tiny_encoder(tiny_st_dir: Path):
    from koembed import KoMiniLMEncoder

    return KoMiniLMEncoder(str(tiny_st_dir))
