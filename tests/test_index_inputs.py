"""``koembed index`` reads inputs as meant (issue 26): a tab table named .txt, folders, JSON arrays, JSONL fields."""

from __future__ import annotations

import json

from koembed.cli import main
from koembed.index import Index


def _one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_the_nsmc_test_file_is_refused_as_text_then_indexed_as_a_table(data_dir, tmp_path, tiny_st_dir, capsys):
    nsmc = data_dir / "nsmc" / "ratings_test.txt"
    assert main(["index", str(nsmc), "-o", str(tmp_path / "ix"), "--model", str(tiny_st_dir), "-q"]) == 2
    line = _one_error(capsys.readouterr().err)
    assert "looks like a table" in line and "(first line: id, document, label)" in line and "--format tsv" in line
    assert not (tmp_path / "ix").exists()


def test_a_tab_table_folder_and_json_array_are_indexed_by_their_fields(tmp_path, tiny_st_dir, capsys):
    table = tmp_path / "reviews.txt"
    table.write_text("id\tdocument\tlabel\n10\t배송이 빨라요\t1\n11\t별로예요\t0\n", encoding="utf-8")
    ix = tmp_path / "ix"
    assert main(["index", str(table), "-o", str(ix), "--model", str(tiny_st_dir), "--format", "tsv",
                 "--text-field", "document", "-q"]) == 0, capsys.readouterr().err
    with Index.open(ix) as index:
        assert index.count == 2 and index.get("10")["text"] == "배송이 빨라요"
        assert index.get("11")["metadata"] == {"label": "0"}

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps([{"text": "서울 날씨", "src": "web"}, "부산 바다"], ensure_ascii=False),
                                   encoding="utf-8")
    (folder / "b.jsonl").write_text(json.dumps({"id": "b1", "text": "제주 감귤", "rating": 5}, ensure_ascii=False)
                                    + "\n", encoding="utf-8")
    ix2 = tmp_path / "ix2"
    assert main(["index", str(folder), "-o", str(ix2), "--model", str(tiny_st_dir), "-q"]) == 0, \
        capsys.readouterr().err
    with Index.open(ix2) as index:
        assert index.count == 3
        assert index.get("a.json:1")["metadata"] == {"src": "web"} and index.get("a.json:2")["text"] == "부산 바다"
        assert index.get("b1")["metadata"] == {"rating": 5}  # the other top-level field kept


def test_a_jsonl_without_the_text_field_names_the_option(tmp_path, tiny_st_dir, capsys):
    docs = tmp_path / "reviews.jsonl"
    docs.write_text('{"id": 1, "review": "좋아요"}\n', encoding="utf-8")
    for extra in ([], ["--skip-bad"]):
        assert main(["index", str(docs), "-o", str(tmp_path / "ix"), "--model", str(tiny_st_dir), "-q", *extra]) == 2
        line = _one_error(capsys.readouterr().err)
        assert "no text field 'text' (its fields: id, review)" in line and "--text-field" in line
