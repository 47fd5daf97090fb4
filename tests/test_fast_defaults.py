"""Fast by default (issue 16): the auto backend, the shipped ONNX graph, torch-free default paths, one tokenisation.

Timings are measured by examples/benchmarks/fast_defaults.py, never here; these tests pin the choices
and the imports that make the default path fast.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from koembed import KoMiniLMEncoder  # noqa: E402
from koembed.backends import resolve_backend  # noqa: E402
from koembed.model_source import DEFAULT_MODEL_NAME, PACKAGE_MODELS, resolve_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT = PACKAGE_MODELS / DEFAULT_MODEL_NAME
# Imports the default paths must not pay for: torch & co. (seconds), and scipy (~0.3 CPU-s; a one-query
# search scores BM25 without it).
HEAVY = ("torch", "transformers", "sentence_transformers", "scipy")
TEXTS = [t for t in (REPO / "examples" / "texts.txt").read_text(encoding="utf-8").splitlines() if t.strip()]
needs_default_model = pytest.mark.skipif(not (DEFAULT / "onnx" / "manifest.json").is_file(),
                                         reason=f"no embedded model with a shipped ONNX graph at {DEFAULT}")


def test_auto_is_onnx_on_cpu_and_torch_otherwise(tiny_st_dir, tmp_path, monkeypatch):
    source = resolve_model(tiny_st_dir)
    assert KoMiniLMEncoder(str(tiny_st_dir)).backend_name == "onnx"
    assert resolve_backend("auto", source, "cpu") == "onnx"
    assert resolve_backend("auto", source, "cuda") == "torch"
    assert resolve_backend("onnx-int8", source, None) == "onnx-int8"  # explicit names are kept
    # A pipeline no ONNX graph reproduces (a Dense module) stays on torch.
    dense = tmp_path / "dense"
    shutil.copytree(tiny_st_dir, dense)
    modules = json.loads((dense / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (dense / "modules.json").write_text(json.dumps(modules))
    assert resolve_backend("auto", resolve_model(dense), None) == "torch"
    # Without onnxruntime installed, auto is torch.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert resolve_backend("auto", source, None) == "torch"
    assert KoMiniLMEncoder(str(tiny_st_dir)).backend_name == "torch"


@needs_default_model
def test_shipped_graph_is_used_and_agrees_with_torch(data_dir_or_none):
    from distill.recipe.package import agreement_texts
    from koembed.backends.onnx.export import SHIPPED_MIN_COSINE

    encoder = KoMiniLMEncoder()
    assert encoder.backend_name == "onnx"
    assert encoder._backend.folder == DEFAULT.resolve() / "onnx"  # shipped: nothing exported, no torch needed
    texts = agreement_texts(data_dir_or_none)
    got = encoder.encode(texts)
    ref = KoMiniLMEncoder(backend="torch").encode(texts)
    cos = (got * ref).sum(1)
    assert len(texts) >= 50 and cos.mean() >= SHIPPED_MIN_COSINE, (cos.mean(), cos.min())


@pytest.fixture(scope="module")
def data_dir_or_none():
    from koembed.paths import data_dir

    d = data_dir()
    return d if (d / "korsts" / "sts-test.tsv").is_file() else None


def _modules_after(args: list[str], tmp_path: Path) -> dict:
    """Run ``koembed ARGS`` in a fresh process; return its exit code and which heavy packages it imported."""
    report = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    code = (
        "import json, sys\n"
        "from koembed.cli import main\n"
        "rc = main(sys.argv[2:])\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "open(sys.argv[1], 'w').write(json.dumps({'rc': rc, 'heavy': heavy}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(report), *args], capture_output=True, text=True,
                          timeout=300, env=os.environ | {"KOEMBED_THREADS": "1"})
    assert report.is_file(), proc.stderr
    return json.loads(report.read_text())


@needs_default_model
def test_default_cli_paths_import_no_torch(tmp_path):
    from koembed.index import IndexConfig, build_index

    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(TEXTS[:40]) + "\n", encoding="utf-8")
    build_index(IndexConfig(input=str(docs), output=str(tmp_path / "ix")), quiet=True)
    commands = {
        "help": ["--help"],
        "encode": ["encode", str(docs), "-o", str(tmp_path / "v.npy"), "-q"],
        "search": ["search", str(tmp_path / "ix"), "오늘 날씨", "-k", "3", "--json", "-q"],
        "info": ["info", str(tmp_path / "ix")],
    }
    for name, args in commands.items():
        result = _modules_after(args, tmp_path)
        assert result == {"rc": 0, "heavy": []}, (name, result)


def test_torch_and_onnx_vectors_search_each_others_indexes(tiny_st_dir, tmp_path):
    from koembed.index import Index, IndexConfig, build_index, search

    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(TEXTS[:30]) + "\n", encoding="utf-8")
    encoders = {b: KoMiniLMEncoder(str(tiny_st_dir), backend=b) for b in ("torch", "onnx")}
    cos = (encoders["torch"].encode(TEXTS[:30]) * encoders["onnx"].encode(TEXTS[:30])).sum(1)
    assert cos.min() >= 0.9999  # the fidelity bar that makes the indexes interchangeable
    for built_with, query_with in (("torch", "onnx"), ("onnx", "torch")):
        out = tmp_path / f"ix-{built_with}"
        build_index(IndexConfig(input=str(docs), output=str(out), model=str(tiny_st_dir), backend=built_with),
                    quiet=True)
        with Index.open(out) as index:
            assert index.manifest.model.backend == built_with
            assert index.info()["model"]["backend"] == built_with
            hits = search(index, TEXTS[:30], k=1, encoder=encoders[query_with])
            default_hits = search(index, TEXTS[:5], k=1)  # no encoder given: auto, whatever built the index
        assert [h[0].text for h in hits] == TEXTS[:30]
        assert min(h[0].score for h in hits) >= 0.9999
        assert [h[0].text for h in default_hits] == TEXTS[:5]
    with Index.open(tmp_path / "ix-onnx") as index:
        from koembed.index import load_encoder_for

        assert load_encoder_for(index).backend_name == "onnx"


def test_auto_index_records_the_resolved_backend(tiny_st_dir, tmp_path):
    from koembed.index import Index, IndexConfig, build_index

    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(TEXTS[:10]) + "\n", encoding="utf-8")
    build_index(IndexConfig(input=str(docs), output=str(tmp_path / "ix"), model=str(tiny_st_dir)), quiet=True)
    with Index.open(tmp_path / "ix") as index:
        assert index.manifest.model.backend == "onnx"


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_texts_are_tokenised_once(tiny_st_dir, backend, monkeypatch):
    from koembed.backends.tokens import TextTokenizer

    encoder = KoMiniLMEncoder(str(tiny_st_dir), backend=backend)
    calls = []
    real = TextTokenizer.tokenize
    monkeypatch.setattr(TextTokenizer, "tokenize", lambda self, texts: calls.append(len(texts)) or real(self, texts))
    if backend == "torch":  # sentence-transformers' own tokenising entry point must not run at all
        monkeypatch.setattr(encoder._backend.model, "preprocess", lambda *a, **k: pytest.fail("tokenised twice"))
    encoder.encode(TEXTS[:20], batch_size=4)
    assert calls == [20]


def test_truncation_matches_the_tokenizers_own(tiny_st_dir):
    from transformers import AutoTokenizer

    from koembed.backends.tokens import TextTokenizer

    hf = AutoTokenizer.from_pretrained(str(tiny_st_dir))
    tok = TextTokenizer(hf.backend_tokenizer, pad_id=hf.pad_token_id)
    texts = [TEXTS[0] * 5, TEXTS[1], "", "짧다"]
    for limit in (4, 9, 64):
        ids, mask = tok.pad(tok.tokenize(texts), limit)
        want = hf(texts, truncation=True, max_length=limit, padding=True, return_tensors="np")
        np.testing.assert_array_equal(ids, want["input_ids"])
        np.testing.assert_array_equal(mask, want["attention_mask"])


def test_search_reads_only_the_fields_asked_for(tmp_path):
    from koembed.errors import InputError
    from koembed.index import Index, search

    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 16)).astype(np.float32)
    with Index.create(tmp_path / "ix", 16, index_type="flat", analyser=None) as index:
        index.add_vectors([f"d{i}" for i in range(50)], x, [f"문서 {i}" for i in range(50)],
                          [{"n": i} for i in range(50)])
        full = search(index, x[:3], k=2)
        ids_only = search(index, x[:3], k=2, fields=())
        text_only = search(index, x[:3], k=2, fields=("text",))
        with pytest.raises(InputError, match="unknown document field"):
            search(index, x[:3], k=2, fields=("txt",))
    assert [[h.id for h in hits] for hits in ids_only] == [[h.id for h in hits] for hits in full]
    assert [h.score for h in ids_only[0]] == [h.score for h in full[0]]
    assert full[0][0].text == "문서 0" and full[0][0].metadata == {"n": 0}
    assert ids_only[0][0].text == "" and ids_only[0][0].metadata == {}
    assert text_only[0][0].text == "문서 0" and text_only[0][0].metadata == {}
