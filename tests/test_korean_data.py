"""Readers for KorSTS, KorNLI, KLUE, Question Pair, paraKQC and KorQuAD: real files and malformed rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from koembed.errors import InputError
from koembed.korean_data import (
    RowReport,
    read_klue_nli,
    read_klue_sts,
    read_kornli,
    read_korquad,
    read_korsts,
    read_parakqc,
    read_parakqc_pairs,
    read_question_pair,
)

KORSTS_HEADER = "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- real files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("split,rows", [("train", 5749), ("dev", 1500), ("test", 1379)])
def test_korsts_real(data_dir: Path, split: str, rows: int) -> None:
    report = RowReport()
    pairs = read_korsts(data_dir / "korsts" / f"sts-{split}.tsv", report)
    assert len(pairs) == rows and report.total_bad == 0
    assert all(0.0 <= p["score"] <= 5.0 and p["sentence1"] and p["sentence2"] for p in pairs)
    if split == "train":
        # A row whose sentence starts with a quote keeps it (quoting disabled) and stays one row.
        quoted = [p for p in pairs if p["sentence1"].startswith('"슈퍼맨"')]
        assert quoted and quoted[0]["score"] == 4.0 and quoted[0]["line"] == 1525


def test_kornli_real(data_dir: Path) -> None:
    report = RowReport()
    dev = read_kornli(data_dir / "kornli" / "xnli.dev.ko.tsv", report)
    assert len(dev) == 2490 and report.total_bad == 0
    assert {p["label"] for p in dev} == {"entailment", "neutral", "contradiction"}
    assert dev[0]["line"] == 2 and dev[0]["sentence1"].startswith("그리고 그가 말했다")


def test_klue_real(data_dir: Path) -> None:
    sts = read_klue_sts(data_dir / "klue" / "sts" / "klue-sts-v1.1_dev.json")
    nli = read_klue_nli(data_dir / "klue" / "nli" / "klue-nli-v1.1_dev.json")
    assert len(sts) == 519 and sts[0]["score"] == 4.9
    assert len(nli) == 3000 and nli[0]["label"] == "contradiction"


def test_question_pair_real_both_layouts(data_dir: Path) -> None:
    folder = data_dir / "question_pair"
    report = RowReport()
    csv_rows = read_question_pair(folder / "kor_pair_train.csv", report)
    test_csv = read_question_pair(folder / "kor_Pair_test.csv", report)
    txt_rows = read_question_pair(folder / "train.txt", report)
    assert (len(csv_rows), len(test_csv), len(txt_rows)) == (6888, 688, 6136)
    assert report.total_bad == 0
    # Upstream is_duplicate 0 means "same question": label 1 here.
    assert txt_rows[0]["sentence1"] == txt_rows[0]["sentence2"] and txt_rows[0]["label"] == 1
    assert csv_rows[0]["label"] == 0  # "1000일 만난 여자친구와 이별" vs "10년 연예의끝": different
    assert sum(r["label"] for r in csv_rows) == 4750


def test_parakqc_real(data_dir: Path) -> None:
    groups = read_parakqc(data_dir / "parakqc" / "paraKQC_v1.txt")
    assert len(groups) == 1000 and all(len(g["sentences"]) == 10 for g in groups)
    pairs = read_parakqc_pairs(data_dir / "parakqc" / "paraKQC_v1.txt")
    assert len(pairs) == 9000 and pairs[0]["sentence1"] == groups[0]["sentences"][0]
    assert pairs[8]["sentence2"] == groups[0]["sentences"][9] and pairs[9]["sentence1"] == groups[1]["sentences"][0]
    assert all(p["label"] == 1 and p["sentence1"] != p["sentence2"] for p in pairs[:90])


def test_korquad_real(data_dir: Path) -> None:
    qs = read_korquad(data_dir / "korquad" / "KorQuAD_v1.0_dev.json")
    assert len(qs) == 5774
    first = qs[0]
    assert first["id"] == "6548850-0-0" and first["answers"][0]["text"] == "1989년 2월 15일"
    ans = first["answers"][0]
    assert first["context"][ans["answer_start"]:].startswith(ans["text"])


# --- malformed rows ----------------------------------------------------------------------------------


def test_korsts_malformed_rows_counted_with_lines(tmp_path: Path) -> None:
    f = _write(tmp_path / "sts.tsv", KORSTS_HEADER
               + 'g\tf\t2012\t1\t3.5\t"따옴표로 시작하는 문장\t끝나는 "따옴표"\n'  # quotes: kept as text
               + "g\tf\t2012\t2\t4.0\t열이 모자란 행\n"  # 6 columns
               + "g\tf\t2012\t3\tabc\t점수가\t글자다\n"  # unparsable score
               + "g\tf\t2012\t4\t7.5\t점수가\t범위 밖\n"  # out of range
               + "g\tf\t2012\t5\t2.0\t \t빈 문장\n"  # empty sentence1
               + "\n"  # blank line: not a row
               + "g\tf\t2012\t6\t1.0\t마지막\t행")  # no trailing newline
    report = RowReport()
    rows = read_korsts(f, report)
    assert [r["line"] for r in rows] == [2, 8]
    assert rows[0]["sentence1"] == '"따옴표로 시작하는 문장' and rows[0]["sentence2"] == '끝나는 "따옴표"'
    assert [(b.line, b.reason.split()[0]) for b in report.bad_rows] == [
        (3, "expected"), (4, "score"), (5, "score"), (6, "empty")]
    counts = report.files[str(f)]
    assert (counts.read, counts.kept, counts.bad) == (6, 2, 4)
    assert "6 rows read, 2 kept, 4 malformed" in report.summary() and "line 3" in report.summary()


def test_kornli_unknown_label_and_columns(tmp_path: Path) -> None:
    f = _write(tmp_path / "nli.tsv", "sentence1\tsentence2\tgold_label\n"
               "전제\t가설\tentailment\n전제\t가설\tmaybe\n전제\t가설\n전제\t\tneutral\n")
    report = RowReport()
    rows = read_kornli(f, report)
    assert len(rows) == 1 and rows[0]["label"] == "entailment"
    reasons = [b.reason for b in report.bad_rows]
    assert "unknown gold_label 'maybe'" in reasons[0] and "found 2" in reasons[1] and "empty" in reasons[2]


def test_klue_json_bad_items(tmp_path: Path) -> None:
    f = _write(tmp_path / "klue-sts.json", json.dumps([
        {"sentence1": "가", "sentence2": "나", "labels": {"label": 3.0}},
        {"sentence1": "가", "sentence2": "나"},
        {"sentence1": "가", "sentence2": "나", "labels": {"label": "x"}},
    ]))
    report = RowReport()
    assert len(read_klue_sts(f, report)) == 1 and report.total_bad == 2
    g = _write(tmp_path / "klue-nli.json", json.dumps([{"premise": "가", "hypothesis": "나", "gold_label": "other"}]))
    report = RowReport()
    assert read_klue_nli(g, report) == [] and report.total_bad == 1
    with pytest.raises(InputError, match="none of its 1 rows"):
        report.raise_if_empty(g)
    h = _write(tmp_path / "broken.json", "[{")
    with pytest.raises(InputError, match="invalid JSON at line 1"):
        read_klue_sts(h)


def test_question_pair_malformed(tmp_path: Path) -> None:
    f = _write(tmp_path / "kor_pair_train.csv", "\ufeffid,qid1,qid2,question1,question2,is_duplicate\n"
               '1,1,2,"쉼표, 있는 질문",다른 질문,0\n2,3,4,질문,질문,2\n3,5,6,열이 모자람,0\n')
    report = RowReport()
    rows = read_question_pair(f, report)
    assert rows == [{"sentence1": "쉼표, 있는 질문", "sentence2": "다른 질문", "label": 1, "line": 2}]
    assert [b.line for b in report.bad_rows] == [3, 4]
    t = _write(tmp_path / "train.txt", "question1\tquestion2\tis_duplicate\n가\t나\t1\n가\t나\n")
    report = RowReport()
    assert len(read_question_pair(t, report)) == 1 and report.bad_rows[0].line == 3


def test_parakqc_malformed_and_missing_file(tmp_path: Path) -> None:
    f = _write(tmp_path / "paraKQC_v1.txt", "0\t0\t하나\n0\t0\n0\t0\t셋\n")
    report = RowReport()
    groups = read_parakqc(f, report)
    assert groups[0]["sentences"] == ["하나", "셋"] and report.bad_rows[0].line == 2
    with pytest.raises(InputError, match="no such file"):
        read_korsts(tmp_path / "absent.tsv")


def test_korquad_empty_question(tmp_path: Path) -> None:
    f = _write(tmp_path / "kq.json", json.dumps({"data": [{"title": "t", "paragraphs": [
        {"context": "문단", "qas": [{"id": "a", "question": "질문?", "answers": [{"text": "문", "answer_start": 0}]},
                                  {"id": "b", "question": " ", "answers": []}]}]}]}))
    report = RowReport()
    qs = read_korquad(f, report)
    assert [q["id"] for q in qs] == ["a"] and report.total_bad == 1 and "empty question" in report.bad_rows[0].reason


def test_hub_loader_offline_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from koembed.data.hub import load_pairs_from_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError, match="could not be loaded"):
        load_pairs_from_hub("kakaobrain/no-such-dataset-koembed-test")


def test_invalid_utf8_rows_are_reported(tmp_path: Path) -> None:
    f = tmp_path / "sts.tsv"
    f.write_bytes(KORSTS_HEADER.encode() + "g\tf\t2012\t1\t3.0\t좋은\t행\n".encode()
                  + b"g\tf\t2012\t2\t3.0\t\xff\xfe\tbad\n" + "g\tf\t2012\t3\t1.0\t다음\t행\n".encode())
    report = RowReport()
    assert [r["line"] for r in read_korsts(f, report)] == [2, 4]
    assert [(b.line, b.reason) for b in report.bad_rows] == [(3, "not valid UTF-8")]
    c = tmp_path / "kor_pair_train.csv"
    c.write_bytes(b"id,question1,question2,is_duplicate\n1,\xff,b,0\n")
    report = RowReport()
    assert read_question_pair(c, report) == [] and report.bad_rows[0].reason == "not valid UTF-8"


# --- the data folder, the catalogue and the Hub fallback ------------------------------------------


def test_an_explicit_data_dir_that_does_not_exist_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from koembed.paths import data_dir

    # Never silently replaced by ../shared/data: that would score other data and exit 0.
    with pytest.raises(InputError, match=f"data folder {tmp_path / 'typo'} does not exist"):
        data_dir(tmp_path / "typo")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="is a file, not a folder"):
        data_dir(tmp_path / "file")
    monkeypatch.setenv("KOEMBED_DATA_DIR", str(tmp_path / "env-typo"))
    with pytest.raises(InputError, match=f"KOEMBED_DATA_DIR {tmp_path / 'env-typo'} does not exist"):
        data_dir()
    assert data_dir(tmp_path) == tmp_path  # an explicit folder wins over the variable
    monkeypatch.setenv("KOEMBED_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path


def test_catalogue_entries_are_complete() -> None:
    import re

    from koembed.data.catalogue import CATALOGUE, SPLITS
    from koembed.korean_data import FORMATS

    for name, ds in CATALOGUE.items():
        assert ds.licence.licence and ds.licence.attribution and ds.source, name
        assert ds.format is None or ds.format in FORMATS, name
        assert all(split in SPLITS and path.startswith(ds.folder + "/") for split, path in ds.files), name
        if ds.format is not None:
            assert ds.files or ds.hub, name
        if ds.hub is not None:
            assert ds.hub.revision is None or re.fullmatch("[0-9a-f]{40}", ds.hub.revision), name
            assert {ours for ours, _ in ds.hub.splits} <= set(SPLITS), name
    assert CATALOGUE["klue-sts"].hub.revision and CATALOGUE["korsts"].hub.path == "kakaobrain/kor_nlu"


def test_every_shared_data_folder_is_catalogued(data_dir: Path) -> None:
    from koembed.data.catalogue import CATALOGUE

    folders = {ds.folder for _, ds in CATALOGUE.items()}
    on_disk = {p.name for p in data_dir.iterdir() if p.is_dir()}
    assert on_disk <= folders, on_disk - folders
    # Every catalogued file that the shared data holds is read by its format without a malformed row.
    for _, ds in CATALOGUE.items():
        for split, rel in ds.files:
            if ds.format in ("korsts", "kornli", "klue-sts", "klue-nli", "paws-x") and (data_dir / rel).is_file():
                from koembed.data.load import read_split

                report = RowReport()
                assert read_split(ds, split, data_dir, report).rows and report.total_bad == 0, rel


def test_licences_come_from_the_catalogue() -> None:
    from koembed.data.catalogue import licence_for, licences_for

    assert licence_for("korsts/sts-train.tsv").name == "KorSTS"
    assert licence_for("/elsewhere/klue/nli/klue-nli-v1.1_dev.json").name == "KLUE v1.1"
    assert licence_for("kornli:train").name == "KorNLI" and licence_for("my/own.tsv") is None
    assert licence_for("copied/kor_pair_train.csv").licence == "MIT"
    assert licence_for("nsmc/raw_neutral_reviews.tsv").licence == "CC0 1.0"  # by folder, for the recipe corpus
    assert [lic.name for lic in licences_for(["parakqc/paraKQC_v1.txt", "korsts:dev", "x.tsv"])] == ["KorSTS",
                                                                                                     "ParaKQC"]


def _hub_folder(root: Path, splits: dict[str, dict], features=None, fmt: str = "parquet",
                config: str | None = None) -> Path:
    """A script-less dataset folder laid out as on the Hub (one file per split; a named config declared in the
    README's YAML as the Hub's parquet repositories do), which load_dataset(path, config) reads offline."""
    from datasets import Dataset

    folder = root / (config or "")
    folder.mkdir(parents=True)
    files = []
    for split, columns in splits.items():
        ds = Dataset.from_dict(columns, features=features)
        if fmt == "parquet":
            ds.to_parquet(str(folder / f"{split}.parquet"))
        else:
            ds.to_json(str(folder / f"{split}.jsonl"))
        files.append(f"  - split: {split}\n    path: {config + '/' if config else ''}{split}.{fmt}\n")
    if config:
        (root / "README.md").write_text(f"---\nconfigs:\n- config_name: {config}\n  data_files:\n{''.join(files)}---\n",
                                        encoding="utf-8")
    return root


def test_read_split_falls_back_to_the_hub_dataset(tmp_path: Path) -> None:
    from dataclasses import replace

    from datasets import ClassLabel, Features, Value

    from koembed.data.catalogue import HubSource, find_dataset
    from koembed.data.load import DataMissing, read_split

    sts = _hub_folder(tmp_path / "kor_nlu_sts", {
        "train": {"sentence1": ["가", "나", " ", "라"], "sentence2": ["가가", "나나", "다다", "라라"],
                  "score": [4.5, 2.0, 3.0, 7.0]},
        "validation": {"sentence1": ["마"], "sentence2": ["마마"], "score": [1.0]}}, fmt="jsonl", config="sts")
    korsts = replace(find_dataset("korsts"), hub=replace(find_dataset("korsts").hub, path=str(sts)))
    data = tmp_path / "data"
    data.mkdir()
    report = RowReport()
    got = read_split(korsts, "train", data, report)
    # The reader's row shape; the empty sentence and the score outside 0..5 are counted, not kept.
    assert got.rows == [{"sentence1": "가", "sentence2": "가가", "score": 4.5, "line": 1},
                        {"sentence1": "나", "sentence2": "나나", "score": 2.0, "line": 2}]
    assert got.source.startswith("Hub ") and report.total_bad == 2 and "outside [0, 5]" in report.summary()
    assert read_split(korsts, "dev", data).rows[0]["sentence2"] == "마마"
    with pytest.raises(DataMissing, match="korsts test: .*sts-test.tsv not found; Hub dataset .* could not be"):
        read_split(korsts, "test", data)
    # A local file wins over the Hub.
    (data / "korsts").mkdir()
    (data / "korsts" / "sts-train.tsv").write_text(KORSTS_HEADER + "g\tf\t2012\t1\t3.0\t로컬\t문장\n",
                                                   encoding="utf-8")
    local = read_split(korsts, "train", data)
    assert local.source == "local files" and [r["sentence1"] for r in local.rows] == ["로컬"]

    # NLI: class indices become the label names, as the KorNLI/KLUE readers return them.
    features = Features({"premise": Value("string"), "hypothesis": Value("string"),
                         "label": ClassLabel(names=["entailment", "neutral", "contradiction"])})
    nli = _hub_folder(tmp_path / "klue_nli", {"train": {"premise": ["전제"] * 3, "hypothesis": ["가", "나", "다"],
                                                        "label": [2, 0, -1]}}, features)
    klue = replace(find_dataset("klue-nli"), hub=HubSource(str(nli), splits=(("train", "train"),),
                                                           columns=find_dataset("klue-nli").hub.columns))
    report = RowReport()
    rows = read_split(klue, "train", data, report).rows
    assert [r["label"] for r in rows] == ["contradiction", "entailment"] and report.total_bad == 1


def test_training_reads_a_catalogued_split_from_the_hub_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    import koembed.data.load as load
    from koembed.data.catalogue import find_dataset
    from koembed.training.data import parse_spec, sts_stage_data

    sts = _hub_folder(tmp_path / "hub", {"train": {"sentence1": ["가", "나"], "sentence2": ["다", "라"],
                                                  "score": [5.0, 0.0]}}, config="sts")
    korsts = replace(find_dataset("korsts"), hub=replace(find_dataset("korsts").hub, path=str(sts)))
    monkeypatch.setattr(load, "find_dataset", lambda name: korsts if name == "korsts" else find_dataset(name))
    data = tmp_path / "data"
    data.mkdir()
    # Both spellings name the same split: the catalogue reference and the relative path it lists.
    assert parse_spec("korsts:train", data) == parse_spec("korsts/sts-train.tsv", data) == ("catalogue", "korsts:train")
    for spec in ("korsts:train", "korsts/sts-train.tsv"):
        assert sts_stage_data([spec], data, RowReport())["sts"] == [
            {"sentence1": "가", "sentence2": "다", "score": 1.0}, {"sentence1": "나", "sentence2": "라", "score": 0.0}]


def test_int8_calibration_sentences_come_from_the_catalogue(data_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from koembed.backends.onnx.quantize import _calibration_texts
    from koembed.errors import KoembedError

    monkeypatch.setenv("KOEMBED_DATA_DIR", str(data_dir))
    texts = _calibration_texts(6)
    korsts = read_korsts(data_dir / "korsts" / "sts-train.tsv")
    assert texts[:3] == [r["sentence1"] for r in korsts[:3]] and len(texts) == 6
    monkeypatch.setenv("KOEMBED_DATA_DIR", str(tmp_path))  # no data there, and the Hub is offline in tests
    with pytest.raises(KoembedError, match="calibration needs Korean sentences: korsts train: .*; or use quantization"):
        _calibration_texts(6)


def test_a_failed_hub_dataset_is_not_asked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from koembed.data.catalogue import HubSource
    from koembed.data.hub import HubUnavailable, hub_split

    calls = []

    def unreachable(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("Couldn't reach the Hub\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    source = HubSource(f"someone/{tmp_path.name}")  # a fresh id: nothing remembered from other tests
    for split in ("train", "dev", "train"):
        with pytest.raises(HubUnavailable, match="could not be loaded: Couldn't reach the Hub$"):
            hub_split(source, split, "sts")
    assert len(calls) == 1
