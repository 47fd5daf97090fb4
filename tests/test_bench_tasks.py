"""The task registry, the loaders of the original formats, the split rules, every task end to end with the
tiny model, and the resumable suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.bench.task_data import TaskDataMissing, load_task
from distill.bench.tasks import HEADS, SEED_TASKS, TASKS, get_task, parse_tasks
from koembed.data.catalogue import find_dataset
from koembed.errors import InputError
from koembed.korean_data import FORMATS, RowReport
from koembed.korean_ner import read_klue_ner, read_kmou_ner, read_naver_ner

NAVER_SAMPLE = """1\t비토리오\tPER_B
2\t양일\tDAT_B
3\t만에\t-
4\t영사관\tORG_B
5\t감호\tCVL_B
6\t용퇴,\t-

1\t이\t-
2\t음경동맥의\tAFW_B
3\t직경이\t-
4\t8\tNUM_B
5\t19mm입니다\tNUM_B
"""


def write_naver(root: Path, sentences: int = 14) -> Path:
    """A Naver NER train file of ``sentences`` sentences (the two sample sentences repeated)."""
    blocks = NAVER_SAMPLE.strip().split("\n\n")
    path = root / "naver-ner" / "train_data"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(blocks[i % 2] for i in range(sentences)) + "\n", encoding="utf-8")
    return root


def test_registry_is_complete() -> None:
    assert SEED_TASKS == ("nsmc", "naver-ner", "paws", "kornli", "korsts", "question-pair", "korquad")
    for task in TASKS.values():
        assert task.head in HEADS and find_dataset(task.dataset).format in FORMATS and task.metric in task.shown
        assert task.hyper.max_length > 0 and task.hyper.epochs > 0
    assert TASKS["korquad"].hyper.stride == 128 and TASKS["nsmc"].hyper.max_length == 50
    assert TASKS["korsts"].head == "regression" and TASKS["korquad"].split == "dev"
    # Sentence-evaluation tasks share the registry but are not benchmark tasks.
    with pytest.raises(InputError, match="korsts-dev is a sentence-evaluation task .*koembed eval"):
        get_task("korsts-dev")


def test_typo_suggests_the_nearest_task() -> None:
    with pytest.raises(InputError, match="did you mean korsts"):
        get_task("korsst")
    with pytest.raises(InputError, match="did you mean question-pair"):
        parse_tasks("nsmc,question_pairs")
    assert [t.name for t in parse_tasks("all")] == list(SEED_TASKS)
    assert [t.name for t in parse_tasks("KorSTS, nsmc,korsts")] == ["korsts", "nsmc"]


def test_naver_ner_reader(tmp_path: Path) -> None:
    path = tmp_path / "train_data"
    path.write_text(NAVER_SAMPLE + "\nbroken line here too many\n", encoding="utf-8")
    report = RowReport()
    rows = read_naver_ner(path, report)
    assert rows[0] == {"tokens": ["비토리오", "양일", "만에", "영사관", "감호", "용퇴,"],
                       "tags": ["B-PER", "B-DAT", "O", "B-ORG", "B-CVL", "O"]}
    assert rows[1]["tags"] == ["O", "B-AFW", "O", "B-NUM", "B-NUM"]
    assert report.total_bad == 1 and "line 14" in report.summary()


def test_nsmc_and_paws_go_through_korean_data_and_count_bad_rows(tmp_path: Path) -> None:
    header = "id\tdocument\tlabel\n"
    (tmp_path / "nsmc").mkdir()
    (tmp_path / "nsmc" / "ratings_train.txt").write_text(
        header + "1\t재밌다 \"진짜\"\t1\n2\t\t0\n3\t별로\t2\n4\t그냥\n" + "".join(
            f"{i}\t리뷰 {i}\t{i % 2}\n" for i in range(5, 25)), encoding="utf-8")
    (tmp_path / "nsmc" / "ratings_test.txt").write_text(header + "9\t최고\t1\n10\t최악\t0\n", encoding="utf-8")
    report = RowReport()
    data = load_task(get_task("nsmc"), tmp_path, use_hub=False, report=report)
    # The heads take labels as strings and no line numbers; quotes stay (quoting is off in the reader).
    assert data.test == [{"sentence1": "최고", "label": "1"}, {"sentence1": "최악", "label": "0"}]
    assert {"sentence1": '재밌다 "진짜"', "label": "1"} in data.train + data.dev
    assert len(data.train) + len(data.dev) == 21
    assert report.total_bad == 3 and "empty document" in report.summary() and "is not 0 or 1" in report.summary()
    paws = tmp_path / "dev_2k.tsv"
    paws.write_text("id\tsentence1\tsentence2\tlabel\n1\t가 나\t나 가\t0\n2\t다\t\t1\n", encoding="utf-8")
    report = RowReport()
    assert FORMATS["paws-x"].read(paws, report) == [{"sentence1": "가 나", "sentence2": "나 가", "label": 0, "line": 2}]
    assert report.total_bad == 1


def test_klue_and_kmou_readers_merge_pieces_into_words(tmp_path: Path) -> None:
    klue = tmp_path / "klue.tsv"
    klue.write_text("## klue-ner-v1_dev_00000\t<경찰:OG>은 <박:PS>씨\n"
                    "경\tB-OG\n찰\tI-OG\n은\tO\n \tO\n박\tB-PS\n씨\tO\n\n", encoding="utf-8")
    assert read_klue_ner(klue, RowReport()) == [{"tokens": ["경찰은", "박씨"], "tags": ["B-OG", "B-PS"]}]
    kmou = tmp_path / "ner.train"
    kmou.write_text("; 홍길동이 간다\n$<홍길동:PS>이 간다\n"
                    "1\t홍길동\tNNP\tB_PS\n1\t이\tJKS\tO\n2\t가\tVV\tO\n2\tㄴ다\tEF\tO\n", encoding="utf-8")
    assert read_kmou_ner(kmou, RowReport()) == [{"tokens": ["홍길동이", "가ㄴ다"], "tags": ["B-PS", "O"]}]


def test_split_rules(tmp_path: Path) -> None:
    # Train only (Naver NER sample): test and dev are carved from train -> local split, disjoint, stable.
    root = write_naver(tmp_path, sentences=20)
    a = load_task(get_task("naver-ner"), root, use_hub=False)
    b = load_task(get_task("naver-ner"), root, use_hub=False)
    assert a.split_kind == "local split" and (len(a.train), len(a.dev), len(a.test)) == (16, 2, 2)
    assert (a.train, a.dev, a.test) == (b.train, b.dev, b.test)
    assert a.labels[0] == "O" and "B-PER" in a.labels and "I-PER" in a.labels
    # Nothing there: a clear reason, never an empty task.
    with pytest.raises(TaskDataMissing, match="kornli/xnli.dev.ko.tsv"):
        load_task(get_task("kornli"), tmp_path, use_hub=False)


def test_a_regression_split_of_one_row_is_refused(tmp_path: Path) -> None:
    # A Spearman over one pair is undefined: say so before any training instead of scoring it 0.
    header = "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\n"
    rows = "".join(f"main\tf\t2012\t{i}\t{i % 5}.0\t문장 {i} 하나\t문장 {i} 둘\n" for i in range(6))
    for split in ("train", "dev", "test"):
        path = tmp_path / "korsts" / f"sts-{split}.tsv"
        path.parent.mkdir(exist_ok=True)
        path.write_text(header + rows, encoding="utf-8")
    assert len(load_task(get_task("korsts"), tmp_path, max_eval_samples=2, use_hub=False).test) == 2
    with pytest.raises(InputError, match="korsts: the dev split has 1 row"):
        load_task(get_task("korsts"), tmp_path, max_eval_samples=1, use_hub=False)


def test_korquad_carves_whole_articles(data_dir: Path) -> None:
    d = load_task(get_task("korquad"), data_dir, use_hub=False)
    assert d.split_kind == "local split"
    titles = [{r["title"] for r in split} for split in (d.train, d.dev, d.test)]
    assert not (titles[0] & titles[1]) and not (titles[0] & titles[2]) and not (titles[1] & titles[2])


def _tiny_run(task_name: str, root: Path, tiny_bert_dir: Path, tmp_path: Path) -> dict:
    from dataclasses import replace

    from distill.bench.finetune import FinetuneConfig, finetune

    task = get_task(task_name)
    data = load_task(task, root, max_train_samples=16, max_eval_samples=6, use_hub=False)
    # Test on the dev rows: the test score must then be the score of the selected checkpoint on dev.
    data = replace(data, test=data.dev)
    config = FinetuneConfig(max_length=128 if task.head == "qa" else 32, epochs=1, batch_size=8,
                            learning_rate=1e-3, stride=task.hyper.stride, quiet=True, device="cpu")
    return finetune(tiny_bert_dir, data, config, tmp_path / "work")


@pytest.mark.parametrize("task_name", list(TASKS))
def test_every_task_end_to_end(task_name: str, tiny_bert_dir: Path, tmp_path: Path, request) -> None:
    import torch

    torch.set_num_threads(1)
    root = write_naver(tmp_path / "data") if task_name == "naver-ner" else request.getfixturevalue("data_dir")
    result = _tiny_run(task_name, root, tiny_bert_dir, tmp_path)
    task = get_task(task_name)
    # Test and dev hold the same rows, so the test metrics (scored after training, from predict) must equal
    # the dev metrics of the checkpoint the Trainer selected: this fails if the two scorers disagree, if test
    # rows are paired with the wrong predictions or labels, or if the selected checkpoint is not the one tested.
    for key in task.shown:
        assert result["metrics"][key] == pytest.approx(result["dev_metrics"][key], abs=1e-6), key
    assert result["examples"]["test"] == result["examples"]["dev"] > 0 and result["train_steps"] >= 1
    assert 0 < result["params"] < result["params_total"]
    assert not (tmp_path / "work" / "checkpoints").exists()


def test_suite_resumes_and_records_missing(tiny_bert_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import torch

    import distill.bench.run as bench

    torch.set_num_threads(1)
    root = write_naver(tmp_path / "data")
    out = tmp_path / "res"
    config = bench.BenchConfig(models=[f"tiny={tiny_bert_dir}"], output_dir=str(out), tasks="naver-ner,kornli",
                               seeds=1, max_train_samples=8, max_eval_samples=4, epochs=1, max_length=16,
                               data_dir=str(root), use_hub=False, quiet=True, device="cpu")
    bench.run_bench(config)
    first = out / "tiny" / "naver-ner" / "seed-42.json"
    record = json.loads(first.read_text(encoding="utf-8"))
    assert record["status"] == "ok" and record["split_kind"] == "local split" and "transformers" in record["versions"]
    missing = json.loads((out / "tiny" / "kornli" / "seed-42.json").read_text(encoding="utf-8"))
    assert missing["status"] == "missing" and "xnli.dev.ko.tsv" in missing["reason"]

    calls = []
    real = bench.finetune
    monkeypatch.setattr(bench, "finetune", lambda *a, **k: calls.append(a[1].task.name) or real(*a, **k))
    before = first.read_bytes()
    config.seeds = 2
    bench.run_bench(config)
    assert calls == ["naver-ner"]  # seed 42 skipped, seed 43 run, kornli still missing (no training)
    assert first.read_bytes() == before
    assert (out / "tiny" / "naver-ner" / "seed-43.json").is_file()

    config.max_train_samples = 4  # other settings: refuse to mix them into the same folder
    with pytest.raises(InputError, match="other settings"):
        bench.run_bench(config)


def test_cli_lists_tasks_and_suggests(capsys, tiny_bert_dir: Path) -> None:
    from distill.cli import main

    assert main(["bench", "--list-tasks"]) == 0
    assert "korquad" in capsys.readouterr().out
    assert main(["bench", str(tiny_bert_dir), "--tasks", "kornl"]) == 2
    assert "did you mean kornli" in capsys.readouterr().err


def test_hub_fallback_maps_columns_and_class_labels(tmp_path: Path) -> None:
    # The Hub path of load_task, exercised on a local parquet folder (load_dataset reads both the same way).
    from dataclasses import replace

    from datasets import ClassLabel, Dataset, Features, Value

    from koembed.data.catalogue import HubSource

    features = Features({"premise": Value("string"), "hypothesis": Value("string"),
                         "label": ClassLabel(names=["entailment", "neutral", "contradiction"])})
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    for split, n in (("train", 10), ("validation", 4)):
        rows = {"premise": [f"전제 {i}" for i in range(n)], "hypothesis": [f"가설 {i}" for i in range(n)],
                "label": [i % 3 for i in range(n)]}
        Dataset.from_dict(rows, features=features).to_parquet(str(hub_dir / f"{split}.parquet"))
    hub = HubSource(str(hub_dir), splits=(("train", "train"), ("dev", "validation")),
                    columns=(("sentence1", "premise"), ("sentence2", "hypothesis"), ("label", "label")))
    dataset = replace(find_dataset("klue-nli"), files=(("dev", "nowhere/dev.json"),), hub=hub)
    empty = tmp_path / "empty-data"
    empty.mkdir()
    task = get_task("klue-nli")
    data = load_task(task, empty, dataset=dataset)
    # train + dev from the Hub (dev is the task's reported split): dev is the test, dev carved from train.
    assert data.split_kind == "full" and "Hub" in data.split_note
    assert data.train[0]["sentence1"].startswith("전제") and {r["label"] for r in data.train} <= set(task.labels)
    assert [r["label"] for r in data.test] == ["entailment", "neutral", "contradiction", "entailment"]
    assert len(data.test) == 4 and len(data.train) + len(data.dev) == 10
    with pytest.raises(TaskDataMissing, match="nowhere/dev.json"):
        load_task(task, empty, use_hub=False, dataset=dataset)


def test_sentence_transformers_folder_is_accepted(tiny_st_dir: Path) -> None:
    from distill.bench.finetune import hf_model_folder

    assert (hf_model_folder(tiny_st_dir) / "config.json").is_file()


def test_too_long_max_length_is_a_clear_error(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from distill.bench.finetune import FinetuneConfig, finetune

    data = load_task(get_task("naver-ner"), write_naver(tmp_path / "data"), use_hub=False)
    with pytest.raises(InputError, match="exceeds the 128 positions"):
        finetune(tiny_bert_dir, data, FinetuneConfig(max_length=300, epochs=1, batch_size=4, learning_rate=1e-3),
                 tmp_path / "work")
