"""What a model folder's sentence pipeline is (pooling, normalisation, length), read from its JSON files alone.

The ONNX backend bakes this pipeline into the exported graph, so it must know it without importing
torch or sentence-transformers. Only what the graph reproduces exactly is accepted; any other module
(Dense, LayerNorm, a custom one) is refused with a pointer to the torch backend.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from koembed.errors import KoembedError
from koembed.model_source import ModelSource

SUPPORTED_POOLING = ("cls", "max", "mean", "mean_sqrt_len_tokens")
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


@dataclass(frozen=True)
class PipelineSpec:
    """Transformer -> pooling (modes concatenated, in this order) -> optional L2 normalisation."""

    transformer_dir: str  # folder holding config.json and the weights (relative to the model folder)
    pooling: tuple[str, ...]
    normalize: bool
    max_seq_length: int
    do_lower_case: bool
    hidden_size: int

    @property
    def dim(self) -> int:
        return self.hidden_size * len(self.pooling)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"pooling": list(self.pooling)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineSpec:
        return cls(**(d | {"pooling": tuple(d["pooling"])}))


def read_pipeline(source: ModelSource) -> PipelineSpec:
    """The pipeline of ``source``: a sentence-transformers folder's modules, or mean pooling for a bare encoder."""
    root = Path(source.path)
    if source.kind != "sentence-transformers":
        return _spec(root, "", ("mean",), normalize=False, st_config={})
    modules = _load_json(root / "modules.json")
    transformer_dir, pooling, normalize, st_config = None, None, False, {}
    for i, module in enumerate(modules):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = module.get("path", "")
        if kind == "Transformer" and i == 0:
            transformer_dir = path
            cfg = root / path / "sentence_bert_config.json"
            st_config = _load_json(cfg) if cfg.is_file() else {}
        elif kind == "Pooling" and pooling is None and transformer_dir is not None:
            pooling = _pooling_modes(root / path / "config.json", source.name)
        elif kind == "Normalize" and pooling is not None and not normalize:
            normalize = True
        else:
            raise KoembedError(
                f"model {source.name!r}: module {i} ({module.get('type')}) is not supported by the onnx backends, "
                "which handle Transformer -> Pooling -> Normalize; use the torch backend "
                "(backend='torch', --backend torch)"
            )
    if transformer_dir is None or pooling is None:
        raise KoembedError(
            f"model {source.name!r}: modules.json needs a Transformer followed by a Pooling module for the onnx "
            "backends; use the torch backend (backend='torch', --backend torch)"
        )
    return _spec(root, transformer_dir, pooling, normalize, st_config)


def _spec(root: Path, transformer_dir: str, pooling: tuple[str, ...], normalize: bool,
          st_config: dict[str, Any]) -> PipelineSpec:
    config = _load_json(root / transformer_dir / "config.json")
    max_positions = int(config.get("max_position_embeddings", 512))
    max_len = st_config.get("max_seq_length")
    if max_len is None:
        # Same rule as sentence-transformers: the tokenizer's limit, capped by the position table.
        tok_cfg = root / transformer_dir / "tokenizer_config.json"
        tok_max = _load_json(tok_cfg).get("model_max_length") if tok_cfg.is_file() else None
        max_len = min(int(tok_max), max_positions) if isinstance(tok_max, (int, float)) else max_positions
    return PipelineSpec(
        transformer_dir=transformer_dir,
        pooling=pooling,
        normalize=normalize,
        max_seq_length=int(max_len),
        do_lower_case=bool(st_config.get("do_lower_case", False)),
        hidden_size=int(config["hidden_size"]),
    )


def _pooling_modes(path: Path, name: str) -> tuple[str, ...]:
    cfg = _load_json(path)
    mode = cfg.get("pooling_mode")
    if mode is None:
        modes = tuple(m for k, m in _LEGACY_POOLING_KEYS.items() if cfg.get(k)) or ("mean",)
    else:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    unsupported = [m for m in modes if m not in SUPPORTED_POOLING]
    if unsupported:
        raise KoembedError(
            f"model {name!r}: pooling mode {unsupported[0]!r} ({path}) is not supported by the onnx backends "
            f"(supported: {', '.join(SUPPORTED_POOLING)}); use the torch backend (backend='torch', --backend torch)"
        )
    if cfg.get("include_prompt") is False:
        raise KoembedError(f"model {name!r}: include_prompt=false pooling ({path}) needs the torch "
                           f"backend (backend='torch', --backend torch)")
    return modes


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KoembedError(f"model file {path} is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise KoembedError(f"model file {path} is not valid JSON ({exc})") from None
