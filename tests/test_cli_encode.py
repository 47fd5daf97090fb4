"""``koembed encode``: every output format, stdin/stdout, every bad input, atomic writes, workers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from koembed.cli import main

REPO = Path(__file__).resolve().parent.parent
KOREAN = [
    line for line in (REPO / "examples" / "texts.txt").read_text(encoding="utf-8").splitlines() if line.strip()
][:30]
# Rows must align with lines: blank and whitespace-only lines stay in, at the start, middle and end.
LINES = ["", *KOREAN[:12], "   ", *KOREAN[12:], "\t", "마지막 줄"]


@pytest.fixture()
def korean_file(tmp_path: Path) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def expected(tiny_encoder) -> np.ndarray:
    return tiny_encoder.encode(LINES)


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    """Files in ``folder`` other than ``keep``: outputs or temp files that a failed run must not leave."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


# ---- formats --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npy", ".jsonl", ".parquet"])
def test_every_format_round_trips(suffix, korean_file, tmp_path, tiny_st_dir, tiny_encoder, expected, capsys):
    out = tmp_path / f"vectors{suffix}"
    # A small chunk size: several chunks, .parquet row groups, and a .npy header rewritten at the end.
    rc = run_cli("encode", korean_file, "-o", out, "--model", tiny_st_dir, "--chunk-size", "7", "--batch-size", "4")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out == ""  # data never goes to stdout unless OUT is '-'
    assert captured.err.strip().splitlines()[-1].startswith(f"encoded {len(LINES)} texts (dim 64)")
    assert "3 empty" in captured.err and "0 truncated" in captured.err

    if suffix == ".npy":
        got = np.load(out)
        mapped = np.load(out, mmap_mode="r")
        np.testing.assert_array_equal(np.asarray(mapped), got)
    elif suffix == ".jsonl":
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [r["line"] for r in rows] == list(range(1, len(LINES) + 1))
        assert [r["text"] for r in rows] == LINES
        got = np.array([r["embedding"] for r in rows], dtype=np.float32)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        assert table.schema.field("embedding").type == pa.list_(pa.float32(), 64)
        assert table.schema.field("line").type == pa.int64()
        assert pq.ParquetFile(out).metadata.num_row_groups == -(-len(LINES) // 7)
        assert table["line"].to_pylist() == list(range(1, len(LINES) + 1))
        assert table["text"].to_pylist() == LINES
        got = np.stack(table["embedding"].to_numpy(zero_copy_only=False)).astype(np.float32)

    assert got.shape == (len(LINES), 64) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)

    meta = json.loads(Path(f"{out}.json").read_text(encoding="utf-8"))
    assert meta["report"]["fingerprint"] == tiny_encoder.fingerprint
    assert meta["report"]["texts"] == len(LINES) and meta["report"]["empty"] == 3
    assert meta["config"]["chunk_size"] == 7 and meta["config"]["model"] == str(tiny_st_dir)
    assert leftovers(tmp_path, {korean_file.name, out.name, f"{out.name}.json"}) == []


def test_default_output_is_input_dot_npy(korean_file, tiny_st_dir, expected, capsys):
    assert run_cli("encode", korean_file, "--model", tiny_st_dir, "--quiet") == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # --quiet: no bar, no summary
    np.testing.assert_allclose(np.load(f"{korean_file}.npy"), expected, atol=1e-5)


def test_stdin_to_npy(tmp_path, tiny_st_dir, expected, monkeypatch, capsys):
    data = ("\n".join(LINES) + "\n").encode("utf-8")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    out = tmp_path / "from-stdin.npy"
    assert run_cli("encode", "-", "-o", out, "--model", tiny_st_dir, "--chunk-size", "5") == 0
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)


def test_stdout_gets_jsonl_and_only_jsonl(korean_file, tiny_st_dir, expected, capsys):
    assert run_cli("encode", korean_file, "-o", "-", "--model", tiny_st_dir) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["text"] for r in rows] == LINES
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows], dtype=np.float32), expected, atol=1e-5)
    assert "encoded" in captured.err  # the summary goes to stderr


def test_no_normalize_and_max_seq_length(korean_file, tmp_path, tiny_st_dir, tiny_bert_dir, capsys):
    out = tmp_path / "raw.npy"
    args = ("encode", korean_file, "-o", out, "--model", tiny_bert_dir, "--no-normalize", "--max-seq-length", "8")
    assert run_cli(*args) == 0
    err = capsys.readouterr().err
    meta = json.loads(Path(f"{out}.json").read_text(encoding="utf-8"))["report"]
    assert meta["truncated"] > 0 and f"{meta['truncated']} truncated to 8 tokens" in err
    assert not np.allclose(np.linalg.norm(np.load(out), axis=1), 1.0, atol=1e-3)


def test_empty_and_whitespace_lines_are_kept_and_counted(tmp_path, tiny_st_dir, capsys):
    src = tmp_path / "blank.txt"
    src.write_bytes("가방\n\n   \r\n나무\n\t\n".encode())
    out = tmp_path / "blank.jsonl"
    assert run_cli("encode", src, "-o", out, "--model", tiny_st_dir) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["가방", "", "   ", "나무", "\t"]
    assert "5 texts" in capsys.readouterr().err
    assert json.loads(Path(f"{out}.json").read_text(encoding="utf-8"))["report"]["empty"] == 3


@pytest.mark.parametrize("suffix", [".npy", ".jsonl", ".parquet"])
def test_empty_file_gives_zero_rows(suffix, tmp_path, tiny_st_dir):
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    out = tmp_path / f"empty{suffix}"
    assert run_cli("encode", src, "-o", out, "--model", tiny_st_dir, "-q") == 0
    if suffix == ".npy":
        assert np.load(out).shape == (0, 64)
    elif suffix == ".jsonl":
        assert out.read_bytes() == b""
    else:
        import pyarrow.parquet as pq

        assert pq.read_table(out).num_rows == 0


def test_bom_is_ignored(tmp_path, tiny_st_dir, tiny_encoder):
    src = tmp_path / "bom.txt"
    src.write_bytes(b"\xef\xbb\xbf" + "\n".join(KOREAN[:3]).encode("utf-8"))
    out = tmp_path / "bom.jsonl"
    assert run_cli("encode", src, "-o", out, "--model", tiny_st_dir, "-q") == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["text"] == KOREAN[0]
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), tiny_encoder.encode(KOREAN[:3]), atol=1e-5)


def test_real_korsts_sentences(data_dir, tmp_path, tiny_st_dir, tiny_encoder):
    from koembed.korean_data import read_korsts

    rows = read_korsts(data_dir / "korsts" / "sts-test.tsv")[:150]
    sentences = [s for row in rows for s in (row["sentence1"], row["sentence2"])]
    src = tmp_path / "korsts.txt"
    src.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    out = tmp_path / "korsts.npy"
    assert run_cli("encode", src, "-o", out, "--model", tiny_st_dir, "-q") == 0
    got = np.load(out)
    assert got.shape == (300, 64)
    np.testing.assert_allclose(got, tiny_encoder.encode(sentences), atol=1e-5)


def test_two_workers_equal_one_process(korean_file, tmp_path, tiny_st_dir, capsys):
    one, two = tmp_path / "one.npy", tmp_path / "two.npy"
    assert run_cli("encode", korean_file, "-o", one, "--model", tiny_st_dir, "--chunk-size", "4", "-q") == 0
    assert run_cli("encode", korean_file, "-o", two, "--model", tiny_st_dir, "--chunk-size", "4", "--workers", "2") == 0
    np.testing.assert_allclose(np.load(two), np.load(one), atol=1e-6)
    meta = json.loads(Path(f"{two}.json").read_text(encoding="utf-8"))["report"]
    assert meta["workers"] == 2 and meta["texts"] == len(LINES) and meta["empty"] == 3


def test_npy_header_is_fixed_size_and_holds_any_shape(tmp_path):
    from koembed.writers import NpyWriter, open_writer

    rng = np.random.default_rng(0)
    parts = [rng.standard_normal((n, 3)).astype(np.float32) for n in (4, 0, 7)]
    out = tmp_path / "parts.npy"
    with open_writer(out, 3) as writer:
        for i, part in enumerate(parts):
            writer.write(1 + 4 * i, ["x"] * len(part), part)
    np.testing.assert_array_equal(np.load(out, mmap_mode="r"), np.concatenate(parts))
    writer = NpyWriter(tmp_path / "big.npy", 4096)
    for rows in (0, 10**15):
        header = io.BytesIO(writer._header(rows))
        assert np.lib.format.read_magic(header) == (1, 0)
        assert np.lib.format.read_array_header_1_0(header) == ((rows, 4096), False, np.dtype("<f4"))
        assert header.tell() == NpyWriter.HEADER_BYTES
    writer.close()


# ---- bad input: one line, non-zero exit, nothing left behind ----------------------------------------------


def test_non_utf8_names_the_first_bad_line_and_replace_carries_on(tmp_path, tiny_st_dir, capsys):
    src = tmp_path / "latin1.txt"
    good = [f"{i}번째 문장입니다." for i in range(1, 40)]
    # Line 30 is bad: with 8-line chunks, three chunks are already written when it is found.
    bad = b"caf\xe9 \xff"
    src.write_bytes(b"\n".join([*(s.encode() for s in good[:29]), bad, *(s.encode() for s in good[29:])]))
    out = tmp_path / "out.npy"
    out.write_bytes(b"previous result")  # a failed run must leave an existing output untouched
    rc = run_cli("encode", src, "-o", out, "--model", tiny_st_dir, "--chunk-size", "8")
    assert rc != 0
    assert_one_line_error(capsys.readouterr().err, str(src), "line 30", "--errors replace")
    assert out.read_bytes() == b"previous result"
    assert leftovers(tmp_path, {src.name, out.name}) == []

    assert run_cli("encode", src, "-o", out, "--model", tiny_st_dir, "--chunk-size", "8", "--errors", "replace") == 0
    assert "1 with bad UTF-8 replaced" in capsys.readouterr().err
    assert np.load(out).shape == (40, 64)


def bad_cases(tmp_path: Path, tiny_st_dir: Path) -> dict[str, tuple[list[str], tuple[str, ...]]]:
    good = tmp_path / "good.txt"
    good.write_text("한 줄\n두 줄\n", encoding="utf-8")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "lines.jsonl").write_text("이름만 jsonl\n", encoding="utf-8")
    model = str(tiny_st_dir)
    return {
        "missing file": (["nope.txt", "-o", "x.npy", "--model", model], ("nope.txt", "no such file")),
        "directory": (["a-folder", "-o", "x.npy", "--model", model], ("a-folder", "a folder with no file")),
        "unknown suffix": ([str(good), "-o", "x.csv", "--model", model], ("x.csv", ".npy, .jsonl, .parquet")),
        "no suffix": ([str(good), "-o", "vectors", "--model", model], ("vectors", "no suffix")),
        "output folder missing": ([str(good), "-o", "no/such/dir/x.npy", "--model", model], ("does not exist",)),
        "output is a directory": ([str(good), "-o", "a-folder", "--model", model], ("a-folder", "is a directory")),
        "output is the input": (["lines.jsonl", "-o", "lines.jsonl", "--model", model], ("overwrite the input",)),
        "unknown local model": ([str(good), "-o", "x.npy", "--model", "./no-model"], ("no-model", "tried")),
        "unknown hub model": ([str(good), "-o", "x.npy", "--model", "koembed-tests/none"], ("koembed-tests/none",)),
        "stdin without -o": (["-", "--model", model], ("-o",)),
        "unknown backend": ([str(good), "-o", "x.npy", "--model", model, "--backend", "tpu"], ("tpu", "torch")),
        "bad errors mode": ([str(good), "-o", "x.npy", "--model", model, "--errors", "ignore"], ("ignore",)),
    }


CASES = [
    "missing file", "directory", "unknown suffix", "no suffix", "output folder missing", "output is a directory",
    "output is the input", "unknown local model", "unknown hub model", "stdin without -o", "unknown backend",
    "bad errors mode",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_leaves_nothing(case, tmp_path, tiny_st_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args, needles = bad_cases(tmp_path, tiny_st_dir)[case]
    before = set(os.listdir(tmp_path))
    rc = run_cli("encode", *args)
    captured = capsys.readouterr()
    assert rc != 0
    assert captured.out == ""
    assert_one_line_error(captured.err, *needles)
    assert set(os.listdir(tmp_path)) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_unwritable_output_folder(tmp_path, korean_file, tiny_st_dir, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert run_cli("encode", korean_file, "-o", locked / "x.npy", "--model", tiny_st_dir) != 0
        assert_one_line_error(capsys.readouterr().err, "not writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_interrupt_leaves_no_output(korean_file, tmp_path, tiny_encoder, monkeypatch):
    from koembed.file_encoding import encode_file

    calls = []
    real = tiny_encoder.encode_with_stats  # what encode_file calls per chunk

    def interrupted_on_second_chunk(texts, **kwargs):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(texts, **kwargs)

    monkeypatch.setattr(tiny_encoder, "encode_with_stats", interrupted_on_second_chunk)
    out = tmp_path / "partial.parquet"
    with pytest.raises(KeyboardInterrupt):
        encode_file(korean_file, out, model=tiny_encoder, chunk_size=5)
    assert len(calls) == 2
    assert leftovers(tmp_path, {korean_file.name}) == []


def test_library_call_returns_a_report(korean_file, tmp_path, tiny_encoder, expected):
    from koembed import encode_file

    report = encode_file(korean_file, tmp_path / "lib.npy", model=tiny_encoder, chunk_size=10)
    assert (report.texts, report.dim, report.empty, report.truncated, report.replaced) == (len(LINES), 64, 3, 0, 0)
    assert report.fingerprint == tiny_encoder.fingerprint and report.texts_per_s > 0
    assert report.summary().count("\n") == 0 and "lib.npy" in report.summary()
    np.testing.assert_allclose(np.load(tmp_path / "lib.npy"), expected, atol=1e-5)


# ---- the real console script -----------------------------------------------------------------------------


def koembed_cmd() -> list[str]:
    script = Path(sys.executable).parent / "koembed"
    return [str(script)] if script.exists() else [sys.executable, "-m", "koembed"]


def test_help_lists_the_commands(capsys):
    assert run_cli("--help") == 0
    out = capsys.readouterr().out
    assert "encode" in out and "version" in out
    proc = subprocess.run([*koembed_cmd(), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "encode" in proc.stdout


def test_console_script_error_has_no_traceback(tmp_path):
    src = tmp_path / "bad.txt"
    src.write_bytes("첫 줄\n".encode() + b"\xed\xa0\x80\n")  # an encoded surrogate is not UTF-8
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [*koembed_cmd(), "encode", str(src), "-o", str(tmp_path / "x.npy"), "--model", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode != 0 and proc.stdout == ""
    assert_one_line_error(proc.stderr, "line 2")  # input is checked before the model is loaded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]


def test_python_dash_m_encodes_korean(tmp_path, tiny_st_dir, tiny_encoder):
    src = tmp_path / "ko.txt"
    src.write_text("\n".join(KOREAN[:10]) + "\n", encoding="utf-8")
    out = tmp_path / "ko.npy"
    proc = subprocess.run(
        [sys.executable, "-m", "koembed", "encode", str(src), "-o", str(out), "--model", str(tiny_st_dir)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and "encoded 10 texts" in proc.stderr and "Traceback" not in proc.stderr
    np.testing.assert_allclose(np.load(out), tiny_encoder.encode(KOREAN[:10]), atol=1e-5)


def test_usage_errors_print_usage_not_a_traceback(capsys) -> None:
    from distill.cli import main as distill_main

    assert main(["index", "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert "No such option" in err and "Traceback" not in err
    assert distill_main(["mlm", "--config", "teacher.json"]) == 2
    err = capsys.readouterr().err
    assert "Missing" in err and "--corpus" in err and "Traceback" not in err


# ---- records: encode reads what index reads (issue 26) ---------------------------------------------------


def _reviews(tmp_path: Path) -> tuple[Path, list[dict]]:
    rows = [{"id": f"r{i}", "review": t, "stars": i % 5} for i, t in enumerate(KOREAN[:9])]
    rows.insert(4, {"id": "blank", "review": "  ", "stars": 0})
    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path, [r for r in rows if r["review"].strip()]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".npy"])
def test_jsonl_records_are_encoded_by_their_text_field(suffix, tmp_path, tiny_st_dir, tiny_encoder, capsys):
    path, kept = _reviews(tmp_path)
    out = tmp_path / f"v{suffix}"
    rc = run_cli("encode", path, "-o", out, "--model", tiny_st_dir, "--text-field", "review", "--chunk-size", "3")
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"encoded {len(kept)} texts" in err and "1 empty records skipped" in err
    want = tiny_encoder.encode([r["review"] for r in kept])
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [(r["id"], r["text"], r["metadata"]) for r in rows] == [
            (k["id"], k["review"], {"stars": k["stars"]}) for k in kept]
        assert [r["line"] for r in rows] == [1, 2, 3, 4, 6, 7, 8, 9, 10]  # line 5 is the blank review
        got = np.array([r["embedding"] for r in rows], dtype=np.float32)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        assert table["id"].to_pylist() == [k["id"] for k in kept]
        assert [json.loads(m) for m in table["metadata"].to_pylist()] == [{"stars": k["stars"]} for k in kept]
        got = np.stack(table["embedding"].to_numpy(zero_copy_only=False)).astype(np.float32)
    else:
        got = np.load(out)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_missing_text_field_names_the_option_and_the_fields(tmp_path, tiny_st_dir, capsys):
    path, _ = _reviews(tmp_path)
    rc = run_cli("encode", path, "-o", tmp_path / "v.npy", "--model", tiny_st_dir)
    assert rc == 2
    assert_one_line_error(capsys.readouterr().err, "line 1: no text field 'text' (its fields: id, review, stars)",
                          "--text-field")
    assert leftovers(tmp_path, {path.name}) == []


def test_a_tab_table_in_a_txt_is_refused_then_read_as_tsv(tmp_path, tiny_st_dir, tiny_encoder, capsys):
    nsmc = tmp_path / "ratings_test.txt"
    nsmc.write_text("id\tdocument\tlabel\n" + "".join(f"{i}\t{t}\t{i % 2}\n" for i, t in enumerate(KOREAN[:6])),
                    encoding="utf-8")
    assert run_cli("encode", nsmc, "-o", tmp_path / "v.npy", "--model", tiny_st_dir) == 2
    assert_one_line_error(capsys.readouterr().err, "looks like a table", "--format tsv --text-field")
    assert not (tmp_path / "v.npy").exists()
    # stdin is checked the same way
    proc = subprocess.run([sys.executable, "-m", "koembed", "encode", "-", "-o", str(tmp_path / "s.npy"), "--model",
                           str(tiny_st_dir)], input=nsmc.read_text(encoding="utf-8"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "<stdin>: each of its first 7 lines holds 2 tab(s)" in proc.stderr
    rc = run_cli("encode", nsmc, "-o", tmp_path / "v.jsonl", "--model", tiny_st_dir, "--format", "tsv",
                 "--text-field", "document")
    assert rc == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["text"], r["metadata"]) for r in rows] == [
        (str(i), t, {"label": str(i % 2)}) for i, t in enumerate(KOREAN[:6])]
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows], dtype=np.float32),
                               tiny_encoder.encode(KOREAN[:6]), atol=1e-5)
    assert run_cli("encode", nsmc, "-o", tmp_path / "w.npy", "--model", tiny_st_dir, "--format", "txt") == 0
    assert np.load(tmp_path / "w.npy").shape == (7, 64)  # asked for: each whole line


def test_a_folder_of_csv_and_json_files(tmp_path, tiny_st_dir, capsys):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.csv").write_text("text,topic\n" + "".join(f"{t},x\n" for t in KOREAN[:3]), encoding="utf-8")
    (d / "b.json").write_text(json.dumps(KOREAN[3:5], ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "v.jsonl"
    assert run_cli("encode", d, "-o", out, "--model", tiny_st_dir) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a.csv:1", "a.csv:2", "a.csv:3", "b.json:1", "b.json:2"]
    assert [r["text"] for r in rows] == KOREAN[:5]
