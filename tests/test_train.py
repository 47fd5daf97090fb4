"""Training on the tiny model: it learns, reloads identically, saves its config, and resumes after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from koembed.errors import InputError
from koembed.train import CONFIG_NAME, RESULTS_NAME, StageConfig, TrainConfig, train

DEV_SLICE = 300
SENTENCES = ["한 남자가 기타를 치고 있다.", "비행기가 이륙하고 있다.", "여자가 양파를 썰고 있다.", "고양이가 잔다."]


def _config(base: Path, out: Path, **kw) -> TrainConfig:
    defaults = dict(
        base_model=str(base), output_dir=str(out), device="cpu", seed=7, quiet=True, report_test=False,
        nli_files=["kornli/xnli.dev.ko.tsv", "parakqc/paraKQC_v1.txt"],
        nli=StageConfig(max_steps=15, batch_size=32, lr=1e-3, max_train_samples=300),
        sts=StageConfig(max_steps=30, batch_size=16, lr=1e-3, max_train_samples=300),
        eval_steps=0, save_steps=100, logging_steps=100, max_dev_samples=DEV_SLICE,
    )
    return TrainConfig(**(defaults | kw))


@pytest.fixture(scope="module")
def trained(tiny_bert_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    return train(_config(tiny_bert_dir, tmp_path_factory.mktemp("train") / "model"))


def test_short_run_beats_untrained_model(trained: Path, tiny_bert_dir: Path) -> None:
    from koembed.evaluate import run_task

    before = run_task(str(tiny_bert_dir), "korsts-dev", max_samples=DEV_SLICE)["spearman"]
    after = run_task(str(trained), "korsts-dev", max_samples=DEV_SLICE)["spearman"]
    print(f"korsts-dev[:300] spearman before {before:.2f} after {after:.2f}", (trained / RESULTS_NAME).read_text())
    assert after > before + 3, (before, after)
    results = json.loads((trained / RESULTS_NAME).read_text(encoding="utf-8"))
    assert [*results["stages"]] == ["nli", "sts"]
    assert results["stages"]["nli"]["examples"] == {"triplets": 300, "pairs": 300}
    assert results["stages"]["sts"]["steps"] == 30
    assert results["scores"]["korsts-dev"]["n"] == 1500
    assert not (trained / "checkpoints").exists()


def test_output_reloads_identically(trained: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from koembed import KoMiniLMEncoder

    st = SentenceTransformer(str(trained), device="cpu").encode(SENTENCES, convert_to_numpy=True)
    ko = KoMiniLMEncoder(str(trained)).encode(SENTENCES)
    np.testing.assert_allclose(st, ko, atol=1e-5)
    assert np.allclose(np.linalg.norm(st, axis=1), 1.0, atol=1e-5)


def test_config_and_model_card_saved(trained: Path) -> None:
    saved = TrainConfig.load(trained / CONFIG_NAME)
    assert saved.stages == ["nli", "sts"] and saved.sts.max_steps == 30 and saved.seed == 7
    card = (trained / "README.md").read_text(encoding="utf-8")
    results = json.loads((trained / RESULTS_NAME).read_text(encoding="utf-8"))
    assert f"{results['scores']['korsts-dev']['spearman']:.2f}" in card
    assert "CC BY-SA 4.0; Ham et al. 2020" in card and "ParaKQC" in card and "MultipleNegativesRankingLoss" in card


def test_interrupt_then_resume_finishes(tiny_bert_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import TrainerCallback

    torch.set_num_threads(1)

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 5:
                raise KeyboardInterrupt

    out = tmp_path / "model"
    cfg = _config(tiny_bert_dir, out, stages=["sts"], save_steps=2, max_dev_samples=50,
                  sts=StageConfig(max_steps=6, batch_size=8, lr=1e-3, max_train_samples=100))
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[Interrupt()])
    assert (out / "checkpoints" / "sts" / "checkpoint-4").is_dir() and not (out / "modules.json").exists()
    with pytest.raises(InputError, match="not empty; pass --resume"):
        train(cfg)
    changed = _config(tiny_bert_dir, out, stages=["sts"], resume=True, seed=8)
    with pytest.raises(InputError, match="cannot resume.*seed"):
        train(changed)
    cfg.resume = True
    train(cfg)
    stage = json.loads((out / RESULTS_NAME).read_text(encoding="utf-8"))["stages"]["sts"]
    assert stage["resumed_from"] == "checkpoint-4" and stage["steps"] == 6
    assert (out / "modules.json").is_file()


def test_bad_settings_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="stages 'sts,mlm'"):
        train(TrainConfig(output_dir=str(tmp_path / "a"), stages=["sts", "mlm"]))
    with pytest.raises(InputError, match="unknown field"):
        TrainConfig.from_dict({"epochs": 3})
