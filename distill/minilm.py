"""MiniLM self-attention distillation (``python -m distill run``): a frozen teacher, a student, the relation loss.

A frozen teacher copy runs on each process (eval mode, ``no_grad``); both models are tapped at the
mapped layers (:mod:`distill.taps`) and the student learns the teacher's attention and value relations
(:mod:`distill.losses`) in the shared loop of :mod:`distill.loop`. The output folder holds the student
as a Hugging Face ``BertModel`` (config.json, weights, the teacher's tokenizer files),
``distill_config.json`` and the loop's logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.loop import LoopConfig, make_accelerator, prepare_output, run_loop
from koembed.errors import InputError


@dataclass
class DistillConfig(LoopConfig):
    teacher: str = "klue/bert-base"  # folder or Hub id of a BERT
    student: str = "kominilm-23m"  # preset name or CONFIG.json
    student_overrides: dict[str, Any] = field(default_factory=dict)  # BertConfig fields over the preset
    layer_map: str = "uniform"  # uniform | last (MiniLM v1) | "s:t,s:t" | "t,t,..."
    relation_heads: int = 0  # >0: MiniLM v2 Q-Q/K-K/V-V relations with this many relation heads
    init_from_teacher: bool = False  # copy teacher layers (per the layer map) where shapes match
    attention_path: str = "hooks"  # hooks (Q/K from hooks, SDPA kept) | attentions (eager output_attentions)


def load_teacher(name: str):
    """``(source, BertModel, tokenizer)`` for a folder or Hub id; the model is frozen, in eval mode."""
    from transformers import AutoModel, AutoTokenizer

    from distill.taps import TAPPABLE
    from koembed.model_source import resolve_model

    source = resolve_model(name)
    model = AutoModel.from_pretrained(source.path)
    if getattr(model.config, "model_type", "") not in TAPPABLE:
        raise InputError(f"teacher {name!r} is a {model.config.model_type!r} model; distillation taps need one of "
                         f"{', '.join(TAPPABLE)}")
    tokenizer = AutoTokenizer.from_pretrained(source.path)
    if len(tokenizer) > model.config.vocab_size:
        raise InputError(f"teacher {name!r}: its tokenizer has {len(tokenizer)} tokens but the model only "
                         f"{model.config.vocab_size} embeddings; the folder mixes two models")
    model.eval().requires_grad_(False)
    return source, model, tokenizer


def check_heads(teacher_cfg: Any, student_cfg: Any, relation_heads: int) -> None:
    th, sh = teacher_cfg.num_attention_heads, student_cfg.num_attention_heads
    if not relation_heads and th != sh:
        raise InputError(f"mismatched head counts: the teacher has {th} attention heads, the student {sh}; "
                         "pass --relation-heads R (MiniLM v2 relations) or give the student the teacher's head count")
    for who, c in (("teacher", teacher_cfg), ("student", student_cfg)):
        if relation_heads and c.hidden_size % relation_heads:
            raise InputError(f"--relation-heads {relation_heads} does not divide the {who}'s hidden size "
                             f"{c.hidden_size}")


def distill(cfg: DistillConfig) -> Path:
    """Distil ``cfg.teacher`` into a student per ``cfg``; return the output folder (a HF ``BertModel``)."""
    import torch
    from accelerate.utils import set_seed

    from distill.data import check_sources
    from distill.layer_map import parse_layer_map
    from distill.losses import MiniLMLoss
    from distill.student import build_student, student_config
    from distill.taps import TappedBert, usable_positions

    if cfg.attention_path not in ("hooks", "attentions"):
        raise InputError(f"attention_path must be 'hooks' or 'attentions', got {cfg.attention_path!r}")
    check_sources(cfg.corpus, cfg.text_field)
    _, teacher, tokenizer = load_teacher(cfg.teacher)
    s_config = student_config(cfg.student, teacher.config, cfg.student_overrides)
    pairs = parse_layer_map(cfg.layer_map, s_config.num_hidden_layers, teacher.config.num_hidden_layers)
    check_heads(teacher.config, s_config, cfg.relation_heads)
    if cfg.attention_path == "attentions":
        # output_attentions returns probabilities after attention dropout: a noisy, different target.
        s_config.attention_probs_dropout_prob = 0.0
    limit = min(usable_positions(teacher.config), s_config.max_position_embeddings)
    if cfg.max_length > limit:
        raise InputError(f"--max-length {cfg.max_length} exceeds the {limit} positions of the teacher/student")
    out = prepare_output(cfg, "distill_config.json")

    accelerator = make_accelerator(cfg)
    set_seed(cfg.seed)
    student, _ = build_student(s_config, teacher, pairs if cfg.init_from_teacher else None, seed=cfg.seed)
    t_taps = TappedBert(teacher, [t for _, t in pairs], mode=cfg.attention_path).to(accelerator.device)
    s_taps = TappedBert(student, [s for s, _ in pairs], mode=cfg.attention_path)
    loss_fn = MiniLMLoss(pairs, cfg.relation_heads or None)

    def step_fn(model, ids, mask):
        with torch.no_grad(), accelerator.autocast():
            t = t_taps(ids, mask)
        return loss_fn(t, model(ids, mask), mask)

    def save_final(folder: Path) -> None:
        bert = accelerator.unwrap_model(s_taps).bert
        bert.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    run_loop(cfg, accelerator, s_taps, step_fn, tokenizer, save_final)
    return out
