"""A shipped ONNX graph that borrows its big tensors from the model's safetensors (one copy of the weights)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

TEXTS = ["오늘 날씨가 맑다", "축구 경기 결과가 나왔다", "맛있는 한국 음식을 먹었다", "내일은 비가 온다"]


@pytest.fixture(scope="module")
def shipped(tiny_st_dir, tmp_path_factory):
    from koembed.backends.onnx.export import ship_graph

    folder = tmp_path_factory.mktemp("shared") / "model"
    shutil.copytree(tiny_st_dir, folder, ignore=shutil.ignore_patterns("onnx"))
    ship_graph(folder)
    return folder


def test_graph_holds_no_copy_of_the_weights_and_agrees_with_torch(shipped):
    from koembed import KoMiniLMEncoder

    manifest = json.loads((shipped / "onnx" / "manifest.json").read_text(encoding="utf-8"))
    names = {r["name"] for r in manifest["shared_weights"]}
    assert len(names) >= 6  # word embeddings and every layer's big matrices
    assert (shipped / "onnx" / "model.onnx").stat().st_size < (shipped / "model.safetensors").stat().st_size / 4
    onnx = KoMiniLMEncoder(str(shipped), backend="onnx")
    assert onnx._backend.folder == shipped.resolve() / "onnx"  # the shipped graph, not an export
    torch = KoMiniLMEncoder(str(shipped), backend="torch")
    np.testing.assert_allclose(onnx.encode(TEXTS), torch.encode(TEXTS), atol=1e-4)
    int8 = KoMiniLMEncoder(str(shipped), backend="onnx-int8").encode(TEXTS)  # quantised from the filled-in graph
    assert (int8 * onnx.encode(TEXTS)).sum(1).min() > 0.95


def test_changed_weights_are_never_read_through_the_old_graph(shipped, tmp_path):
    """Other weights have another fingerprint: the shipped graph (made for the old ones) is not used for them."""
    from safetensors.numpy import load_file, save_file

    from koembed import KoMiniLMEncoder

    changed = tmp_path / "model"
    shutil.copytree(shipped, changed)
    w = load_file(str(changed / "model.safetensors"))
    key = "encoder.layer.0.attention.self.query.weight"
    w[key] = (w[key] * 1.5).astype(w[key].dtype)
    save_file(w, str(changed / "model.safetensors"))
    onnx = KoMiniLMEncoder(str(changed), backend="onnx")
    assert onnx._backend.folder != changed.resolve() / "onnx"  # exported afresh into the cache
    torch = KoMiniLMEncoder(str(changed), backend="torch")
    np.testing.assert_allclose(onnx.encode(TEXTS), torch.encode(TEXTS), atol=1e-4)
