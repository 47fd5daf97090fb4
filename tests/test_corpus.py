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
    ('{"id": 1}', r"no text field 'text' \(its fields: id\); name the field holding the text with --text-field"),
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


# ---- inputs read as meant (issue 26) ---------------------------------------------------------------------


def test_jsonl_keeps_its_other_fields_as_metadata_like_a_table(tmp_path):
    rows = [{"id": 1, "text": "리뷰 하나", "rating": 5, "tags": ["a"]},
            {"id": 2, "text": "리뷰 둘", "rating": 1, "metadata": {"lang": "ko"}}]
    p = _write(tmp_path / "r.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    assert [r.metadata for r in iter_records(p)] == [{"rating": 5, "tags": ["a"]}, {"rating": 1, "lang": "ko"}]
    # A CSV's metadata column joins its other columns too.
    c = _write(tmp_path / "r.csv", 'text,metadata,topic\n가,"{""lang"": ""ko""}",news\n')
    assert [r.metadata for r in iter_records(c)] == [{"topic": "news", "lang": "ko"}]
    # A name in both would lose one value: a bad record, named.
    clash = _write(tmp_path / "c.jsonl", '{"text": "t", "lang": "en", "metadata": {"lang": "ko"}}\n')
    with pytest.raises(InputError, match=r"c.jsonl: line 1: 'lang' is both a field of the record and a key"):
        list(iter_records(clash))


def test_a_text_field_missing_from_the_first_record_names_the_option_and_the_fields(tmp_path):
    p = _write(tmp_path / "reviews.jsonl", '{"id": 1, "review": "좋아요", "stars": 5}\n{"id": 2, "review": "별로"}\n')
    for skip_bad in (False, True):  # skipping would skip every record: refused either way
        with pytest.raises(InputError) as err:
            list(iter_records(p, skip_bad=skip_bad))
        assert str(err.value) == (f"{p}: line 1: no text field 'text' (its fields: id, review, stars); name the "
                                  "field holding the text with --text-field")
    assert [r.text for r in iter_records(p, text_field="review")] == ["좋아요", "별로"]


@pytest.mark.parametrize("record, where", [('{"id": "a", "text": "가\\ud800"}', "field text holds a lone surrogate"),
                                           ('{"id": "\\udc80", "text": "가"}', "field id holds a"),
                                           ('{"text": "가", "metadata": {"k": "\\ud83d"}}', "metadata.k holds")])
def test_json_strings_that_are_not_text_are_bad_records(tmp_path, record, where):
    p = _write(tmp_path / "s.jsonl", '{"id": "ok", "text": "좋다"}\n' + record + "\n")
    with pytest.raises(InputError, match=rf"s.jsonl: line 2: {where}.*--skip-bad"):
        list(iter_records(p))
    stats = CorpusStats()
    assert [r.id for r in iter_records(p, skip_bad=True, stats=stats)] == ["ok"] and stats.bad == 1


def test_json_arrays_of_objects_or_strings(tmp_path):
    p = _write(tmp_path / "d.json", json.dumps([{"id": "x", "text": "가", "src": "web"}, "나", 3], ensure_ascii=False))
    stats = CorpusStats()
    recs = list(iter_records(p, skip_bad=True, stats=stats))
    assert [(r.id, r.text, r.metadata, r.line) for r in recs] == [("x", "가", {"src": "web"}, 1), ("2", "나", {}, 2)]
    assert stats.bad_locations == [f"{p}: item 3"]
    squad = _write(tmp_path / "squad.json", '{"version": "1", "data": []}')
    with pytest.raises(InputError, match=r"must hold one array of records .* not a JSON dict; .*\.jsonl"):
        list(iter_records(squad))


def test_folders_and_patterns_read_each_file_in_its_format(tmp_path):
    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    _write(d / "a.txt", "첫째\n둘째\n")
    _write(d / "sub" / "b.jsonl", '{"text": "셋째"}\n{"id": "own", "text": "넷째"}\n')
    _write(d / "notes.md", "읽지 않음\n")
    _write(d / ".hidden.txt", "숨김\n")
    assert [(r.id, r.text) for r in iter_records(d)] == [
        ("a.txt:1", "첫째"), ("a.txt:2", "둘째"), ("sub/b.jsonl:1", "셋째"), ("own", "넷째")]
    assert detect_format(d) == "mixed" and detect_format(f"{d}/**/*.jsonl") == "jsonl"
    assert [r.text for r in iter_records(f"{d}/**/*.jsonl")] == ["셋째", "넷째"]
    with pytest.raises(InputError, match=r"no file matches this pattern"):
        list(iter_records(f"{d}/*.csv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"a folder with no file koembed reads"):
        list(iter_records(tmp_path / "empty"))


def test_a_txt_that_is_a_table_is_refused_with_the_tsv_hint(tmp_path):
    nsmc = _write(tmp_path / "ratings_test.txt", "id\tdocument\tlabel\n6270596\t굳 ㅋ\t1\n9274899\t별로\t0\n")
    with pytest.raises(InputError) as err:
        list(iter_records(nsmc))
    assert "ratings_test.txt: each of its first 3 lines holds 2 tab(s)" in str(err.value)
    assert "(first line: id, document, label)" in str(err.value) and "--format tsv --text-field" in str(err.value)
    assert [(r.id, r.text) for r in iter_records(nsmc, fmt="tsv", text_field="document")] == [
        ("6270596", "굳 ㅋ"), ("9274899", "별로")]
    assert len(list(iter_records(nsmc, fmt="txt"))) == 3  # asked for: whole lines
    # Lines with tabs in varying numbers are text that happens to hold tabs.
    assert len(list(iter_records(_write(tmp_path / "t.txt", "가\t나\n다\n라\t마\t바\n")))) == 3
