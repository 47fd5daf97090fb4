"""int8 quantisation of an exported sentence graph with ONNX Runtime, keeping sensitive layers in fp32.

The linear layers (MatMul with a weight initialiser) are classified by role and layer from the graph's
structure: ``qkv``, ``attn_out`` (attention output projection), ``ffn_in`` and ``ffn_out``. A
:class:`QuantConfig` says which of them stay fp32, whether activations are quantised per batch at run
time (``dynamic``) or with ranges calibrated on real Korean text (``static``, QDQ), and whether weights
are quantised per output channel. The embeddings are never quantised; in a graph with ORT's fused
``Attention`` the Q/K/V projection is quantised as one (``QAttention``). The presets are the ones
measured in docs/benchmarks.md (## Encoding): the default, ``dynamic-all``, quantises every linear
layer and on this project's trained models stays within the fidelity bar (mean cosine >= 0.99, top-10
overlap >= 0.95) while running ~1.6x faster than ``dynamic``, which keeps the FFN output projections
and the last layer in fp32 for models whose activations have large outliers (a fully pretrained BERT).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from koembed.errors import KoembedError

ROLES = ("qkv", "attn_out", "ffn_in", "ffn_out")
# Calibration batches are padded to one width; the histograms of every activation are held in memory.
CALIBRATION_MAX_TOKENS = 64


@dataclass(frozen=True)
class QuantConfig:
    method: str = "dynamic"  # "dynamic" or "static"
    per_channel: bool = True
    exclude_roles: tuple[str, ...] = ()  # roles kept fp32 in every layer
    exclude_first_layers: int = 0
    exclude_last_layers: int = 0
    calibrate_method: str = "percentile"  # static only: minmax | percentile | entropy
    calibration_texts: int = 256  # static only: KorSTS/NSMC train sentences (koembed.data catalogue)
    reduce_range: bool = False

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return f"{self.method}-{hashlib.blake2b(blob, digest_size=6).hexdigest()}"

    @classmethod
    def named(cls, name: str | None) -> QuantConfig:
        if name is None:
            name = DEFAULT_PRESET
        if name not in PRESETS:
            raise KoembedError(f"unknown quantization preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}")
        return PRESETS[name]


PRESETS: dict[str, QuantConfig] = {
    "dynamic-all": QuantConfig(method="dynamic"),
    "dynamic": QuantConfig(method="dynamic", exclude_roles=("ffn_out",), exclude_last_layers=1),
    "static": QuantConfig(method="static", exclude_roles=("ffn_out",), exclude_last_layers=1),
    "static-all": QuantConfig(method="static"),
}
DEFAULT_PRESET = "dynamic-all"


def classify_matmuls(model) -> list[tuple[str, str, int]]:
    """``(node name, role, layer)`` for every MatMul whose second input is a 2-D weight initialiser.

    A fused ``Attention`` node (one packed Q/K/V projection, see :mod:`koembed.backends.onnx.graph`)
    counts as its layer's ``qkv``.
    """
    weights = {t.name: tuple(t.dims) for t in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    out, layer, pending_qkv = [], 0, 0
    for node in model.graph.node:
        if node.op_type == "Attention":
            out.append((node.name, "qkv", layer))
            continue
        if node.op_type != "MatMul" or len(weights.get(node.input[1], ())) != 2:
            continue
        rows, cols = weights[node.input[1]]
        src = producers.get(node.input[0])
        src_op = src.op_type if src is not None else ""
        if rows > cols:
            role = "ffn_out"
        elif cols > rows:
            role = "ffn_in"
        elif src_op in ("Reshape", "Transpose", "Attention") or pending_qkv >= 3:
            role = "attn_out"
        else:
            role = "qkv"
        pending_qkv = pending_qkv + 1 if role == "qkv" else 0
        out.append((node.name, role, layer))
        if role == "ffn_out":
            layer += 1
    return out


def nodes_to_quantize(model, cfg: QuantConfig) -> list[str]:
    matmuls = classify_matmuls(model)
    n_layers = 1 + max((layer for _, _, layer in matmuls), default=-1)
    if n_layers == 0 or {r for _, r, _ in matmuls} != set(ROLES):
        raise KoembedError("cannot find the BERT layer structure in the exported graph; use the fp32 "
                           "onnx backend (backend='onnx', --backend onnx)")
    keep = [
        name for name, role, layer in matmuls
        if role in cfg.exclude_roles or layer < cfg.exclude_first_layers or layer >= n_layers - cfg.exclude_last_layers
    ]
    return [name for name, _, _ in matmuls if name not in set(keep)]


def quantize_model(fp32_dir: Path, out_dir: Path, cfg: QuantConfig, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write ``model-int8.onnx`` (+ ``tokenizer.json``) into ``out_dir`` from the fp32 artefact in ``fp32_dir``."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    from koembed.backends.onnx.graph import restore_fp32
    from koembed.backends.onnx.shared_weights import load_graph

    model = restore_fp32(load_graph(fp32_dir, manifest))
    selected = nodes_to_quantize(model, cfg)
    # Dynamic quantisation turns a fused Attention into QAttention; static (QDQ) handles MatMuls only.
    op_types = ["MatMul", "Attention"] if cfg.method == "dynamic" else ["MatMul"]
    attention = {n.name for n in model.graph.node if n.op_type == "Attention"}
    selected = [n for n in selected if "Attention" in op_types or n not in attention]
    target = out_dir / "model-int8.onnx"
    common = dict(
        op_types_to_quantize=op_types, per_channel=cfg.per_channel, reduce_range=cfg.reduce_range,
        weight_type=QuantType.QInt8, nodes_to_quantize=selected,
    )
    # ORT's quantiser prints progress to stdout and warns on the root logger; stdout may be a JSONL stream.
    with contextlib.redirect_stdout(io.StringIO()), _quiet_root_logger():
        if cfg.method == "dynamic":
            quantize_dynamic(model, str(target), **common)
        elif cfg.method == "static":
            from onnxruntime.quantization import CalibrationMethod

            methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                       "entropy": CalibrationMethod.Entropy}
            reader = _CalibrationReader(fp32_dir, manifest, _calibration_texts(cfg.calibration_texts))
            quantize_static(
                model, str(target), reader, quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                calibrate_method=methods[cfg.calibrate_method],
                extra_options={"CalibMovingAverage": cfg.calibrate_method == "minmax"}, **common,
            )
        else:
            raise KoembedError(f"unknown quantization method {cfg.method!r} (dynamic or static)")
    (out_dir / "tokenizer.json").write_bytes((fp32_dir / "tokenizer.json").read_bytes())
    return {"file": target.name, "quantization": asdict(cfg), "quantized_matmuls": len(selected)}


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _calibration_texts(n: int) -> list[str]:
    """Real Korean sentences: the first of KorSTS train, then NSMC train reviews (data catalogue: local files,
    else the Hub)."""
    from koembed.data.load import DataMissing, read_split

    try:
        texts = [r["sentence1"] for r in read_split("korsts", "train").rows[: n // 2]]
        return texts + [r["sentence1"] for r in read_split("nsmc", "train").rows[: n - len(texts)]]
    except DataMissing as exc:
        raise KoembedError(f"static int8 calibration needs Korean sentences: {exc.reason}; "
                           "or use quantization='dynamic'") from None


@dataclass
class _CalibrationReader:
    fp32_dir: Path
    manifest: dict[str, Any]
    texts: list[str]
    batch_size: int = 16
    _batches: Iterator[dict[str, np.ndarray]] | None = field(default=None, repr=False)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._batches is None:
            self._batches = self._make()
        return next(self._batches, None)

    def rewind(self) -> None:
        self._batches = None

    def _make(self) -> Iterator[dict[str, np.ndarray]]:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.fp32_dir / "tokenizer.json"))
        tok.enable_truncation(max_length=min(CALIBRATION_MAX_TOKENS, int(self.manifest["pipeline"]["max_seq_length"])))
        # Histogram calibrators stack all batches, so every batch has one shape: a fixed batch size, padded
        # to the longest calibration text (padding rows go through the MatMuls at inference time too).
        width = max(len(e.ids) for e in tok.encode_batch(self.texts))
        tok.enable_padding(pad_id=int(self.manifest["pad_id"]), length=width)
        for s in range(0, len(self.texts) - self.batch_size + 1, self.batch_size):
            enc = tok.encode_batch(self.texts[s : s + self.batch_size])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64)}
            if "token_type_ids" in self.manifest["inputs"]:
                feed["token_type_ids"] = np.zeros_like(ids)
            yield feed
