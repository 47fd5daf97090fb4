"""The e5-student recipe end to end at toy scale: a tiny E5-format teacher, 96 diet rows, a 2-layer student."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from e5_files import write_tiny_e5

from distill.recipe.e5_student import E5StudentConfig, E5StudentRecipe
from koembed.importers.e5_folder import write_e5_folder


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("teacher")
    write_tiny_e5(d / "t.bin", hidden=64, layers=4, heads=4, ff=128, max_pos=256)
    return write_e5_folder(d / "t.bin", d / "tiny-e5").output_dir


def _cfg(out: Path, teacher: Path, data_dir: Path, **kw) -> E5StudentConfig:
    base = dict(output_dir=str(out), data_dir=str(data_dir), teacher=str(teacher), teacher_layers=[1, 3],
                student={"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
                         "intermediate_size": 128},
                max_rows=96, epochs=2.0, batch_size=16, lr=1e-3, checkpoint_every=4, log_every=4, teacher_batch=32,
                eval_tasks=["korsts-dev"], eval_max_samples=40, diet_sources=["korsts-train-1", "boolq-passages"],
                teacher_backend="torch", eval_backend="torch")
    return E5StudentConfig(**(base | kw))


@pytest.mark.slow
def test_recipe_distils_resumes_and_reuses(tiny_teacher, data_dir, tmp_path):
    logs: list[str] = []
    out = tmp_path / "run"
    results = E5StudentRecipe(_cfg(out, tiny_teacher, data_dir), log=logs.append).run()
    diet = [json.loads(x) for x in (out / "diet" / "diet.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["role"] for r in diet} == {"query", "document"}
    vecs = np.concatenate([np.load(p) for p in sorted((out / "teacher_vectors").glob("shard-*.npy"))])
    assert vecs.shape[0] >= 96 and np.allclose(np.linalg.norm(vecs[:96], axis=1), 1, atol=1e-4)
    train = results["train"]
    assert train["steps"] == 12 and train["copied_tensors"] > 0
    assert train["embedding_loss_last"] < train["embedding_loss_first"]
    ev = results["evaluate"]
    assert {"initial", "trained"} <= set(ev) and "spearman" in ev["trained"]["korsts-dev"]
    assert (out / "train" / "model" / "modules.json").is_file()
    # A rerun skips every finished stage.
    logs.clear()
    assert E5StudentRecipe(_cfg(out, tiny_teacher, data_dir), log=logs.append).run() == results
    assert all("done before, skipped" in line for line in logs if line.startswith("[") and "not configured" not in line)
    # Optional stages that were not configured left no marker: configuring one later runs it.
    assert results["package"] == {"skipped": "no package_dir in the recipe"}
    assert not (out / "package" / "stage.json").exists() and not (out / "sts" / "stage.json").exists()
    # Training resumes from its checkpoint: the model it saves is the one it had.
    before = (out / "train" / "model" / "model.safetensors").read_bytes()
    (out / "train" / "stage.json").unlink()
    logs.clear()
    E5StudentRecipe(_cfg(out, tiny_teacher, data_dir), log=logs.append).run(only=["train"])
    assert any("resumed at step 12/12" in line for line in logs)
    assert (out / "train" / "model" / "model.safetensors").read_bytes() == before
    # The random-init baseline trains on the same rows and teacher vectors, copied, not recomputed.
    base = tmp_path / "random"
    res = E5StudentRecipe(_cfg(base, tiny_teacher, data_dir, init="random", freeze_embeddings=False,
                               reuse_from=str(out)), log=logs.append).run(only=["diet", "teacher_vectors", "train"])
    assert res["teacher_vectors"]["reused_from"] == str(out / "teacher_vectors")
    assert res["train"]["copied_tensors"] == 0


@pytest.mark.slow
def test_minilm_objective_alone_and_with_the_embedding_loss_and_the_sts_stage(tiny_teacher, data_dir, tmp_path):
    logs: list[str] = []
    stages = ["diet", "teacher_vectors", "initial", "train"]
    alone = E5StudentRecipe(_cfg(tmp_path / "alone", tiny_teacher, data_dir, embedding_weight=0.0, minilm_weight=1.0,
                                 lr=3e-3), log=logs.append).run(only=stages)["train"]
    assert alone["objective"]["minilm_pairs"] == [[0, 1], [1, 3]]
    for part in ("attention", "value_relation"):
        assert alone["last_parts"][part] < alone["first_parts"][part]
    # Together, plus the optional KorSTS stage, which trains with the query prompt and becomes what ships.
    out = tmp_path / "both"
    recipe = E5StudentRecipe(_cfg(out, tiny_teacher, data_dir, minilm_weight=0.5, minilm_pairs=[[1, 3]],
                                  sts_epochs=1.0, sts_batch_size=8, sts_max_samples=64), log=logs.append)
    res = recipe.run(only=[*stages, "sts", "evaluate"])
    assert set(res["train"]["last_parts"]) == {"embedding", "attention", "value_relation"}
    assert res["train"]["objective"]["minilm_pairs"] == [[1, 3]]
    sts = res["sts"]["stages"]["sts"]
    assert sts["steps"] > 0 and sts["prompt"] == "query: "
    assert recipe.final_model() == out / "sts" / "model"
    st_config = json.loads((out / "sts" / "model" / "config_sentence_transformers.json").read_text())
    # The prompt set for training is not left behind as the saved model's default.
    assert st_config["prompts"]["query"] == "query: " and st_config["default_prompt_name"] is None
    assert {"initial", "trained", "sts"} <= set(res["evaluate"])


def test_unknown_field_in_a_recipe_is_refused():
    from koembed.errors import InputError

    with pytest.raises(InputError, match="unknown field"):
        E5StudentConfig.from_dict({"kind": "e5-student", "teachr": "x"}, "r.json")


def test_every_committed_e5_recipe_is_a_valid_config():
    from distill.recipe.run import RECIPES, load_recipe_json

    names = sorted(p.stem for p in RECIPES.glob("e5-*.json"))
    assert {"e5-student", "e5-student-random", "e5-objective-embedding", "e5-objective-minilm",
            "e5-objective-both"} <= set(names)
    for name in names:
        cfg = E5StudentConfig.from_dict(load_recipe_json(name), name)
        assert cfg.name == name and cfg.output_dir == f"runs/{name}"


def test_the_card_lists_each_evaluated_model_marked_shipped_or_not():
    from distill.recipe.e5_package import render_card

    card = {"name": "m", "vocab_size": 100, "shipped_from": "train/model",
            "recipe": {"name": "e5-student", "teacher_layers": [1, 3], "batch_size": 32, "sts_epochs": 1.0,
                       "minilm_weight": 0.0},
            "train": {"parameters": 10, "steps": 5, "rows": 7},
            "scores": {"initial": {"korsts": {"spearman": 60.0}}, "trained": {"korsts": {"spearman": 74.5}},
                       "sts": {"korsts": {"spearman": 78.9}, "korquad-retrieval": {"mrr@10": 0.68}}, "seconds": 3},
            "scores_as_shipped": {"korsts": {"spearman": 74.5}}, "diet_sources": [],
            "search": {"dense_weight": 0.1, "fusion": "coverage"}}
    text = render_card(card)
    assert "| korsts, distilled (shipped) | spearman | 74.5000 |" in text
    assert "| korsts, after the KorSTS stage (not shipped) | spearman | 78.9000 |" in text
    assert "| korsts, before training | spearman | 60.0000 |" in text
    assert "CoSENT" not in text  # the KorSTS stage ran but its model is not the one shipped
    assert "coverage fusion) | W | 0.1 |" in text
    assert "CoSENT" in render_card(card | {"shipped_from": "sts/model"})
