"""Rewrites of an exported sentence graph: ORT's fused BERT operators, and fp16 storage of fp16-valued weights.

**Fusion.** ONNX Runtime's transformer optimiser (``onnxruntime.transformers.optimizer``) replaces each
layer's Q/K/V projections, score MatMul, mask, softmax and context MatMul with one ``Attention``
operator (one packed QKV GEMM, then per-head work in one kernel), and fuses LayerNorm and bias+GELU.
On the CPUs measured this is what lets int8 pay off (docs/benchmarks.md). Its pattern matcher was
written for the TorchScript exporter's graphs; two details of the dynamo exporter's graph defeat it,
and :func:`make_fusable` rewrites them into the equivalent forms it expects:

- the additive mask ``(1 - mask[:, None, None, :]) * min`` is exported as one two-axis ``Unsqueeze``;
  the matcher wants two one-axis ones;
- the score scale is a ``Mul`` after ``MatMul(Q, K^T)``, which the matcher confuses with the mask's
  ``Mul`` on the same ``Add``; a ``Div`` by the reciprocal is the pattern it knows.

The fused graph is accepted only if it still matches torch (checked by the exporter).

**fp16 storage.** Weights that were stored as fp16 (the embedded model ships so) lose nothing when
stored in fp16 again: :func:`store_fp16` keeps such initialisers in fp16 behind a ``Cast``, which ONNX
Runtime folds into an fp32 constant when the session is created, so inference runs in fp32 at the
same speed from a file half the size. :func:`restore_fp32` undoes it (the quantiser wants fp32 weights).
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

import numpy as np

# Initialisers smaller than this are not worth a Cast node.
FP16_MIN_ELEMENTS = 1024
FP16_SUFFIX = "__fp16"
FUSED_OPS = ("Attention", "SkipLayerNormalization", "BiasGelu", "Gelu", "FastGelu", "EmbedLayerNormalization")


def make_fusable(model: Any) -> None:
    """Rewrite the two dynamo-export patterns ORT's attention fusion does not recognise (see the module doc)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    inputs = {i.name for i in graph.input}
    for node in list(graph.node):
        if node.op_type == "Unsqueeze" and node.input[0] in inputs and node.input[1] in consts:
            axes = numpy_helper.to_array(consts[node.input[1]]).tolist()
            if len(axes) == 2:
                first, second = (f"{node.name}__axis{a}" for a in axes)
                for name, axis in ((first, axes[0]), (second, axes[1])):
                    if name not in consts:
                        consts[name] = numpy_helper.from_array(np.array([axis], dtype=np.int64), name)
                        graph.initializer.append(consts[name])
                middle = f"{node.output[0]}__1"
                split = helper.make_node("Unsqueeze", [node.input[0], first], [middle], name=f"{node.name}__1")
                graph.node.insert(list(graph.node).index(node), split)
                node.input[0], node.input[1] = middle, second
        elif node.op_type == "Mul" and node.input[1] in consts:
            scale = numpy_helper.to_array(consts[node.input[1]])
            src = producers.get(node.input[0])
            if scale.size == 1 and src is not None and src.op_type == "MatMul" and src.input[1] not in consts:
                name = f"{node.input[1]}__reciprocal"
                if name not in consts:
                    consts[name] = numpy_helper.from_array((1.0 / scale).astype(scale.dtype), name)
                    graph.initializer.append(consts[name])
                node.op_type, node.input[1] = "Div", name


def fuse_bert(model: Any, num_heads: int, hidden_size: int) -> tuple[Any, dict[str, int]]:
    """ORT's BERT fusions on ``model`` (offline, no hardware-specific layouts); returns it and fused-op counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    make_fusable(model)
    # The optimiser logs each pattern it fails to match and prints a summary on stdout.
    with contextlib.redirect_stdout(io.StringIO()), _quiet("onnxruntime.transformers", "onnx_model", "fusion"):
        optimized = optimize_model(model, model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                                   opt_level=0)
    optimized.topological_sort()  # fused nodes are appended; ONNX wants producers before consumers
    if not any(o.domain == "com.microsoft" for o in optimized.model.opset_import):
        optimized.model.opset_import.add(domain="com.microsoft", version=1)
    counts: dict[str, int] = {}
    for node in optimized.model.graph.node:
        if node.op_type in FUSED_OPS:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return optimized.model, counts


def store_fp16(model: Any) -> int:
    """Store every large fp32 initialiser whose values are exactly fp16 as fp16 + ``Cast``; returns bytes saved."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    casts, saved = [], 0
    for i, init in enumerate(list(graph.initializer)):
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < FP16_MIN_ELEMENTS:
            continue
        values = numpy_helper.to_array(init)
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            continue  # not fp16-valued: storing it in fp16 would change the model
        name = init.name  # read before CopyFrom: ``init`` is the message being replaced
        graph.initializer[i].CopyFrom(numpy_helper.from_array(half, name + FP16_SUFFIX))
        casts.append(helper.make_node("Cast", [name + FP16_SUFFIX], [name], to=TensorProto.FLOAT,
                                      name=f"{name}{FP16_SUFFIX}_cast"))
        saved += values.nbytes - half.nbytes
    for node in reversed(casts):
        graph.node.insert(0, node)
    return saved


def restore_fp32(model: Any) -> Any:
    """The inverse of :func:`store_fp16`: fp32 initialisers again, ``Cast`` nodes gone (``model`` is changed)."""
    from onnx import numpy_helper

    graph = model.graph
    halves = {t.name: t for t in graph.initializer if t.name.endswith(FP16_SUFFIX)}
    if not halves:
        return model
    keep = []
    for node in graph.node:
        if node.op_type == "Cast" and node.input[0] in halves:
            values = numpy_helper.to_array(halves[node.input[0]]).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(values, node.output[0]))
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    rest = [t for t in graph.initializer if t.name not in halves]
    del graph.initializer[:]
    graph.initializer.extend(rest)
    return model


@contextlib.contextmanager
def _quiet(*names: str):
    loggers = [logging.getLogger(n) for n in names] + [logging.getLogger()]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
