"""Training on the tiny model: it learns, reloads identically, saves its config, and resumes after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from koembed.errors import InputError
from koembed.training.run import CONFIG_NAME, RESULTS_NAME, StageConfig, TrainConfig, _check_output, train

DEV_SLICE = 300
SENTENCES = ["한 남자가 기타를 치고 있다.", "비행기가 이륙하고 있다.", "여자가 양파를 썰고 있다.", "고양이가 잔다."]


def _config(base: Path, out: Path, **kw) -> TrainConfig:
    defaults = dict(
        base_model=str(base), output_dir=str(out), device="cpu", seed=7, quiet=True, report_test=False,
        nli_files=["kornli/xnli.dev.ko.tsv", "parakqc/paraKQC_v1.txt"],
        nli=StageConfig(max_steps=20, batch_size=32, lr=2e-3, max_train_samples=600),
        sts=StageConfig(max_steps=40, batch_size=16, lr=2e-3, max_train_samples=600),
        eval_steps=0, save_steps=100, logging_steps=100, max_dev_samples=DEV_SLICE,
    )
    return TrainConfig(**(defaults | kw))


@pytest.fixture(scope="module")
def trained(tiny_bert_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    result = train(_config(tiny_bert_dir, tmp_path_factory.mktemp("train") / "model"))
    # What train() returns is what it saved.
    assert result.as_dict() == json.loads((result.output_dir / RESULTS_NAME).read_text(encoding="utf-8"))
    return result.output_dir


def test_short_run_beats_untrained_model(trained: Path, tiny_bert_dir: Path) -> None:
    from koembed.evaluate import run_task

    before = run_task(str(tiny_bert_dir), "korsts-dev", max_samples=DEV_SLICE)["spearman"]
    after = run_task(str(trained), "korsts-dev", max_samples=DEV_SLICE)["spearman"]
    assert after > before + 3, (before, after)
    results = json.loads((trained / RESULTS_NAME).read_text(encoding="utf-8"))
    assert [*results["stages"]] == ["nli", "sts"]
    assert results["stages"]["nli"]["examples"] == {"triplets": 600, "pairs": 600}
    assert results["stages"]["sts"]["steps"] == 40
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
    assert saved.stages == ["nli", "sts"] and saved.sts.max_steps == 40 and saved.seed == 7
    card = (trained / "README.md").read_text(encoding="utf-8")
    results = json.loads((trained / RESULTS_NAME).read_text(encoding="utf-8"))
    assert f"{results['scores']['korsts-dev']['spearman']:.2f}" in card
    assert "CC BY-SA 4.0; Ham et al. 2020" in card and "ParaKQC" in card and "MultipleNegativesRankingLoss" in card
    assert "used no NLI *train* split" in card


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
    assert (out / "modules.json").is_file() and not (out / "checkpoints").exists()
    weights = (out / "model.safetensors").read_bytes()
    again = train(cfg)  # finished: nothing to redo, the saved results come back
    assert again.output_dir == out and again.stages["sts"] == stage and "korsts-dev" in again.scores
    assert (out / "model.safetensors").read_bytes() == weights


def test_with_overrides_copies_and_applies_per_stage() -> None:
    base = TrainConfig()
    cfg = base.with_overrides(seed=3, stages="sts", lr=1e-3, device=None, nli_files=("a.tsv",),
                              **{"sts.batch_size": 4})
    assert cfg.seed == 3 and cfg.stages == ["sts"] and cfg.nli.lr == cfg.sts.lr == 1e-3 and cfg.sts.batch_size == 4
    assert cfg.nli.batch_size == base.nli.batch_size != 4 and cfg.device is None and cfg.nli_files == ["a.tsv"]
    assert base.seed == 42 and base.sts.lr == 2e-5 and base.stages == ["nli", "sts"]  # the original is unchanged
    with pytest.raises(InputError, match="unknown setting 'epoch'"):
        base.with_overrides(epoch=3)


def test_bad_settings_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="stages 'sts,mlm'"):
        train(TrainConfig(output_dir=str(tmp_path / "a"), stages=["sts", "mlm"]))
    with pytest.raises(InputError, match="unknown field"):
        TrainConfig.from_dict({"epochs": 3})


def test_a_prompt_the_model_does_not_have_is_an_input_error(tiny_bert_dir: Path, data_dir: Path,
                                                           tmp_path: Path) -> None:
    cfg = _config(tiny_bert_dir, tmp_path / "p", stages=["sts"], prompt_name="query")
    with pytest.raises(InputError, match="prompt_name 'query': the model has no such prompt"):
        train(cfg)


def test_cli_train_and_eval(tiny_bert_dir: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    from koembed.cli import main

    out = tmp_path / "cli-model"
    args = ["train", "--base", str(tiny_bert_dir), "-o", str(out), "--max-steps", "3", "--batch-size", "8",
            "--max-train-samples", "50", "--eval-steps", "0", "--device", "cpu", "--quiet",
            "--nli-files", "parakqc/paraKQC_v1.txt", "--cached-mnrl", "--mini-batch-size", "4",
            "--dev-file", "korsts:dev", "--no-hub"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == str(out)
    cfg = TrainConfig.load(out / CONFIG_NAME)
    assert cfg.stages == ["nli", "sts"] and cfg.sts.batch_size == 8 and cfg.nli.batch_size == 8
    assert cfg.cached_mnrl and cfg.nli_files == ["parakqc/paraKQC_v1.txt"]
    assert cfg.dev_file == "korsts:dev" and cfg.use_hub is False
    assert "CachedMultipleNegativesRankingLoss" in (out / "README.md").read_text(encoding="utf-8")
    assert main(["eval", str(out), "-t", "korsts-dev", "-t", "korquad-retrieval", "--max-samples", "30", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["korsts-dev"]["n"] == 30 and results["korquad-retrieval"]["queries"] == 30
    assert main(["eval", str(out), "--task", "korsts-tset"]) == 2
    assert "error: unknown evaluation task 'korsts-tset'" in capsys.readouterr().err
    assert main(["eval", str(out), "--task", "nsmc"]) == 2
    assert "error: task nsmc is a fine-tuning task" in capsys.readouterr().err
    assert main(["eval", str(out), "--data-dir", str(tmp_path / "typo")]) == 2
    assert f"error: data folder {tmp_path / 'typo'} does not exist" in capsys.readouterr().err
    assert main(args) == 2  # the folder is taken now


def test_nli_triplets_and_pairs_hand_made() -> None:
    from koembed.training.data import nli_triplets, positive_pairs

    rows = [{"sentence1": "P", "sentence2": "E1", "label": "entailment"},
            {"sentence1": "P", "sentence2": "C1", "label": "contradiction"},
            {"sentence1": "P", "sentence2": "N1", "label": "neutral"},
            {"sentence1": "P", "sentence2": "E2", "label": "entailment"},
            {"sentence1": "Q", "sentence2": "E3", "label": "entailment"}]
    triplets, pairs = nli_triplets(rows)
    assert triplets == [{"anchor": "P", "positive": "E1", "negative": "C1"},
                        {"anchor": "E1", "positive": "P", "negative": "C1"},
                        {"anchor": "P", "positive": "E2", "negative": "C1"},
                        {"anchor": "E2", "positive": "P", "negative": "C1"}]
    assert pairs == [{"anchor": "Q", "positive": "E3"}]
    same = [{"sentence1": "a", "sentence2": "b", "label": 1}, {"sentence1": "a", "sentence2": "a", "label": 1},
            {"sentence1": "a", "sentence2": "c", "label": 0}]
    assert positive_pairs(same) == [{"anchor": "a", "positive": "b"}]


def test_data_specs(data_dir: Path, tmp_path: Path) -> None:
    from koembed.korean_data import RowReport
    from koembed.training.data import parse_spec, read_spec

    assert parse_spec("parakqc/paraKQC_v1.txt", data_dir)[0] == "parakqc"
    assert parse_spec("question_pair/train.txt", data_dir)[0] == "question-pair"
    assert parse_spec(f"kornli:{data_dir / 'kornli' / 'xnli.dev.ko.tsv'}", tmp_path)[0] == "kornli"
    # A catalogued file that is absent is its data set's split (the Hub is the fallback), and a catalogue
    # reference reads the same rows as the path it lists.
    assert parse_spec("kornli/snli_1.0_train.ko.tsv", data_dir) == ("catalogue", "kornli:train")
    with pytest.raises(InputError, match=r"kornli train: .*snli_1.0_train.ko.tsv, .*multinli.train.ko.tsv not found"):
        read_spec("kornli/snli_1.0_train.ko.tsv", data_dir, RowReport(), expected=("nli",), use_hub=False)
    assert read_spec("kornli:dev", data_dir, RowReport(), ("nli",)) == \
        read_spec("kornli/xnli.dev.ko.tsv", data_dir, RowReport(), ("nli",))
    with pytest.raises(InputError, match="own.tsv not found"):
        parse_spec("my/own.tsv", data_dir)
    with pytest.raises(InputError, match="this stage takes sts data"):
        read_spec("kornli/xnli.dev.ko.tsv", data_dir, RowReport(), expected=("sts",))
    with pytest.raises(InputError, match="this stage takes sts data"):
        read_spec("klue-nli:dev", data_dir, RowReport(), expected=("sts",))


def test_a_run_that_failed_on_its_data_can_be_rerun(tiny_bert_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    out = tmp_path / "model"
    quick = StageConfig(max_steps=2, batch_size=8, lr=1e-3, max_train_samples=16)
    cfg = _config(tiny_bert_dir, out, stages=["sts"], sts=quick, max_dev_samples=20, use_hub=False)
    # A data folder given explicitly that does not exist is refused, never replaced by ../shared/data.
    with pytest.raises(InputError, match="data folder .*typo does not exist"):
        train(cfg.with_overrides(data_dir=str(tmp_path / "typo")))
    (tmp_path / "no-korsts-here").mkdir()
    with pytest.raises(InputError, match=r"korsts train: .*no-korsts-here/korsts/sts-train.tsv not found \(Hub"):
        train(cfg.with_overrides(data_dir=str(tmp_path / "no-korsts-here")))
    assert not out.exists()  # nothing written before the data was read
    # A folder left by a run that stopped before training (only its config, as older versions left it) is
    # rerun with other settings, with and without --resume.
    out.mkdir()
    (out / CONFIG_NAME).write_text(cfg.with_overrides(data_dir=str(tmp_path), seed=1).to_json(), encoding="utf-8")
    again = tmp_path / "again"
    again.mkdir()
    (again / CONFIG_NAME).write_text("{}", encoding="utf-8")
    _check_output(again, cfg.with_overrides(output_dir=str(again)))  # without --resume: not refused either
    assert train(cfg.with_overrides(resume=True)).stages["sts"]["steps"] == 2
