"""The slim install (issue 26): ``pip install koembed`` has no torch, and index/search/encode/eval/serve run without it.

The commands run in a subprocess where every module outside the core dependencies is blocked by a
meta-path hook (as if it were not installed), on the embedded model, which ships its ONNX graph. What
needs an extra says which one, on one ``error:`` line. The wheel install itself (size, time, no CUDA
package) is measured by hand and reported in docs/install.md; here the dependency lists are checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from koembed.model_source import DEFAULT_MODEL_NAME, PACKAGE_MODELS

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# Modules a slim install lacks: every optional extra's (test tools such as httpx stay importable).
BLOCKED = ("torch", "transformers", "sentence_transformers", "onnx", "onnxscript", "datasets", "accelerate",
           "sklearn", "matplotlib", "seqeval", "pyarrow", "ray", "kiwipiepy")
HEAVY_PACKAGES = ("torch", "transformers", "sentence-transformers", "datasets", "accelerate", "nvidia", "triton",
                  "onnx", "onnxscript", "scikit-learn", "matplotlib", "pyarrow")
TEXTS = [t for t in (REPO / "examples" / "texts.txt").read_text(encoding="utf-8").splitlines() if t.strip()]
needs_default_model = pytest.mark.skipif(
    not (PACKAGE_MODELS / DEFAULT_MODEL_NAME / "onnx" / "manifest.json").is_file(),
    reason="no embedded model with a shipped ONNX graph")

# Runs `koembed ARGS` with the blocked modules unimportable; prints a JSON line with the exit code and which
# blocked modules got imported anyway (none may: a blocked import raises, and a caught one is still recorded).
_RUNNER = """
import importlib.abc, json, sys
BLOCKED = set(sys.argv[1].split(","))
tried = []
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            tried.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Block())
from koembed.cli import main
rc = main(sys.argv[2:])
print(json.dumps({"rc": rc, "tried": sorted(set(tried))}))
"""


def koembed_slim(*args: str, env: dict[str, str] | None = None) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", _RUNNER, ",".join(BLOCKED), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=os.environ | {"KOEMBED_THREADS": "1"} | (env or {}))
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert last.startswith("{"), (proc.stdout, proc.stderr)
    return json.loads(last), proc.stderr


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_the_core_dependencies_are_the_inference_stack():
    core = [_name(r) for r in PYPROJECT["project"]["dependencies"]]
    assert {"onnxruntime", "tokenizers", "faiss-cpu", "numpy", "typer"} <= set(core)
    assert not [c for c in core if c in HEAVY_PACKAGES or c.startswith(("nvidia", "torch"))], core
    for extra in ("torch", "train", "export", "distill"):
        assert "torch" in _closure(extra), extra
    assert "pyarrow" in _closure("parquet") and "fastapi" in _closure("serve")


def _closure(extra: str) -> set[str]:
    """The packages ``koembed[extra]`` installs, its own ``koembed[...]`` references followed."""
    out: set[str] = set()
    for req in PYPROJECT["project"]["optional-dependencies"][extra]:
        nested = re.match(r"koembed\[([a-z,]+)\]", req)
        out |= set().union(*(_closure(e) for e in nested[1].split(","))) if nested else {_name(req)}
    return out


@needs_default_model
def test_index_search_encode_info_run_without_torch(tmp_path):
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(TEXTS[:30]) + "\n", encoding="utf-8")
    ix = tmp_path / "ix"
    result, err = koembed_slim("index", docs, "-o", ix, "-q")
    assert result == {"rc": 0, "tried": []}, err
    result, err = koembed_slim("search", ix, TEXTS[3], "-k", "3", "--json", "-q")
    assert result == {"rc": 0, "tried": []}, err
    for out in ("v.npy", "v.jsonl"):
        result, err = koembed_slim("encode", docs, "-o", tmp_path / out, "-q")
        assert result == {"rc": 0, "tried": []}, (out, err)
    result, err = koembed_slim("info", ix)
    assert result == {"rc": 0, "tried": []}, err


@needs_default_model
def test_eval_runs_without_torch(data_dir, tmp_path):
    result, err = koembed_slim("eval", str(PACKAGE_MODELS / DEFAULT_MODEL_NAME), "--task", "korsts",
                               "--max-samples", "40", "--data-dir", data_dir, "--json")
    assert result["rc"] == 0 and not result["tried"], err


@needs_default_model
def test_serve_app_answers_without_torch(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(TEXTS[:20]) + "\n", encoding="utf-8")
    assert koembed_slim("index", docs, "-o", tmp_path / "ix", "-q")[0]["rc"] == 0
    code = _RUNNER.replace("from koembed.cli import main\nrc = main(sys.argv[2:])\n", f"""
from fastapi.testclient import TestClient
from koembed.server import create_app
client = TestClient(create_app([{str(tmp_path / 'ix')!r}]))
r1 = client.post("/search", json={{"queries": [{TEXTS[2]!r}], "k": 2}})
r2 = client.post("/v1/embeddings", json={{"input": "안녕하세요"}})
rc = 0 if (r1.status_code, r2.status_code) == (200, 200) else [r1.text, r2.text]
""")
    proc = subprocess.run([sys.executable, "-c", code, ",".join(BLOCKED)], capture_output=True, text=True,
                          timeout=300, env=os.environ | {"KOEMBED_THREADS": "1"})
    assert proc.stdout.strip(), proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"rc": 0, "tried": []}, proc.stderr


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@needs_default_model
def test_what_needs_an_extra_names_it(tmp_path, tiny_st_dir):
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(TEXTS[:5]) + "\n", encoding="utf-8")
    result, err = koembed_slim("encode", docs, "-o", tmp_path / "t.npy", "--backend", "torch", "-q")
    assert result["rc"] == 5 and "pip install 'koembed[torch]'" in _one_error_line(err)
    # A model folder with no ONNX graph yet (a fresh cache): the export needs the export extra.
    result, err = koembed_slim("encode", docs, "-o", tmp_path / "t.npy", "--model", tiny_st_dir, "-q",
                               env={"KOEMBED_CACHE": str(tmp_path / "fresh-cache")})
    assert result["rc"] == 5 and "pip install 'koembed[export]'" in _one_error_line(err)
    result, err = koembed_slim("train", "-o", tmp_path / "run", "--max-steps", "1")
    assert result["rc"] == 5 and "pip install 'koembed[train]'" in _one_error_line(err)
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    result, err = koembed_slim("index", tmp_path / "d.parquet", "-o", tmp_path / "pix", "-q")
    assert result["rc"] == 5 and "pip install 'koembed[parquet]'" in _one_error_line(err)


def test_the_dockerfile_installs_what_pyproject_names():
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs, "the Dockerfile installs nothing"
    extras = set(re.findall(r"koembed[^\s\[]*\[([a-z,]+)\]", dockerfile))
    known = set(PYPROJECT["project"]["optional-dependencies"])
    for group in extras:
        assert set(group.split(",")) <= known, group
    assert "torch" not in dockerfile.lower().replace("no torch", ""), "the slim image must not install torch"
    minor = int(re.search(r"FROM python:3\.(\d+)-slim", dockerfile)[1])
    assert minor >= int(PYPROJECT["project"]["requires-python"].split(".")[1])
