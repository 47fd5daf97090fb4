"""Readers for KorSTS, KorNLI, KLUE, Question Pair, paraKQC and KorQuAD: real files and malformed rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from koembed.errors import InputError
from koembed.korean_data import (
    RowReport,
    load_pairs_from_hub,
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
