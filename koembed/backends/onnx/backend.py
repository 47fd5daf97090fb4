"""ONNX Runtime backends: ``onnx`` (fp32) and ``onnx-int8``, on CPU, without torch at inference time.

A model that ships its graph (the embedded one, in ``onnx/``) uses it as is. Other models are exported
on first use (encoder + pooling + normalisation in one graph, with a message on an interactive stderr)
and, for int8, quantised; both are cached by model fingerprint (see :mod:`koembed.backends.onnx.cache`).
Inference then needs only ``onnxruntime``, ``tokenizers`` and numpy: texts are tokenised in one batched
Rust call, sorted by length and cut into sub-batches padded only to their own longest text.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from koembed.backends.onnx.cache import artefact_dir, discard, ensure_artefact, shipped_artefact
from koembed.backends.onnx.pipeline import PipelineSpec, read_pipeline
from koembed.backends.onnx.shared_weights import SHARED_KEY, external_initializers
from koembed.backends.tokens import TextTokenizer, Tokens
from koembed.errors import KoembedError, MissingExtraError
from koembed.model_source import ModelSource
from koembed.system import cpu_count

# Sub-batch size inside one ``embed`` call: ORT on CPU gains little per text past this, and smaller
# sub-batches keep padding low when lengths vary (see docs/benchmarks.md, ## Encoding).
DEFAULT_SUB_BATCH = 32
# int8 runs fastest on smaller sub-batches (less padding; its kernels gain less from wide batches): on the
# 23M architecture, 1 thread, 549 texts per CPU-second at 16 against 504 at 32 (docs/benchmarks.md).
INT8_SUB_BATCH = 16
# Thread count: this env, else OMP_NUM_THREADS (which worker pools set per process), else the usable CPUs.
THREADS_ENVS = ("KOEMBED_THREADS", "OMP_NUM_THREADS")


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise MissingExtraError(
            "the onnx backends need onnxruntime, a dependency of koembed itself that is missing: pip install "
            "onnxruntime (or use the torch backend (backend='torch', --backend torch))"
        ) from None
    return onnxruntime


def default_threads() -> int:
    """``$KOEMBED_THREADS``, ``$OMP_NUM_THREADS``, or the CPUs this process may run on."""
    for name in THREADS_ENVS:
        env = os.environ.get(name)
        if env:
            try:
                return max(1, int(env))
            except ValueError:
                raise KoembedError(f"{name}={env!r} is not a whole number of threads") from None
    return cpu_count()


class OnnxBackend:
    """fp32 ONNX Runtime backend; ``threads`` sets ``intra_op_num_threads`` (default: all usable CPUs)."""

    variant = "fp32"
    default_sub_batch = DEFAULT_SUB_BATCH

    def __init__(
        self,
        source: ModelSource,
        device: str | None = None,
        max_seq_length: int | None = None,
        threads: int | None = None,
        sub_batch: int | None = None,
    ) -> None:
        if device not in (None, "cpu"):
            raise KoembedError(f"the onnx backends run on CPU only (got device={device!r}); use the "
                               f"torch backend (backend='torch', --backend torch)")
        ort = import_onnxruntime()
        self.spec: PipelineSpec = read_pipeline(source)
        self.dim = self.spec.dim
        self.normalizes = self.spec.normalize
        self.max_seq_length = int(max_seq_length or self.spec.max_seq_length)
        self.threads = int(threads or default_threads())
        self.sub_batch = max(1, int(sub_batch or self.default_sub_batch))
        self.folder, self.manifest = self._artefact(source)
        self.tokenizer = TextTokenizer.from_file(self.folder / "tokenizer.json", self.manifest["pad_id"],
                                                 lowercase=self.spec.do_lower_case)
        self._session = self._open_session(ort, source)
        self._inputs = list(self.manifest["inputs"])

    def _artefact(self, source: ModelSource) -> tuple[Path, dict[str, Any]]:
        shipped = shipped_artefact(source)
        if shipped is not None:
            return shipped
        folder = artefact_dir(source, "fp32")
        return folder, ensure_artefact(folder, lambda tmp: self._export(source, tmp))

    def _export(self, source: ModelSource, tmp: Path) -> dict[str, Any]:
        from koembed.backends.onnx.export import export_artefact

        if sys.stderr.isatty():  # first use of this model only; seconds to a minute, so say what is happening
            print(f"exporting {source.name} to ONNX (once; cached in {tmp.parent})", file=sys.stderr, flush=True)
        return export_artefact(source, self.spec, tmp)

    def _open_session(self, ort, source: ModelSource):
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        path = self.folder / self.manifest.get("file", "model.onnx")
        shared = self.manifest.get(SHARED_KEY)
        keep_alive = None
        if shared:  # a shipped graph whose big tensors live in the model's safetensors (one copy in the package)
            names, values, keep_alive = external_initializers(self.folder.parent, shared)
            options.add_external_initializers(names, values)
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            del keep_alive  # ORT has copied the shared weights into the session
            return session
        except Exception as exc:  # a damaged cache file; rebuild it once
            discard(self.folder)
            self.folder, self.manifest = self._artefact(source)
            path = self.folder / self.manifest.get("file", "model.onnx")
            try:
                return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception:
                raise KoembedError(f"cannot load ONNX model {path} ({exc}); use the torch backend "
                                   f"(backend='torch', --backend torch)") from None

    def tokenize(self, texts: list[str]) -> Tokens:
        return self.tokenizer.tokenize(texts)

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        return self.tokenize(texts).lengths

    def embed_tokens(self, tokens: Tokens) -> np.ndarray:
        out = np.empty((len(tokens), self.dim), dtype=np.float32)
        order = np.argsort(-tokens.lengths, kind="stable")
        for s in range(0, len(order), self.sub_batch):
            idx = order[s : s + self.sub_batch]
            ids, mask = self.tokenizer.pad(tokens.take(idx), self.max_seq_length)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            out[idx] = self._session.run(["sentence_embedding"], feed)[0]
        return out


class OnnxInt8Backend(OnnxBackend):
    """int8 weights and activations where it is safe (see :mod:`koembed.backends.onnx.quantize`), fp32 elsewhere."""

    variant = "int8"
    default_sub_batch = INT8_SUB_BATCH

    def __init__(self, source: ModelSource, *args: Any, quantization: str | None = None, **kwargs: Any) -> None:
        from koembed.backends.onnx.quantize import QuantConfig

        self.quant = QuantConfig.named(quantization)
        super().__init__(source, *args, **kwargs)

    def _artefact(self, source: ModelSource) -> tuple[Path, dict[str, Any]]:
        fp32_folder, fp32_manifest = super()._artefact(source)
        folder = artefact_dir(source, f"int8-{self.quant.key()}")

        def build(tmp: Path) -> dict[str, Any]:
            from koembed.backends.onnx.quantize import quantize_model

            fields = quantize_model(fp32_folder, tmp, self.quant, fp32_manifest)
            # The quantised graph holds its own weights, whatever the fp32 graph borrowed from safetensors.
            base = {k: v for k, v in fp32_manifest.items() if k != SHARED_KEY}
            return base | fields | {"variant": "int8"}

        return folder, ensure_artefact(folder, build)
