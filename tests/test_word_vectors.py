"""PPMI-SVD word vectors: exact counts on hand-made lines, PPMI against a dense computation, and similarity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill.word_vectors import cooccurrence, ppmi, word_vectors

FRUITS, VEHICLES = ["사과", "바나나", "포도", "딸기"], ["자동차", "버스", "기차", "트럭"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    from distill.tokenizer import train_wordpiece

    lines = [f"나는 {f} 를 맛있게 먹었다" for f in FRUITS] + [f"그는 {v} 를 빠르게 운전했다" for v in VEHICLES]
    folder = tmp_path_factory.mktemp("wv-tok")
    train_wordpiece(lines * 20, folder, vocab_size=200, min_frequency=1)
    tok = AutoTokenizer.from_pretrained(folder)
    for word in FRUITS + VEHICLES:  # each word must be one token for the similarity test to mean anything
        assert tok.tokenize(word) == [word], (word, tok.tokenize(word))
    return tok


def _id(tok, word: str) -> int:
    return tok.convert_tokens_to_ids(word)


def test_counts_weigh_by_distance_and_stay_inside_lines(tokenizer) -> None:
    m = cooccurrence(["사과 바나나 포도", "딸기"], tokenizer, window=2).toarray()
    a, b, c, d = (_id(tokenizer, w) for w in ("사과", "바나나", "포도", "딸기"))
    assert m[a, b] == m[b, a] == 1.0 and m[b, c] == 1.0 and m[a, c] == m[c, a] == 0.5
    assert m[c, d] == 0 and m[d].sum() == 0  # no pair across the line break
    assert m.sum() == pytest.approx(2 * (1 + 1 + 0.5))
    assert cooccurrence(["사과 바나나 포도"], tokenizer, window=1).toarray()[a, c] == 0
    with pytest.raises(ValueError, match="window"):
        cooccurrence([], tokenizer, window=0)


def test_ppmi_matches_a_dense_computation() -> None:
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, size=(6, 6)).astype(float)
    counts = counts + counts.T
    alpha = 0.75
    col = counts.sum(0) ** alpha
    with np.errstate(divide="ignore"):
        pmi = np.log(counts / counts.sum() / (counts.sum(1, keepdims=True) / counts.sum() * (col / col.sum())))
    expected = np.where(counts > 0, np.maximum(pmi, 0), 0)
    np.testing.assert_allclose(ppmi(counts, alpha).toarray(), expected, atol=1e-12)


def test_words_in_the_same_contexts_get_similar_vectors(tokenizer) -> None:
    lines = [f"나는 {f} 를 맛있게 먹었다" for f in FRUITS] + [f"그는 {v} 를 빠르게 운전했다" for v in VEHICLES]
    vectors, seen = word_vectors(lines * 5, tokenizer, dim=8, window=3, std=0.02)
    assert vectors.shape == (len(tokenizer), 8) and vectors.dtype == np.float32
    assert seen[_id(tokenizer, "사과")] and not seen[tokenizer.mask_token_id]
    assert not vectors[~seen].any()
    assert vectors[seen].std() == pytest.approx(0.02, rel=1e-3)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def cos(x: str, y: str) -> float:
        return float(unit[_id(tokenizer, x)] @ unit[_id(tokenizer, y)])

    same = min(cos(x, y) for group in (FRUITS, VEHICLES) for x in group for y in group if x != y)
    across = max(cos(x, y) for x in FRUITS for y in VEHICLES)
    assert same > across + 0.5, (same, across)


def test_mlm_starts_from_the_vectors_and_ties_its_output_layer(tokenizer, tmp_path: Path) -> None:
    import torch
    from transformers import BertConfig

    from distill.mlm import MLMConfig, masked_lm_model, seed_word_embeddings

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"나는 {f} 를 맛있게 먹었다" for f in FRUITS) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    model = masked_lm_model(config)
    before = model.mlm.get_input_embeddings().weight.detach().clone()
    cfg = MLMConfig(corpus=[str(corpus)], word_vectors=True, word_vector_window=2)
    seeded = seed_word_embeddings(model.mlm, cfg, tokenizer)
    lines = corpus.read_text(encoding="utf-8").splitlines()
    vectors, seen = word_vectors(lines, tokenizer, 16, window=2, seed=cfg.seed)
    after = model.mlm.get_input_embeddings().weight.detach()
    assert seeded == int(seen.sum()) > 0
    np.testing.assert_allclose(after[torch.from_numpy(seen)].numpy(), vectors[seen], atol=1e-7)
    assert torch.equal(after[torch.from_numpy(~seen)], before[torch.from_numpy(~seen)])  # unseen rows keep their init
    assert model.mlm.get_output_embeddings().weight.data_ptr() == after.data_ptr()
