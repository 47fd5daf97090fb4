"""Student architectures: the KoMiniLM presets, CONFIG.json files, and initialisation (random or from the teacher).

A CONFIG.json (or a preset) lists only the fields that differ from ``BertConfig``'s defaults; the
student always uses the teacher's tokenizer, so its vocabulary must match the teacher's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from koembed.errors import InputError

_SEED_COMMON = {"hidden_act": "gelu", "vocab_size": 32000, "max_position_embeddings": 512, "type_vocab_size": 2,
                "layer_norm_eps": 1e-12, "num_hidden_layers": 6, "num_attention_heads": 12}
# The seed's two KoMiniLM configs (BM-K/KoMiniLM), distilled from klue/bert-base.
PRESETS: dict[str, dict[str, Any]] = {
    "kominilm-23m": {**_SEED_COMMON, "hidden_size": 384, "intermediate_size": 1536},
    "kominilm-68m": {**_SEED_COMMON, "hidden_size": 768, "intermediate_size": 3072},
}


def student_fields(spec: str | dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The BertConfig fields of a preset name, a CONFIG.json path or a dict, with ``overrides`` applied."""
    if isinstance(spec, dict):
        fields = dict(spec)
    elif spec in PRESETS:
        fields = dict(PRESETS[spec])
    else:
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"student {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a CONFIG.json file")
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a UTF-8 JSON object ({exc}); fix the file") from None
        if not isinstance(fields, dict):
            raise InputError(f"{path}: expected a JSON object of BertConfig fields, got {type(fields).__name__}")
    fields.update({k: v for k, v in (overrides or {}).items() if v is not None})
    fields.pop("architectures", None)
    return fields


def student_config(spec: str | dict[str, Any], teacher_config: Any = None, overrides: dict[str, Any] | None = None):
    """A ``BertConfig`` for the student; its vocabulary, pad id and positions follow the teacher's when unset.

    An explicit ``vocab_size`` that differs from the teacher's is refused: the student reads the
    teacher's token ids, so they must index the same table.
    """
    from transformers import BertConfig

    from distill.taps import usable_positions

    fields = student_fields(spec, overrides)
    unknown = sorted(set(fields) - set(BertConfig().to_dict()))
    if unknown:
        raise InputError(f"student config: unknown BertConfig field(s) {', '.join(unknown)}")
    if teacher_config is not None:
        tv = teacher_config.vocab_size
        if "vocab_size" in fields and fields["vocab_size"] != tv:
            raise InputError(f"teacher/student vocabulary mismatch: the student config has vocab_size "
                             f"{fields['vocab_size']}, the teacher {tv}; the student uses the teacher's tokenizer, "
                             "so set vocab_size to the teacher's (or leave it out of CONFIG.json)")
        fields.setdefault("vocab_size", tv)
        fields.setdefault("pad_token_id", teacher_config.pad_token_id)
        fields.setdefault("max_position_embeddings", usable_positions(teacher_config))
        fields.setdefault("type_vocab_size", teacher_config.type_vocab_size)
    try:
        config = BertConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise InputError(f"student config: {exc}") from None
    if config.hidden_size % config.num_attention_heads:
        raise InputError(f"student config: hidden_size {config.hidden_size} is not divisible by "
                         f"num_attention_heads {config.num_attention_heads}")
    config.architectures = ["BertModel"]
    return config


def build_student(config: Any, teacher: Any = None, init_pairs: Sequence[tuple[int, int]] | None = None,
                  seed: int = 0):
    """A ``BertModel`` from ``config``: random, then (if ``init_pairs``) teacher weights copied where shapes match.

    ``init_pairs`` are (student layer, teacher layer); embeddings are copied too when their shapes
    match. Returns ``(model, copied)`` with the names of the copied tensors.
    """
    import torch
    from transformers import BertModel

    torch.manual_seed(seed)
    model = BertModel(config)
    copied: list[str] = []
    if teacher is not None and init_pairs:
        from distill.taps import bert_of

        if teacher.config.model_type != "bert":
            raise InputError(f"--init-from-teacher copies BERT weights by name; the teacher is a "
                             f"{teacher.config.model_type!r} model, whose blocks mean something else; "
                             "start the student from random weights")

        t_state = bert_of(teacher).state_dict()
        s_state = model.state_dict()
        name_map = {k: k for k in s_state if k.startswith("embeddings.")}
        for s, t in init_pairs:
            for k in s_state:
                if k.startswith(f"encoder.layer.{s}."):
                    name_map[k] = k.replace(f"encoder.layer.{s}.", f"encoder.layer.{t}.", 1)
        with torch.no_grad():
            for sk, tk in name_map.items():
                if tk in t_state and t_state[tk].shape == s_state[sk].shape:
                    s_state[sk].copy_(t_state[tk])
                    copied.append(sk)
    return model, copied


def presets_json() -> str:
    return json.dumps(PRESETS, indent=2, sort_keys=True)
