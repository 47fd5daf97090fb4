"""Portable indexes (issue 26): a koembed-named model is recorded by its name, so an index built in one environment
is searched from another (a venv elsewhere, a container) where the same model lives in another folder.

"Another environment" is a copy of the koembed package in a temporary folder, put first on PYTHONPATH: its
embedded model has another absolute path, as in a second venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from koembed.index.manifest import ModelInfo
from koembed.model_names import public_model_name, stable_model_name
from koembed.model_source import DEFAULT_MODEL_NAME, PACKAGE_MODELS

REPO = Path(__file__).resolve().parent.parent
TEXTS = [t for t in (REPO / "examples" / "texts.txt").read_text(encoding="utf-8").splitlines() if t.strip()][:30]
needs_default_model = pytest.mark.skipif(not (PACKAGE_MODELS / DEFAULT_MODEL_NAME / "onnx").is_dir(),
                                         reason="no embedded model with a shipped ONNX graph")


def test_named_models_are_recorded_by_name_and_other_folders_by_path(tmp_path):
    old = f"/home/u/old-venv/lib/python3.11/site-packages/koembed/models/{DEFAULT_MODEL_NAME}"
    assert stable_model_name(old) == DEFAULT_MODEL_NAME  # an older manifest's path reads as the name
    assert stable_model_name(str(PACKAGE_MODELS / DEFAULT_MODEL_NAME)) == DEFAULT_MODEL_NAME
    assert stable_model_name("/home/u/.cache/koembed/models/e5-small-ko") == "e5-small-ko"
    own = str(tmp_path / "models" / "my-model")
    assert stable_model_name(own) == own and public_model_name(own) == "my-model"
    assert stable_model_name("/x/koembed/models/not-a-koembed-model") == "/x/koembed/models/not-a-koembed-model"
    assert stable_model_name("BM-K/KoMiniLM") == "BM-K/KoMiniLM" == public_model_name("BM-K/KoMiniLM")
    assert stable_model_name(None) is None and stable_model_name(5) == 5  # nothing to name; corrupt: left as is
    assert ModelInfo(old, "f" * 32).name == DEFAULT_MODEL_NAME
    assert ModelInfo.from_dict({"name": old, "fingerprint": "f" * 32}, "ix").as_dict()["name"] == DEFAULT_MODEL_NAME


def _other_environment(tmp_path: Path) -> Path:
    """A second copy of the koembed package (with its embedded model), as another venv would hold it."""
    root = tmp_path / "other-env"
    shutil.copytree(REPO / "koembed", root / "koembed",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def _koembed(args: list[str], pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {"KOEMBED_THREADS": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-m", "koembed", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=pythonpath or REPO)


@needs_default_model
def test_an_index_built_in_one_environment_is_searched_from_another(tmp_path):
    other = _other_environment(tmp_path)
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    ix = tmp_path / "ix"
    built = _koembed(["index", str(docs), "-o", str(ix), "-q"], pythonpath=other)
    assert built.returncode == 0, built.stderr
    manifest = json.loads((ix / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model"]["name"] == DEFAULT_MODEL_NAME and manifest["model"]["fingerprint"]
    assert str(tmp_path) not in json.dumps(manifest["model"])
    shutil.rmtree(other)  # the environment that built it is gone
    for mode in ("dense", "hybrid"):
        found = _koembed(["search", str(ix), TEXTS[4], "-k", "1", "--mode", mode, "--json", "-q"])
        assert found.returncode == 0, (mode, found.stderr)
        assert TEXTS[4] in found.stdout, (mode, found.stdout)


@needs_default_model
def test_the_fingerprint_still_checks_the_model_behind_the_name(tmp_path):
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    ix = tmp_path / "ix"
    assert _koembed(["index", str(docs), "-o", str(ix), "-q"]).returncode == 0
    # Another environment whose model of that name has other weights: refused, not searched with.
    other = _other_environment(tmp_path)
    weights = other / "koembed" / "models" / DEFAULT_MODEL_NAME / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    found = _koembed(["search", str(ix), TEXTS[4], "-k", "1", "--mode", "dense", "-q"], pythonpath=other)
    assert found.returncode == 4 and "differs from the index's model" in found.stderr, found.stderr


@needs_default_model
def test_the_embedded_model_is_named_on_the_command_line(tmp_path):
    import numpy as np

    from koembed.cli import main

    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(TEXTS[:8]) + "\n", encoding="utf-8")
    assert main(["encode", str(docs), "-o", str(tmp_path / "a.npy"), "--model", DEFAULT_MODEL_NAME, "-q"]) == 0
    assert main(["encode", str(docs), "-o", str(tmp_path / "b.npy"), "-q"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    meta = json.loads((tmp_path / "a.npy.json").read_text(encoding="utf-8"))
    assert meta["report"]["model"] == DEFAULT_MODEL_NAME
