"""The recipe's first stages on the real corpus at toy size: outputs, the teacher's context probe, skipping on rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.recipe.run import Recipe, RecipeConfig
from koembed.errors import InputError


def test_corpus_tokenizer_teacher_then_a_rerun_skips_them(data_dir: Path, tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(2)
    cfg = RecipeConfig(output_dir=str(tmp_path / "run"), data_dir=str(data_dir), vocab_size=2000, limit_alphabet=300,
                       max_length=32, threads=1,
                       teacher={"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2,
                                "intermediate_size": 64, "max_position_embeddings": 32},
                       mlm={"max_steps": 3, "batch_size": 4, "lr": 1e-3, "checkpoint_every": 0,
                            "pre_layernorm": True},
                       quiet=True)
    logs: list[str] = []
    results = Recipe(cfg, log=logs.append).run(only=["corpus", "tokenizer", "teacher"])
    assert torch.get_num_threads() == 1  # the recipe applies its own threads setting
    assert results["corpus"]["lines"]["korsts-train-1"] == 5749  # KorSTS *train*: never dev or test
    assert results["tokenizer"]["vocab_size"] <= 2000
    gain = results["teacher"]["context_gain"]
    assert gain["masked_tokens"] > 100 and gain["gain"] == pytest.approx(gain["noctx_loss"] - gain["ctx_loss"],
                                                                          abs=1e-3)
    saved = json.loads((tmp_path / "run" / "recipe_config.json").read_text(encoding="utf-8"))
    assert saved["mlm"]["max_steps"] == 3

    teacher_config = json.loads((tmp_path / "run" / "teacher" / "config.json").read_text(encoding="utf-8"))
    assert teacher_config["model_type"] == "roberta-prelayernorm"

    logs.clear()
    again = Recipe(cfg, log=logs.append).run(only=["corpus", "tokenizer", "teacher"])
    assert again == results and all("done earlier, skipped" in line for line in logs)


def test_unknown_recipe_is_an_input_error() -> None:
    with pytest.raises(InputError, match="known recipes: .*nano"):
        RecipeConfig.load("no-such-recipe")


def test_corpus_and_card_licences_come_from_the_one_table() -> None:
    from distill.recipe.corpus import RAW_TEXT_SOURCES
    from distill.recipe.package import render_card, sentence_sources
    from koembed.data import find_dataset

    assert {s.name: s.licence for s in RAW_TEXT_SOURCES}["nsmc-train"] == find_dataset("nsmc").licence
    # The nano recipe's last packaged model (no longer the embedded default): its card and training config.
    shipped = Path(__file__).resolve().parent.parent / "docs" / "results" / "kominilm-nano-sts"
    card = json.loads((shipped / "koembed_model.json").read_text(encoding="utf-8"))
    card["sentence_sources"] = sentence_sources(shipped)
    assert [s["path"] for s in card["sentence_sources"]][-1] == "korsts/sts-train.tsv"
    text = render_card(card)
    qp = find_dataset("question-pair").licence
    assert f"(Korean Question Pair: {qp.licence}, {qp.attribution})" in text
    assert f"`nsmc/ratings_train.txt` ({find_dataset('nsmc').licence.licence})" in text
    assert "shared under CC BY-SA 4.0" in text
