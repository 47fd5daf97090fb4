"""The CLI: koembed index / search / info / remove / compact, their outputs, refusals and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from koembed.cli import main
from koembed.cli.index import parse_filters
from koembed.index import Index

REPO = Path(__file__).resolve().parent.parent
DOCS = [
    {"id": "w1", "text": "오늘 서울은 맑고 따뜻합니다", "metadata": {"topic": "날씨", "year": 2024}},
    {"id": "w2", "text": "내일은 전국에 비가 옵니다", "metadata": {"topic": "날씨", "year": 2023}},
    {"id": "e1", "text": "주식 시장이 크게 올랐다", "metadata": {"topic": "경제", "year": 2024}},
    {"id": "s1", "text": "축구 대표팀이 결승에 진출했다", "metadata": {"topic": "스포츠", "year": 2024}},
]


def _jsonl(path: Path, rows: list[dict], extra: str = "") -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n" + extra, encoding="utf-8")
    return path


@pytest.fixture
def built(tmp_path, tiny_st_dir):
    out = tmp_path / "ix"
    assert main(["index", str(_jsonl(tmp_path / "docs.jsonl", DOCS)), "-o", str(out), "--model", str(tiny_st_dir),
                 "--quiet"]) == 0
    return out


def test_index_search_info_remove_round_trip(tmp_path, built, tiny_st_dir, capsys):
    capsys.readouterr()
    assert main(["search", str(built), DOCS[2]["text"], "-k", "2", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    first = json.loads(out[0])
    assert first["query"] == DOCS[2]["text"] and first["hits"][0]["id"] == "e1"
    assert first["hits"][0]["metadata"] == {"topic": "경제", "year": 2024}

    queries = tmp_path / "q.txt"
    queries.write_text("서울 날씨\n\n축구 결승\n", encoding="utf-8")
    assert main(["search", str(built), "--queries", str(queries), "--json", "--filter", "topic=날씨",
                 "--filter", "year=2024"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["query"] for x in lines] == ["서울 날씨", "축구 결승"]  # the empty line is skipped
    assert all([h["id"] for h in x["hits"]] == ["w1"] for x in lines)

    assert main(["search", str(built), "비가 옵니다", "-k", "1"]) == 0  # rich table on stdout
    table = capsys.readouterr().out
    assert "score" in table and "w2" in table

    assert main(["info", str(built), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["count"] == 4 and info["spec"] == "Flat" and info["model"]["name"] == str(tiny_st_dir)
    assert info["model"]["fingerprint"] and info["dim"] == 64
    roles = info["roles"]  # every file on disk is named with what it is
    assert set(roles) == set(info["sizes"]) and roles["docs.sqlite"] == "documents (SQLite)"
    current = {n for n, r in roles.items() if r == f"generation {info['generation']}"}
    assert sum(n.endswith(".faiss") for n in current) == 1
    assert all("older generation" in r for n, r in roles.items() if n.endswith(".faiss") and n not in current)
    assert main(["info", str(built)]) == 0
    out = capsys.readouterr().out
    assert "documents          4" in out and f"generation {info['generation']}" in out

    assert main(["remove", str(built), "w2", "nope"]) == 0
    assert "removed 1 of 2 ids; 3 documents left" in capsys.readouterr().err
    assert main(["search", str(built), "비가 옵니다", "-k", "5", "--json"]) == 0
    assert "w2" not in {h["id"] for h in json.loads(capsys.readouterr().out)["hits"]}


def test_rerun_resumes_and_upserts(tmp_path, built, tiny_st_dir, capsys):
    changed = [dict(DOCS[0], text="오늘 서울은 흐리고 춥습니다"), *DOCS[1:], {"id": "n1", "text": "새 문서입니다"}]
    src = _jsonl(tmp_path / "docs2.jsonl", changed)
    capsys.readouterr()
    assert main(["index", str(src), "-o", str(built)]) == 0  # the model comes from the manifest
    err = capsys.readouterr().err
    assert "5 documents" in err and "added 1, replaced 1, unchanged 3" in err
    with Index.open(built) as index:
        assert index.get("w1")["text"] == "오늘 서울은 흐리고 춥습니다" and index.count == 5


def test_hnsw_remove_then_compact(tmp_path, tiny_st_dir, capsys):
    src = _jsonl(tmp_path / "d.jsonl", DOCS)
    out = tmp_path / "hnsw"
    assert main(["index", str(src), "-o", str(out), "--model", str(tiny_st_dir), "--index-type", "hnsw", "-q"]) == 0
    assert main(["remove", str(out), "e1", "-q"]) == 0
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["count"], info["ntotal"], info["tombstones"]) == (3, 4, 1)
    assert main(["compact", str(out)]) == 0
    assert "1 removed vectors dropped" in capsys.readouterr().err
    with Index.open(out) as index:
        assert index.faiss.ntotal == 3 and len(index.tombstones()) == 0


def test_cli_refusals_are_one_line_and_change_nothing(tmp_path, built, tiny_st_dir, tiny_bert_dir, capsys):
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in built.iterdir() if p.is_file() and p.name != ".lock"}
    bad = _jsonl(tmp_path / "bad.jsonl", DOCS, extra='{"id": "x", "text": \n')
    assert main(["index", str(bad), "-o", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.jsonl: line 5: malformed JSON" in err and err.count("\n") == 1
    assert not (tmp_path / "new").exists()
    assert main(["index", str(bad), "-o", str(tmp_path / "new"), "--model", str(tiny_st_dir), "--skip-bad"]) == 0
    assert "1 bad skipped (first: " in capsys.readouterr().err

    # another model (same dimension, different fingerprint) may not write into the index ...
    assert main(["index", str(_jsonl(tmp_path / "d.jsonl", DOCS)), "-o", str(built), "--model",
                 str(tiny_bert_dir)]) == 4
    assert "differs from the index's model" in capsys.readouterr().err
    # ... nor search it, unless explicitly allowed
    assert main(["search", str(built), "서울", "--model", str(tiny_bert_dir)]) == 4
    assert "--allow-model-mismatch" in capsys.readouterr().err
    assert main(["search", str(built), "서울", "--model", str(tiny_bert_dir), "--allow-model-mismatch", "--json"]) == 0
    capsys.readouterr()
    assert main(["search", str(built), "  "]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["search", str(built)]) == 2
    assert "no queries given" in capsys.readouterr().err
    assert main(["search", str(tmp_path), "서울"]) == 4
    assert "not a koembed index (no manifest.json)" in capsys.readouterr().err
    assert main(["search", str(built), "서울", "--filter", "novalue"]) == 2
    after = {p.name: p.read_bytes() for p in built.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before


def test_parse_filters():
    assert parse_filters(["label=1", "title=서울", "label=2"]) == {"label": ["1", "2"], "title": ["서울"]}
    assert parse_filters(None) is None


def test_tsv_and_txt_inputs(tmp_path, tiny_st_dir, capsys):
    tsv = tmp_path / "reviews.tsv"
    tsv.write_text('id\tdocument\tlabel\n10\t"재밌다 정말\t1\n11\t별로였다\t0\n', encoding="utf-8")
    out = tmp_path / "tsv-ix"
    assert main(["index", str(tsv), "-o", str(out), "--model", str(tiny_st_dir), "--text-field", "document",
                 "-q"]) == 0
    assert main(["search", str(out), "별로였다", "-k", "1", "--json", "--filter", "label=0", "--mode", "dense"]) == 0
    hit = json.loads(capsys.readouterr().out)["hits"][0]
    assert hit == {"id": "11", "score": pytest.approx(1.0, abs=1e-4), "text": "별로였다", "metadata": {"label": "0"},
                   "scores": {"dense": pytest.approx(1.0, abs=1e-4), "lexical": None, "fused": None}}
    txt = tmp_path / "lines.txt"
    txt.write_text("첫째 줄\n\n셋째 줄\n", encoding="utf-8")
    assert main(["index", str(txt), "-o", str(tmp_path / "txt-ix"), "--model", str(tiny_st_dir)]) == 0
    err = capsys.readouterr().err
    assert "read 2" in err and "empty 1" in err
    with Index.open(tmp_path / "txt-ix") as index:
        assert index.get("3")["text"] == "셋째 줄"


@pytest.mark.slow
def test_search_with_the_onnx_backend_never_imports_torch(tmp_path, built, tiny_st_dir):
    pytest.importorskip("onnxruntime")  # the onnx backend is always registered; only its runtime may be missing
    from koembed.encoder import KoMiniLMEncoder

    cache = tmp_path / "cache"
    env = dict(os.environ, KOEMBED_CACHE=str(cache), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    os.environ["KOEMBED_CACHE"] = str(cache)
    try:
        KoMiniLMEncoder(str(tiny_st_dir), backend="onnx").encode(["준비"])  # export once (this uses torch)
    finally:
        os.environ.pop("KOEMBED_CACHE")
    code = ("import sys; from koembed.cli import main; "
            f"rc = main(['search', {str(built)!r}, '주식 시장', '-k', '1', '--json', '--backend', 'onnx']); "
            "print('TORCH' if 'torch' in sys.modules or 'sentence_transformers' in sys.modules else 'NO-TORCH'); "
            "sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == "NO-TORCH"
    assert json.loads(lines[0])["hits"][0]["id"] == "e1"


def test_an_unknown_backend_is_bad_usage_whichever_command_names_it(tmp_path, capsys):
    docs = tmp_path / "docs.txt"
    docs.write_text("한 줄\n", encoding="utf-8")
    codes = {
        "index": main(["index", str(docs), "-o", str(tmp_path / "ix"), "--backend", "onnxx"]),
        "encode": main(["encode", str(docs), "-o", str(tmp_path / "v.npy"), "--backend", "onnxx"]),
    }
    assert codes == {"index": 2, "encode": 2}  # the index path said 1 (any other error) before
    assert capsys.readouterr().err.count("unknown backend 'onnxx'") == 2


def test_building_from_vectors_into_an_existing_index_names_the_index(tmp_path):
    from koembed.errors import IndexRefusedError
    from koembed.scale.index_build import VectorIndexConfig, build_index_from_vectors

    Index.create(tmp_path / "ix", 4, index_type="flat", analyser=None).close()
    with pytest.raises(IndexRefusedError) as refused:
        build_index_from_vectors(VectorIndexConfig(vectors=[str(tmp_path / "vectors")], output=str(tmp_path / "ix")))
    message = str(refused.value)
    assert "{out}" not in message and f"koembed index FILE -o {tmp_path / 'ix'}" in message
    assert "--" not in message  # a library message names no CLI flag
