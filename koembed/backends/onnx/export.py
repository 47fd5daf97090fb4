"""Export a sentence model to one ONNX graph (encoder + pooling + normalisation) with ``torch.onnx.export``.

Only this module imports torch and transformers on the ONNX path, and only when a model is exported
for the first time; afterwards the cached graph and ``tokenizer.json`` are all inference needs.
The export is checked against the PyTorch pipeline on a padded batch before it is accepted.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from koembed.backends.onnx.pipeline import PipelineSpec
from koembed.errors import KoembedError
from koembed.model_source import ModelSource

OPSET = 18
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "sentence_embedding"
# fp32 export vs torch on the same inputs; the graph is the same arithmetic, so anything larger is a bug.
EXPORT_TOLERANCE = 1e-4


def export_model(source: ModelSource, spec: PipelineSpec, out_dir: Path) -> dict[str, Any]:
    """Write ``model.onnx`` and ``tokenizer.json`` for ``source`` into ``out_dir``; return manifest fields."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    logging.getLogger("transformers").setLevel(logging.ERROR)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    model_dir = Path(source.path) / spec.transformer_dir
    # Eager attention exports as plain MatMul/Softmax, which ORT fuses and quantises well.
    encoder = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    backend_tok = getattr(tokenizer, "backend_tokenizer", None)
    if backend_tok is None:
        raise KoembedError(f"model {source.name!r}: no fast tokenizer (tokenizer.json); use --backend torch")
    backend_tok.no_truncation()
    backend_tok.no_padding()
    backend_tok.save(str(out_dir / "tokenizer.json"))

    accepts_types = "token_type_ids" in _forward_params(encoder)
    inputs = INPUTS if accepts_types else INPUTS[:2]
    graph = _pipeline_module(encoder, spec.pooling, spec.normalize, accepts_types)
    example = _example_batch(tokenizer, len(inputs))
    seq = torch.export.Dim("seq", min=2, max=int(encoder.config.max_position_embeddings))
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter reports progress on stdout, which may be a JSONL stream (`koembed encode -o -`).
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            tuple(torch.from_numpy(example[name]) for name in inputs),
            str(out_dir / "model.onnx"),
            dynamo=True,
            external_data=False,
            input_names=list(inputs),
            output_names=[OUTPUT],
            opset_version=OPSET,
            dynamic_shapes={name: {0: batch, 1: seq} for name in inputs},
            verbose=False,
        )
        expected = graph(*(torch.from_numpy(example[name]) for name in inputs)).numpy()
    _verify(out_dir / "model.onnx", {n: example[n] for n in inputs}, expected, source.name)
    return {
        "inputs": list(inputs),
        "pad_id": int(tokenizer.pad_token_id or 0),
        "torch": torch.__version__,
        "opset": OPSET,
    }


def _pipeline_module(encoder, pooling: tuple[str, ...], normalize: bool, with_types: bool):
    """``encoder`` + pooling (+ normalisation) as one module; defined here so importing this file needs no torch."""
    import torch

    class SentencePipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"token_type_ids": token_type_ids} if with_types else {}
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
            return _pool(torch, hidden, attention_mask, pooling, normalize)

    return SentencePipeline().eval()


def _pool(torch, hidden, attention_mask, modes: tuple[str, ...], normalize: bool):
    # Same arithmetic as sentence-transformers' Pooling on right-padded batches.
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    out = []
    for mode in modes:
        if mode == "cls":
            out.append(hidden[:, 0])
        elif mode == "max":
            out.append(hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values)
        else:
            count = torch.clamp(mask.sum(dim=1), min=1e-9)
            total = (hidden * mask).sum(dim=1)
            out.append(total / (count if mode == "mean" else torch.sqrt(count)))
    emb = out[0] if len(out) == 1 else torch.cat(out, dim=-1)
    if normalize:
        emb = torch.nn.functional.normalize(emb, p=2, dim=1)
    return emb


def _forward_params(model) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def _example_batch(tokenizer, n_inputs: int) -> dict[str, np.ndarray]:
    # Different lengths, so padding and the attention mask are exercised by the check.
    texts = ["한국어 문장 임베딩을 내보냅니다.", "짧은 문장", "검색과 군집화에 쓰는 벡터를 만듭니다, 조금 더 길게."]
    enc = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="np")
    batch = {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}
    batch["token_type_ids"] = np.zeros_like(batch["input_ids"])
    return batch


def _verify(path: Path, feed: dict[str, np.ndarray], expected: np.ndarray, name: str) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], feed)[0]
    err = float(np.abs(got - expected).max())
    if not np.isfinite(err) or err > EXPORT_TOLERANCE:
        raise KoembedError(
            f"model {name!r}: the ONNX export differs from PyTorch by {err:.2e} (> {EXPORT_TOLERANCE}); "
            "use --backend torch"
        )

