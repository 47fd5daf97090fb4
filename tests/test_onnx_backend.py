"""ONNX Runtime backends: parity with torch, the export cache (fingerprint, crash safety), errors, import hygiene."""

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

from koembed.backends.onnx.cache import artefact_dir, ensure_artefact, read_manifest  # noqa: E402
from koembed.backends.onnx.pipeline import read_pipeline  # noqa: E402
from koembed.errors import KoembedError, MissingExtraError  # noqa: E402
from koembed.model_source import resolve_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# fp32: the same arithmetic in another runtime, so the vectors must agree to float rounding.
FP32_MIN_COS = 0.9999
# int8 on the tiny *random* fixture: a smoke bound only (random weights have no outliers to protect and
# no structure to keep); the real bar (mean cos >= 0.99, top-10 overlap >= 0.95 on trained weights) is
# measured by examples/benchmarks/encode.py and reported in docs/benchmarks.md.
INT8_TINY_MIN_MEAN_COS = 0.95


def _texts() -> list[str]:
    lines = (REPO / "examples" / "texts.txt").read_text(encoding="utf-8").splitlines()
    return lines[:40] + ["", "짧다", "아주 긴 문장 " * 100]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory):
    """A private koembed cache for this module, so exports here neither reuse nor pollute the user's."""
    cache = tmp_path_factory.mktemp("koembed-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KOEMBED_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="module")
def torch_vectors(tiny_st_dir: Path) -> np.ndarray:
    from koembed import KoMiniLMEncoder

    return KoMiniLMEncoder(str(tiny_st_dir), backend="torch").encode(_texts())


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    ok = (na > 0) & (nb > 0)
    return (a[ok] * b[ok]).sum(1) / (na[ok] * nb[ok])


def test_onnx_fp32_matches_torch(onnx_cache, tiny_st_dir, torch_vectors):
    from koembed import KoMiniLMEncoder

    enc = KoMiniLMEncoder(str(tiny_st_dir), backend="onnx", threads=1, sub_batch=8)
    vecs = enc.encode(_texts(), batch_size=16)
    assert vecs.dtype == np.float32 and vecs.shape == torch_vectors.shape
    assert _cos(torch_vectors, vecs).min() >= FP32_MIN_COS
    assert enc.last_stats.truncated == 1
    torch_enc = KoMiniLMEncoder(str(tiny_st_dir), backend="torch")
    np.testing.assert_array_equal(enc._backend.token_lengths(_texts()), torch_enc._backend.token_lengths(_texts()))
    assert enc.fingerprint == torch_enc.fingerprint  # same model, same vectors: indexes may mix them


def test_onnx_int8_close_to_torch_on_tiny_model(onnx_cache, tiny_st_dir, torch_vectors):
    from koembed import KoMiniLMEncoder

    enc = KoMiniLMEncoder(str(tiny_st_dir), backend="onnx-int8", threads=1)
    vecs = enc.encode(_texts())
    manifest = enc._backend.manifest
    assert manifest["variant"] == "int8" and manifest["quantized_matmuls"] > 0
    assert _cos(torch_vectors, vecs).mean() >= INT8_TINY_MIN_MEAN_COS
    assert (enc._backend.folder / "model-int8.onnx").is_file()


def test_pooling_modes_and_model_change_rebuilds(onnx_cache, tiny_st_dir, tmp_path):
    from koembed import KoMiniLMEncoder

    variant = tmp_path / "model"
    shutil.copytree(tiny_st_dir, variant)
    cfg_path = variant / "1_Pooling" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["pooling_mode"] = ["cls", "max", "mean_sqrt_len_tokens"]
    cfg_path.write_text(json.dumps(cfg))
    # The changed model gets its own cache entry; the original's stays.
    assert artefact_dir(resolve_model(variant), "fp32") != artefact_dir(resolve_model(tiny_st_dir), "fp32")
    ref = KoMiniLMEncoder(str(variant), backend="torch").encode(_texts())
    enc = KoMiniLMEncoder(str(variant), backend="onnx", threads=1)
    vecs = enc.encode(_texts())
    assert enc.dim == ref.shape[1] == 3 * 64
    assert _cos(ref, vecs).min() >= FP32_MIN_COS
    assert read_manifest(enc._backend.folder)["pipeline"]["pooling"] == cfg["pooling_mode"]


def test_unsupported_modules_ask_for_torch(tiny_st_dir, tmp_path):
    model = tmp_path / "dense"
    shutil.copytree(tiny_st_dir, model)
    modules = json.loads((model / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (model / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(KoembedError, match=r"Dense.*--backend torch"):
        read_pipeline(resolve_model(model))
    modules.pop(2)
    (model / "modules.json").write_text(json.dumps(modules))
    (model / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "weightedmean"}))
    with pytest.raises(KoembedError, match="weightedmean.*--backend torch"):
        read_pipeline(resolve_model(model))


def test_cache_build_is_all_or_nothing(tmp_path):
    final = tmp_path / "onnx" / "abc-fp32"

    def crash(tmp: Path) -> dict:
        (tmp / "model.onnx").write_bytes(b"half a graph")
        raise RuntimeError("killed mid-export")

    with pytest.raises(RuntimeError):
        ensure_artefact(final, crash)
    assert not final.exists() and not list(final.parent.glob(".tmp-*"))

    # What kill -9 leaves: a temp folder, or a final folder without its manifest (never loaded).
    (final.parent / f".tmp-{final.name}-dead").mkdir()
    final.mkdir()
    (final / "model.onnx").write_bytes(b"garbage")
    calls = []

    def build(tmp: Path) -> dict:
        calls.append(tmp)
        (tmp / "model.onnx").write_bytes(b"complete")
        return {"variant": "fp32"}

    assert ensure_artefact(final, build) == {"variant": "fp32"}
    assert (final / "model.onnx").read_bytes() == b"complete"
    assert not list(final.parent.glob(".tmp-*"))
    assert ensure_artefact(final, build) == {"variant": "fp32"} and len(calls) == 1  # cached


def test_bare_bert_after_crashed_export_and_without_torch_import(onnx_cache, tiny_bert_dir, tmp_path, monkeypatch):
    from koembed import KoMiniLMEncoder
    from koembed.backends.onnx import export as onnx_export

    source = resolve_model(tiny_bert_dir)
    final = artefact_dir(source, "fp32")

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash mid-export")

    with monkeypatch.context() as mp:
        mp.setattr(onnx_export, "export_model", crash)
        with pytest.raises(RuntimeError, match="simulated"):
            KoMiniLMEncoder(str(tiny_bert_dir), backend="onnx")
    assert not final.exists()
    (final.parent / f".tmp-{final.name}-leftover").mkdir()

    ref = KoMiniLMEncoder(str(tiny_bert_dir), backend="torch").encode(_texts())
    vecs = KoMiniLMEncoder(str(tiny_bert_dir), backend="onnx", threads=1).encode(_texts())
    assert _cos(ref, vecs).min() >= FP32_MIN_COS

    # With the export cached, the CLI's onnx path must not import torch & co.
    lines = tmp_path / "in.txt"
    lines.write_text("\n".join(_texts()[:10]) + "\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    code = (
        "import sys\n"
        "from koembed.cli import main\n"
        f"rc = main(['encode', {str(lines)!r}, '-o', {str(out)!r}, '--model', {str(tiny_bert_dir)!r},"
        " '--backend', 'onnx', '-q'])\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print('HEAVY', heavy, 'RC', rc)\n"
    )
    env = os.environ | {"KOEMBED_CACHE": str(onnx_cache), "KOEMBED_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "HEAVY [] RC 0" in proc.stdout, proc.stdout + proc.stderr
    np.testing.assert_allclose(np.load(out), vecs[:10], atol=1e-5)


def test_missing_onnxruntime_says_what_to_install(tiny_st_dir, monkeypatch):
    from koembed import KoMiniLMEncoder

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    # onnxruntime is a core dependency since the slim install (issue 26): the message names the package itself.
    with pytest.raises(MissingExtraError, match=r"pip install onnxruntime"):
        KoMiniLMEncoder(str(tiny_st_dir), backend="onnx")


def test_thread_setting(monkeypatch):
    from koembed.backends.onnx.backend import default_threads

    monkeypatch.setenv("KOEMBED_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("KOEMBED_THREADS", "many")
    with pytest.raises(KoembedError, match="KOEMBED_THREADS"):
        default_threads()
