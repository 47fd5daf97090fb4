"""One copy of a shipped model's weights for both backends: the ONNX graph takes its big tensors from model.safetensors.

A model that ships inside the package carries ``model.safetensors`` (for torch and sentence-transformers) and an
ONNX graph (for the default backend). Stored twice, the weights of a 22M-parameter model would not fit the
package budget, so the graph's large initializers are replaced by external-data declarations, and a recipe in the
graph's manifest says how to rebuild each one from the safetensors tensors (a tensor as is, transposed, or the
concatenation of three transposed ones: ORT's fused QKV weight). At session creation the backend rebuilds them
and hands them to ONNX Runtime with ``SessionOptions.add_external_initializers``, before any graph optimisation,
so the session is the same as with the weights inside the graph (the ``add_external_initializers`` route never
opens the declared file, so ORT's rule that external data must sit beside the graph does not apply).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

SHARED_KEY = "shared_weights"  # in the graph's manifest
MIN_ELEMENTS = 4096  # smaller tensors stay inside the graph


def _digest(a: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(a).tobytes() + str(a.shape).encode(), digest_size=16).hexdigest()


def share_weights(graph_path: str | Path, safetensors_path: str | Path) -> list[dict[str, Any]]:
    """Rewrite ``graph_path`` in place so that its large initializers come from ``safetensors_path``.

    Returns the recipes (one per replaced initializer) to store in the manifest under :data:`SHARED_KEY`.
    Initializers that no safetensors tensor reproduces exactly stay in the graph.
    """
    import onnx
    from onnx import numpy_helper
    from safetensors.numpy import load_file

    weights = load_file(str(safetensors_path))
    by_digest: dict[str, tuple[str, bool]] = {}
    for key, t in weights.items():
        for dtype in (np.float16, np.float32):
            v = t.astype(dtype)
            by_digest.setdefault(_digest(v), (key, False))
            if v.ndim == 2:
                by_digest.setdefault(_digest(v.T), (key, True))
    model = onnx.load(str(graph_path))
    recipes = []
    for init in model.graph.initializer:
        if int(np.prod(init.dims)) < MIN_ELEMENTS:
            continue
        value = numpy_helper.to_array(init)
        parts = _match(value, by_digest)
        if parts is None:
            continue
        recipes.append({"name": init.name, "dtype": str(value.dtype), "shape": list(value.shape),
                        "parts": [[k, t] for k, t in parts]})
        init.ClearField("raw_data")
        for field in ("float_data", "int32_data", "int64_data", "double_data"):
            init.ClearField(field)
        init.data_location = onnx.TensorProto.EXTERNAL
        del init.external_data[:]
        for k, v in (("location", Path(safetensors_path).name), ("offset", "0"), ("length", "0")):
            entry = init.external_data.add()
            entry.key, entry.value = k, v
    onnx.save(model, str(graph_path))
    return recipes


def _match(value: np.ndarray, by_digest: dict[str, tuple[str, bool]]) -> list[tuple[str, bool]] | None:
    hit = by_digest.get(_digest(value))
    if hit is not None:
        return [hit]
    if value.shape[-1] % 3 == 0:  # ORT's fused attention: [Wq^T | Wk^T | Wv^T] and [bq | bk | bv]
        thirds = np.split(value, 3, axis=-1)
        hits = [by_digest.get(_digest(np.ascontiguousarray(p))) for p in thirds]
        if all(h is not None for h in hits):
            return hits
    return None


def external_initializers(model_dir: str | Path,
                          recipes: list[dict[str, Any]]) -> tuple[list[str], list[Any], list[np.ndarray]]:
    """The (names, OrtValues) that :func:`share_weights` took out of the graph, rebuilt from model.safetensors.

    The third item holds the arrays the OrtValues point into: keep it alive until the session is created (ORT
    copies the data then; an OrtValue made from numpy does not own its buffer).
    """
    import onnxruntime as ort
    from safetensors.numpy import load_file

    weights = load_file(str(Path(model_dir) / "model.safetensors"))
    names, values, arrays = [], [], []
    for r in recipes:
        arrays = [weights[k].T if transpose else weights[k] for k, transpose in r["parts"]]
        arr = np.ascontiguousarray(np.concatenate(arrays, axis=-1) if len(arrays) > 1 else arrays[0],
                                   dtype=np.dtype(r["dtype"]))
        if list(arr.shape) != r["shape"]:
            from koembed.errors import KoembedError

            raise KoembedError(f"{model_dir}: model.safetensors does not match its ONNX graph ({r['name']}: "
                               f"{list(arr.shape)} vs {r['shape']}); re-ship the graph")
        names.append(r["name"])
        arrays.append(arr)
        values.append(ort.OrtValue.ortvalue_from_numpy(arr))
    return names, values, arrays


def materialise(graph_path: str | Path, model_dir: str | Path, recipes: list[dict[str, Any]], out: str | Path) -> None:
    """Write a self-contained copy of a shared-weight graph (for tools that read the file, e.g. quantisation)."""
    import onnx
    from onnx import numpy_helper
    from safetensors.numpy import load_file

    weights = load_file(str(Path(model_dir) / "model.safetensors"))
    model = onnx.load(str(graph_path), load_external_data=False)
    by_name = {r["name"]: r for r in recipes}
    for i, init in enumerate(model.graph.initializer):
        r = by_name.get(init.name)
        if r is None:
            continue
        arrays = [weights[k].T if transpose else weights[k] for k, transpose in r["parts"]]
        arr = np.concatenate(arrays, axis=-1) if len(arrays) > 1 else arrays[0]
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr.astype(r["dtype"]), init.name))
    onnx.save(model, str(out))


def load_graph(folder: str | Path, manifest: dict[str, Any]):
    """The artefact's graph as an in-memory ModelProto, its shared weights filled in from the model folder."""
    import onnx

    path = Path(folder) / manifest.get("file", "model.onnx")
    recipes = manifest.get(SHARED_KEY)
    if not recipes:
        return onnx.load(str(path))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        materialise(path, Path(folder).parent, recipes, out)
        return onnx.load(str(out))
