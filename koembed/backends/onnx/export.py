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
# A shipped graph must agree with torch at least this well on real sentences (mean cosine), checked
# where it is built (the recipe's packaging step) and by the test suite; vectors of the two backends
# are then interchangeable in one index.
SHIPPED_MIN_COSINE = 0.9999


def export_artefact(source: ModelSource, spec: PipelineSpec, out_dir: Path) -> dict[str, Any]:
    """Export ``source`` into ``out_dir`` (see :func:`export_model`) and return the artefact's whole manifest."""
    from koembed.backends.onnx.cache import export_key

    fields = export_model(source, spec, out_dir)
    return fields | {"variant": "fp32", "model": source.name, "pipeline": spec.as_dict(),
                     "export_key": export_key(source)}


def ship_graph(model_dir: str | Path) -> dict[str, Any]:
    """Export the model folder ``model_dir`` into its own ``onnx/`` folder (replacing one there); return the manifest.

    A model that carries its graph is used by the onnx backends without exporting (and so without torch).
    """
    import json
    import shutil
    import tempfile

    from koembed.backends.onnx.cache import MANIFEST, SHIPPED_DIR
    from koembed.backends.onnx.pipeline import read_pipeline
    from koembed.model_source import resolve_model

    source = resolve_model(Path(model_dir))
    final = Path(source.path) / SHIPPED_DIR
    # Built beside the model folder, not in it: files there would enter the model's fingerprint mid-export.
    tmp = Path(tempfile.mkdtemp(prefix=f".{Path(source.path).name}-{SHIPPED_DIR}-", dir=Path(source.path).parent))
    try:
        manifest = export_artefact(source, read_pipeline(source), tmp)
        weights = Path(source.path) / "model.safetensors"
        if weights.is_file():  # the graph reads its big tensors from there: one copy of the weights ships
            from koembed.backends.onnx.shared_weights import SHARED_KEY, share_weights

            manifest[SHARED_KEY] = share_weights(tmp / manifest.get("file", "model.onnx"), weights)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        for f in tmp.iterdir():
            f.chmod(0o644)  # shipped inside the package: readable by every user
        tmp.chmod(0o755)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def export_model(source: ModelSource, spec: PipelineSpec, out_dir: Path) -> dict[str, Any]:
    """Write ``model.onnx`` and ``tokenizer.json`` for ``source`` into ``out_dir``; return manifest fields.

    The graph is exported, given ORT's fused BERT operators when they keep it within
    ``EXPORT_TOLERANCE`` of torch (else left unfused), and its fp16-valued weights stored in fp16
    (:mod:`koembed.backends.onnx.graph`). The check compares with the plain sentence-transformers
    computation (2-D attention mask), not with the exported module.
    """
    import onnx
    import torch
    from transformers import AutoModel, AutoTokenizer

    from koembed.backends.onnx.graph import fuse_bert, store_fp16
    from koembed.backends.torch_backend import quiet_hf_loading

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    model_dir = Path(source.path) / spec.transformer_dir
    with quiet_hf_loading():
        # Eager attention exports as plain MatMul/Softmax, which ORT fuses and quantises well.
        encoder = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    backend_tok = getattr(tokenizer, "backend_tokenizer", None)
    if backend_tok is None:
        raise KoembedError(f"model {source.name!r}: no fast tokenizer (tokenizer.json); use the torch "
                           f"backend (backend='torch', --backend torch)")
    backend_tok.no_truncation()
    backend_tok.no_padding()
    backend_tok.save(str(out_dir / "tokenizer.json"))

    accepts_types = "token_type_ids" in _forward_params(encoder)
    inputs = INPUTS if accepts_types else INPUTS[:2]
    example = _example_batch(tokenizer, len(inputs))
    tensors = tuple(torch.from_numpy(example[name]) for name in inputs)
    feed = {n: example[n] for n in inputs}
    seq = torch.export.Dim("seq", min=2, max=int(encoder.config.max_position_embeddings))
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        expected = _pipeline_module(encoder, spec.pooling, spec.normalize, accepts_types, False)(*tensors).numpy()
    raw, target = out_dir / "model.raw.onnx", out_dir / "model.onnx"
    err, fused, fp16_saved = float("inf"), {}, 0
    # Fastest first; the first graph within tolerance of torch wins (fusion and the 4-D mask are optimisations).
    for additive, fuse in ((True, True), (True, False), (False, False)):
        try:
            if fuse or not additive or not raw.exists():
                module = _pipeline_module(encoder, spec.pooling, spec.normalize, accepts_types, additive)
                # The exporter reports progress on stdout, which may be a JSONL stream (`koembed encode -o -`).
                with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")
                    torch.onnx.export(module, tensors, str(raw), dynamo=True, external_data=False,
                                      input_names=list(inputs), output_names=[OUTPUT], opset_version=OPSET,
                                      dynamic_shapes={name: {0: batch, 1: seq} for name in inputs}, verbose=False)
            model = onnx.load(str(raw))
            fused = {}
            if fuse:
                model, fused = fuse_bert(model, encoder.config.num_attention_heads, encoder.config.hidden_size)
            fp16_saved = store_fp16(model)
            onnx.save(model, str(target))
            err = _max_error(target, feed, expected)
        except Exception:  # the next, plainer graph is tried; the last failure is reported below
            err = float("inf")
        if err <= EXPORT_TOLERANCE:
            break
    raw.unlink(missing_ok=True)
    if not err <= EXPORT_TOLERANCE:
        raise KoembedError(
            f"model {source.name!r}: the ONNX export differs from PyTorch by {err:.2e} (> {EXPORT_TOLERANCE}); "
            "use the torch backend (backend='torch', --backend torch)"
        )
    return {
        "inputs": list(inputs),
        "pad_id": int(tokenizer.pad_token_id or 0),
        "torch": torch.__version__,
        "opset": OPSET,
        "fused": fused,
        "fp16_bytes_saved": fp16_saved,
        "max_abs_diff": err,
    }


def _pipeline_module(encoder, pooling: tuple[str, ...], normalize: bool, with_types: bool, additive_mask: bool):
    """``encoder`` + pooling (+ normalisation) as one module; defined here so importing this file needs no torch.

    ``additive_mask`` hands the encoder a prepared 4-D mask, ``(1 - mask) * min``: the same arithmetic
    as transformers' own, in the form ORT's attention fusion recognises.
    """
    import torch

    class SentencePipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"token_type_ids": token_type_ids} if with_types else {}
            mask = attention_mask
            if additive_mask:
                mask = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
            hidden = self.encoder(input_ids=input_ids, attention_mask=mask, **kwargs).last_hidden_state
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


def _max_error(path: Path, feed: dict[str, np.ndarray], expected: np.ndarray) -> float:
    """Largest absolute difference between the graph at ``path`` and ``expected`` (inf if not finite)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    err = float(np.abs(session.run([OUTPUT], feed)[0] - expected).max())
    return err if np.isfinite(err) else float("inf")
