"""Streaming document readers: every format, field choices, bad records, empty lines, real NSMC/KorQuAD."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from koembed.corpus import CorpusStats, detect_format, iter_records
from koembed.errors import InputError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_txt_ids_are_line_numbers_and_empty_lines_are_counted(tmp_path):
    nfd = unicodedata.normalize("NFD", "한국어 문장")
    p = _write(tmp_path / "docs.txt", f"\ufeff첫 문장\n\n  \n{nfd}\n마지막\n")
    stats = CorpusStats()
    recs = list(iter_records(p, stats=stats))
    assert [(r.id, r.text) for r in recs] == [("1", "첫 문장"), ("4", "한국어 문장"), ("5", "마지막")]
    assert recs[1].text == unicodedata.normalize("NFC", "한국어 문장")
    assert (stats.read, stats.empty, stats.bad) == (3, 2, 0)


def test_jsonl_fields_metadata_and_custom_names(tmp_path):
    rows = [{"id": "a", "text": "서울의 날씨", "metadata": {"lang": "ko", "n": 1}},
            {"id": 7, "text": "부산 바다"},
            {"doc": "x", "body": "unused"}]
    p = _write(tmp_path / "d.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:2]) + "\n\n")
    recs = list(iter_records(p))
    assert [(r.id, r.text, r.metadata, r.line) for r in recs] == [
        ("a", "서울의 날씨", {"lang": "ko", "n": 1}, 1), ("7", "부산 바다", {}, 2)]
    p2 = _write(tmp_path / "e.jsonl", json.dumps({"doc": "x", "body": "본문", "m": {"k": "v"}}, ensure_ascii=False))
    [r] = iter_records(p2, text_field="body", id_field="doc", metadata_field="m")
    assert (r.id, r.text, r.metadata) == ("x", "본문", {"k": "v"})
    # no id field: the line number
    [r] = iter_records(_write(tmp_path / "f.jsonl", '{"text": "아이디 없음"}\n'))
    assert r.id == "1"


@pytest.mark.parametrize("line, message", [
    ('{"id": 1, "text": "ok"', "malformed JSON"),
    ('{"id": 1}', "text field 'text' is missing"),
    ('{"id": 1, "text": 5}', "not a string"),
    ('{"id": 1, "text": "t", "metadata": [1]}', "must be an object"),
    ('[1, 2]', "expected a JSON object"),
])
def test_jsonl_bad_lines_name_file_and_line_or_are_skipped(tmp_path, line, message):
    p = _write(tmp_path / "bad.jsonl", '{"id": "ok", "text": "좋아요"}\n' + line + "\n")
    with pytest.raises(InputError, match=rf"bad.jsonl: line 2: .*{message}.*--skip-bad"):
        list(iter_records(p))
    stats = CorpusStats()
    assert [r.id for r in iter_records(p, skip_bad=True, stats=stats)] == ["ok"]
    assert stats.bad == 1 and stats.bad_locations == [f"{p}: line 2"]


def test_tsv_keeps_quotes_and_extra_columns_become_metadata(tmp_path):
    p = _write(tmp_path / "d.tsv", 'id\tdocument\tlabel\n1\t"따옴표로 시작하는 리뷰\t0\n2\t좋다 "정말"\t1\n')
    recs = list(iter_records(p, text_field="document"))
    assert [(r.id, r.text, r.metadata) for r in recs] == [
        ("1", '"따옴표로 시작하는 리뷰', {"label": "0"}), ("2", '좋다 "정말"', {"label": "1"})]


def test_csv_multiline_quoted_field_and_missing_id_column(tmp_path):
    p = _write(tmp_path / "d.csv", 'text,topic\n"첫 줄\n둘째 줄",a\n"쉼표, 포함",b\n')
    recs = list(iter_records(p))
    assert [(r.id, r.text, r.metadata, r.line) for r in recs] == [
        ("1", "첫 줄\n둘째 줄", {"topic": "a"}, 3), ("2", "쉼표, 포함", {"topic": "b"}, 4)]


def test_table_errors(tmp_path):
    p = _write(tmp_path / "d.csv", "id,body\n1,텍스트\n")
    with pytest.raises(InputError, match=r"no text column 'text' .*columns: id, body.*--text-field"):
        list(iter_records(p))
    p = _write(tmp_path / "e.tsv", "id\ttext\n1\t하나\n2\t둘\t셋\n")
    with pytest.raises(InputError, match=r"e.tsv: line 3: 3 columns, the header has 2"):
        list(iter_records(p))
    assert [r.id for r in iter_records(p, skip_bad=True)] == ["1"]


def test_parquet_streams_batches_with_native_metadata(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    import koembed.corpus as corpus

    monkeypatch.setattr(corpus, "PARQUET_BATCH_ROWS", 2)  # several batches from a small file
    table = pa.table({"id": ["a", "b", "c", "d", "e"], "text": ["가", "", "다", None, "마"], "score": [1, 2, 3, 4, 5]})
    p = tmp_path / "d.parquet"
    pq.write_table(table, p, row_group_size=2)
    stats = CorpusStats()
    recs = list(iter_records(p, skip_bad=True, stats=stats))
    assert [(r.id, r.text, r.metadata, r.line) for r in recs] == [
        ("a", "가", {"score": 1}, 1), ("c", "다", {"score": 3}, 3), ("e", "마", {"score": 5}, 5)]
    assert (stats.read, stats.empty, stats.bad) == (3, 1, 1)
    with pytest.raises(InputError, match="row 4: text column 'text' is missing"):
        list(iter_records(p))


def test_format_detection_and_missing_files(tmp_path):
    assert detect_format("a.JSONL") == "jsonl" and detect_format("x.txt", "tsv") == "tsv"
    with pytest.raises(InputError, match="cannot tell the format"):
        detect_format("a.xlsx")
    with pytest.raises(InputError, match="no such file"):
        list(iter_records(tmp_path / "missing.txt"))


def test_real_nsmc_reviews_stream(data_dir):
    path = data_dir / "nsmc" / "ratings_test.txt"
    stats = CorpusStats()
    first = []
    for r in iter_records(path, fmt="tsv", text_field="document", stats=stats):
        if len(first) < 3:
            first.append(r)
    assert stats.read + stats.empty == 50_000 and stats.bad == 0
    assert first[0].id == "6270596" and first[0].metadata == {"label": "1"}


def test_ids_are_kept_exactly_numbers_in_decimal_and_repeats_are_located(tmp_path):
    nfd = unicodedata.normalize("NFD", "가")
    rows = [{"id": "a", "text": "x"}, {"id": "a ", "text": "y"}, {"id": nfd, "text": "z"}, {"id": "가", "text": "w"},
            {"id": 123, "text": "n"}, {"id": "123", "text": "s"}, {"id": 2.0, "text": "f"},
            {"id": 2.5, "text": "g"}, {"text": "no id: the line number"}, {"id": "a", "text": "again"}]
    path = tmp_path / "ids.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    stats = CorpusStats(track_ids=True)
    ids = [r.id for r in iter_records(path, stats=stats)]
    # Nothing trimmed or normalised: "a " and the NFD form are ids of their own; 123 is "123", 2.0 is "2".
    assert ids == ["a", "a ", nfd, "가", "123", "123", "2", "2.5", "9", "a"]
    assert stats.duplicates == 2
    assert stats.duplicate_locations == [f"{path}: line 6 repeats the id of line 5",
                                         f"{path}: line 10 repeats the id of line 1"]
    assert "2 repeated ids, the last record wins" in stats.summary()
    untracked = CorpusStats()
    list(iter_records(path, stats=untracked))
    assert untracked.duplicates == 0  # counting is opt-in (it costs 12 bytes a record)


@pytest.mark.parametrize("value, message", [("null", "is null; give the record an id"), ('"  "', "is blank"),
                                            ("true", "must be a string or number, got bool"),
                                            ("NaN", "is nan, not a usable id"),
                                            ('{"x": 1}', "must be a string or number, got dict")])
def test_unusable_ids_are_bad_records(tmp_path, value, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "ok", "text": "x"}\n{"id": ' + value + ', "text": "y"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=f"bad.jsonl: line 2: id field 'id' {message}"):
        list(iter_records(path))
    stats = CorpusStats()
    assert [r.id for r in iter_records(path, skip_bad=True, stats=stats)] == ["ok"] and stats.bad == 1


def test_repeated_ids_in_tables_and_parquet_are_located(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    tsv = tmp_path / "t.tsv"
    tsv.write_text("id\ttext\n1\t가\n2\t나\n1\t다\n", encoding="utf-8")
    stats = CorpusStats(track_ids=True)
    assert [r.id for r in iter_records(tsv, stats=stats)] == ["1", "2", "1"]
    assert stats.duplicate_locations == [f"{tsv}: line 4 repeats the id of line 2"]
    pq.write_table(pa.table({"id": [7, 8, 7, 7], "text": ["가", "나", "다", "라"]}), tmp_path / "t.parquet")
    stats = CorpusStats(track_ids=True)
    list(iter_records(tmp_path / "t.parquet", stats=stats))
    assert stats.duplicates == 2
    assert stats.duplicate_locations[0] == f"{tmp_path / 't.parquet'}: row 3 repeats the id of row 1"
