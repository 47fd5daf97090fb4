"""KoMiniLMEncoder on the tiny Korean model: both model kinds, shapes, order, truncation, NFC, fingerprint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from koembed import KoMiniLMEncoder
from koembed.errors import KoembedError, ModelNotFoundError

REPO = Path(__file__).resolve().parent.parent
TEXTS = [
    "오늘 서울은 하루 종일 맑겠습니다.",
    "고양이가 창가에서 낮잠을 잔다.",
    "주식 시장이 큰 폭으로 하락했다.",
    "이 영화는 배우들의 연기가 정말 훌륭했고 음악도 장면마다 잘 어울려서 두 시간이 금방 지나갔다.",
    "밥",
    "한국어 문장 임베딩 모델을 작은 크기로 증류하면 휴대폰에서도 검색을 돌릴 수 있다.",
]


@pytest.fixture(scope="module")
def bert_encoder(tiny_bert_dir: Path) -> KoMiniLMEncoder:
    return KoMiniLMEncoder(str(tiny_bert_dir))


def test_bare_bert_and_sentence_transformers_folder_give_the_same_vectors(bert_encoder, tiny_encoder):
    assert bert_encoder.source.kind == "bert"
    assert tiny_encoder.source.kind == "sentence-transformers"
    np.testing.assert_allclose(bert_encoder.encode(TEXTS), tiny_encoder.encode(TEXTS), atol=1e-6)


def test_shape_dtype_and_unit_norm(tiny_encoder, bert_encoder):
    for enc in (tiny_encoder, bert_encoder):  # the bare BERT has no Normalize module: the encoder normalises
        out = enc.encode(TEXTS)
        assert out.shape == (len(TEXTS), enc.dim) and enc.dim == 64
        assert out.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_no_normalize_keeps_raw_mean_pooled_norms(tiny_bert_dir):
    raw = KoMiniLMEncoder(str(tiny_bert_dir), normalize=False).encode(TEXTS)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)


def test_empty_input_gives_zero_rows(tiny_encoder):
    out = tiny_encoder.encode([])
    assert out.shape == (0, tiny_encoder.dim) and out.dtype == np.float32
    assert tiny_encoder.last_stats.texts == 0


def test_a_single_string_is_refused(tiny_encoder):
    with pytest.raises(TypeError):
        tiny_encoder.encode("한 문장")


def test_length_sorted_batches_restore_input_order(tiny_encoder):
    # batch_size=2 puts texts of different lengths into different padded batches.
    together = tiny_encoder.encode(TEXTS, batch_size=2)
    one_by_one = np.stack([tiny_encoder.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    # Distinct texts must give distinct rows, or the comparison above proves nothing.
    assert len({tuple(np.round(r, 4)) for r in together}) == len(TEXTS)


def test_truncation_is_counted(tiny_st_dir, tiny_bert_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    lengths = [len(ids) for ids in tok(TEXTS)["input_ids"]]
    limit = 8
    expected = sum(n > limit for n in lengths)
    assert 0 < expected < len(TEXTS)
    enc = KoMiniLMEncoder(str(tiny_st_dir), max_seq_length=limit)
    assert enc.max_seq_length == limit
    out = enc.encode(TEXTS)
    assert enc.last_stats.truncated == expected
    assert enc.last_stats.tokens == sum(min(n, limit) for n in lengths)
    # A long text and its own first tokens give the same vector once truncated.
    long_text = TEXTS[3]
    ids = tok(long_text, truncation=True, max_length=limit)["input_ids"]
    prefix = tok.decode(ids[1:-1])
    np.testing.assert_allclose(out[3], enc.encode([prefix])[0], atol=1e-5)


def test_default_length_truncates_nothing(tiny_encoder):
    tiny_encoder.encode(TEXTS)
    assert tiny_encoder.last_stats.truncated == 0
    assert tiny_encoder.last_stats.texts == len(TEXTS)


def test_nfd_input_equals_nfc_input(tiny_encoder):
    nfd = [unicodedata.normalize("NFD", t) for t in TEXTS]
    assert nfd != TEXTS
    np.testing.assert_array_equal(tiny_encoder.encode(nfd), tiny_encoder.encode(TEXTS))


def test_bom_and_zero_width_characters_are_ignored(tiny_encoder):
    dirty = ["\ufeff" + TEXTS[0], TEXTS[1].replace(" ", " \u200b", 1)]
    np.testing.assert_array_equal(tiny_encoder.encode(dirty), tiny_encoder.encode(TEXTS[:2]))


def test_empty_texts_are_counted(tiny_encoder):
    out = tiny_encoder.encode(["", "   ", TEXTS[0]])
    assert out.shape[0] == 3
    assert tiny_encoder.last_stats.empty == 2


def test_fingerprint_is_stable_across_processes(tiny_st_dir, tiny_encoder):
    code = "import sys; from koembed import KoMiniLMEncoder; print(KoMiniLMEncoder(sys.argv[1]).fingerprint)"
    out = subprocess.run(
        [sys.executable, "-c", code, str(tiny_st_dir)], capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == tiny_encoder.fingerprint
    assert re.fullmatch("[0-9a-f]{32}", tiny_encoder.fingerprint)


def test_fingerprint_follows_the_weights_not_the_folder(tiny_st_dir, tiny_encoder, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "copy"
    shutil.copytree(tiny_st_dir, copy)
    (copy / "README.md").write_text("a different model card\n", encoding="utf-8")
    assert KoMiniLMEncoder(str(copy)).fingerprint == tiny_encoder.fingerprint

    weights = next(copy.rglob("model.safetensors"))
    tensors = load_file(str(weights))
    name = next(k for k, v in tensors.items() if v.dtype == torch.float32 and v.ndim == 2)
    tensors[name] = tensors[name].clone()
    tensors[name][0, 0] += 1e-3
    save_file(tensors, str(weights), metadata={"format": "pt"})
    changed = KoMiniLMEncoder(str(copy))
    assert changed.fingerprint != tiny_encoder.fingerprint


def test_fingerprint_depends_on_normalisation(tiny_st_dir, tiny_encoder):
    assert KoMiniLMEncoder(str(tiny_st_dir), normalize=False).fingerprint != tiny_encoder.fingerprint


def test_missing_local_model_is_a_one_line_error_naming_what_was_tried(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError) as info:
        KoMiniLMEncoder(str(missing))
    msg = str(info.value)
    assert "\n" not in msg and str(missing) in msg and "tried" in msg
    assert isinstance(info.value, KoembedError)


def test_unknown_hub_id_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as info:
        KoMiniLMEncoder("koembed-tests/does-not-exist")
    msg = str(info.value)
    assert "\n" not in msg and "koembed-tests/does-not-exist" in msg and "Hub" in msg


def test_folder_without_a_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model", encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match="neither modules.json"):
        KoMiniLMEncoder(str(tmp_path))


def test_a_huge_text_is_cut_before_tokenising_and_counted(tiny_encoder):
    import time

    short = "서울 날씨가 맑고 따뜻합니다"
    huge = (short + " ") * 2_000_000  # 30 MB of Korean in one text
    start = time.perf_counter()
    v = tiny_encoder.encode([huge, short])
    assert time.perf_counter() - start < 20  # the whole text would take minutes and gigabytes
    assert tiny_encoder.last_stats.truncated == 1
    # Only characters the model could never read are cut: what is left still fills the model's window, so the
    # vector is the one of the uncut text (made here by the backend itself, which cuts nothing).
    backend = tiny_encoder._backend
    assert len(backend.tokenize([huge[: tiny_encoder.max_chars]]).ids[0]) > tiny_encoder.max_seq_length
    uncut = backend.embed_tokens(backend.tokenize([huge[: 4 * tiny_encoder.max_chars]]))
    np.testing.assert_allclose(v[0], uncut[0] / np.linalg.norm(uncut[0]), atol=1e-5)


def test_nfd_text_is_cut_after_normalising(tiny_encoder):
    limit = tiny_encoder.max_chars
    nfc = "가" * (limit + 10)
    nfd = unicodedata.normalize("NFD", nfc)  # twice as many code points
    np.testing.assert_allclose(tiny_encoder.encode([nfd]), tiny_encoder.encode([nfc]), atol=1e-6)
    assert tiny_encoder.last_stats.truncated == 1


def test_texts_with_unreadable_words_are_counted(tiny_encoder):
    unk = tiny_encoder._backend.tokenizer.unk_id
    assert unk is not None
    texts = ["가" * 1_000_000, "평범한 문장입니다", "🦜🦜🦜 앵무새"]  # one 'word' too long to read; a character
    tokens = tiny_encoder._backend.tokenize([texts[0][:1000], texts[1]])
    assert list(tokens.unknown) == [1, 0] and tokens.ids[0].count(unk) == 1
    tiny_encoder.encode(texts)
    stats = tiny_encoder.last_stats
    assert stats.unknown == 1 + (tiny_encoder._backend.tokenize([texts[2]]).unknown[0] > 0)
    assert stats.truncated >= 1


# -- prompts (issue 24) -------------------------------------------------------------------------------------
PROMPT_TEXTS = [*TEXTS, "주식 시장이 큰 폭으로 하락했다. " * 40]  # the last one is truncated, prompt included


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_prompts_give_sentence_transformers_vectors(tiny_prompt_dir, backend):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(tiny_prompt_dir), device="cpu")
    enc = KoMiniLMEncoder(str(tiny_prompt_dir), backend=backend)
    for name in ("query", "document"):
        want = st.encode(PROMPT_TEXTS, prompt_name=name, convert_to_numpy=True)
        np.testing.assert_allclose(enc.encode(PROMPT_TEXTS, prompt_name=name), want, atol=1e-5)
    np.testing.assert_allclose(enc.encode_query(PROMPT_TEXTS), st.encode_query(PROMPT_TEXTS), atol=1e-5)
    np.testing.assert_allclose(enc.encode_document(PROMPT_TEXTS), st.encode_document(PROMPT_TEXTS), atol=1e-5)
    np.testing.assert_allclose(enc.encode(PROMPT_TEXTS, prompt="검색: "), st.encode(PROMPT_TEXTS, prompt="검색: "),
                               atol=1e-5)
    np.testing.assert_allclose(enc.encode(PROMPT_TEXTS), st.encode(PROMPT_TEXTS), atol=1e-5)  # no default: none
    # The prompt counts toward max_seq_length: the prompted texts are longer and the long one is cut.
    plain, prompted = enc.encode_with_stats(PROMPT_TEXTS), enc.encode_with_stats(PROMPT_TEXTS, prompt_name="query")
    assert prompted.prompt == "query: " and plain.prompt == ""
    assert (prompted.lengths > plain.lengths).all() and prompted.stats.truncated == 1
    assert prompted.lengths.tolist() == enc.token_lengths(PROMPT_TEXTS, prompt_name="query").tolist()
    assert not np.allclose(prompted.vectors[0], plain.vectors[0], atol=1e-3)


def test_default_prompt_name_applies_when_none_is_named(tiny_prompt_dir, tmp_path):
    import json

    from sentence_transformers import SentenceTransformer

    folder = tmp_path / "model"
    shutil.copytree(tiny_prompt_dir, folder)
    config_path = folder / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) | {"default_prompt_name": "query"}
    config_path.write_text(json.dumps(config), encoding="utf-8")
    enc = KoMiniLMEncoder(str(folder), backend="torch")
    want = SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(enc.encode(TEXTS), want, atol=1e-5)
    np.testing.assert_allclose(enc.encode(TEXTS), enc.encode(TEXTS, prompt_name="query"), atol=1e-6)
    assert enc.prompt_for("document") == "passage: "  # a role with its own prompt keeps it
    np.testing.assert_allclose(enc.encode(TEXTS, prompt=""), enc.encode(TEXTS, prompt=""), atol=0)


def test_unknown_prompt_names_and_bad_configs_are_refused(tiny_prompt_dir, tmp_path):
    enc = KoMiniLMEncoder(str(tiny_prompt_dir), backend="torch")
    with pytest.raises(KoembedError, match="unknown prompt name 'qeury'.*document, query"):
        enc.encode(TEXTS, prompt_name="qeury")
    with pytest.raises(KoembedError, match="not both"):
        enc.encode(TEXTS, prompt_name="query", prompt="x")
    folder = tmp_path / "model"
    shutil.copytree(tiny_prompt_dir, folder)
    (folder / "config_sentence_transformers.json").write_text('{"prompts": {"query": "q: "}, '
                                                             '"default_prompt_name": "passage"}', encoding="utf-8")
    with pytest.raises(KoembedError, match="default_prompt_name 'passage' is not one of its prompts"):
        KoMiniLMEncoder(str(folder), backend="torch")


def test_pooling_without_the_prompt_matches_sentence_transformers(tiny_prompt_dir, tmp_path):
    import json

    from sentence_transformers import SentenceTransformer

    folder = tmp_path / "model"
    shutil.copytree(tiny_prompt_dir, folder)
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps(json.loads(pooling.read_text(encoding="utf-8")) | {"include_prompt": False}),
                       encoding="utf-8")
    enc = KoMiniLMEncoder(str(folder))  # auto: the onnx graph cannot leave the prompt out, so torch
    assert enc.backend_name == "torch"
    st = SentenceTransformer(str(folder), device="cpu")
    want = st.encode(TEXTS, prompt_name="query", convert_to_numpy=True)
    np.testing.assert_allclose(enc.encode(TEXTS, prompt_name="query"), want, atol=1e-5)
    with_prompt = KoMiniLMEncoder(str(tiny_prompt_dir), backend="torch").encode(TEXTS, prompt_name="query")
    assert not np.allclose(want, with_prompt, atol=1e-3)  # pooling the prompt or not makes a difference
