"""MiniLM distillation losses: masked KL divergences between teacher and student self-attention relations.

Shapes: log-probabilities are ``(batch, heads, seq, seq)`` (query axis, then key axis); Q/K/V are
``(batch, heads, seq, head_dim)``; ``mask`` is ``(batch, seq)``, true for real tokens (None = all real).
Each KL is KL(teacher || student) summed over keys, then averaged over heads and valid query tokens
of the whole batch; padded keys and padded queries contribute nothing, so padding never changes a loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from distill.relations import attention_log_probs, self_relation_log_probs, value_relation_log_probs

QKVTuple = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def masked_kl(teacher_logp: torch.Tensor, student_logp: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(teacher || student) over the last axis, averaged over heads and valid query positions -> scalar."""
    if teacher_logp.shape != student_logp.shape:
        raise ValueError(f"relation shapes differ: teacher {tuple(teacher_logp.shape)}, "
                         f"student {tuple(student_logp.shape)}")
    kl = teacher_logp.exp() * (teacher_logp - student_logp)
    if mask is None:
        return kl.sum(-1).mean()
    m = mask.bool()
    per_query = kl.masked_fill(~m[:, None, None, :], 0.0).sum(-1)  # (B, H, S)
    per_query = per_query.masked_fill(~m[:, None, :], 0.0)
    return per_query.sum() / (m.sum() * teacher_logp.shape[1]).clamp(min=1)


def attention_kl(teacher: QKVTuple, student: QKVTuple, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Self-attention distribution transfer (MiniLM): needs the same number of heads on both sides.

    A 4th tuple element (``Tap.attn``), when present, is taken as the ready-made log attention probabilities.
    """
    return masked_kl(_attention_logp(teacher, mask), _attention_logp(student, mask), mask)


def _attention_logp(x: tuple, mask: torch.Tensor | None) -> torch.Tensor:
    if len(x) > 3 and x[3] is not None:
        return x[3]
    return attention_log_probs(x[0], x[1], mask)


def value_relation_kl(teacher: QKVTuple, student: QKVTuple, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Self-attention value-relation transfer (MiniLM): KL between softmax(V V^T / sqrt(d_head)) per head."""
    return masked_kl(value_relation_log_probs(teacher[2], mask), value_relation_log_probs(student[2], mask), mask)


def self_relation_kl(teacher_x: torch.Tensor, student_x: torch.Tensor, relation_heads: int,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """MiniLM v2 Q-Q / K-K / V-V relation transfer over ``relation_heads`` regrouped heads."""
    return masked_kl(self_relation_log_probs(teacher_x, relation_heads, mask),
                     self_relation_log_probs(student_x, relation_heads, mask), mask)


@dataclass
class LossOutput:
    total: torch.Tensor  # what is back-propagated: the sum of every part over every layer pair
    parts: dict[str, torch.Tensor]  # per relation kind, summed over pairs ("attention", "value_relation" | "qq"...)
    pairs: dict[str, torch.Tensor]  # per layer pair "s<i>-t<j>", summed over kinds


class MiniLMLoss(nn.Module):
    """Attention-distribution + value-relation KL (v1), or Q-Q/K-K/V-V relation KL (v2), over a layer map.

    ``forward(teacher, student, mask)`` takes one ``(q, k, v)`` tuple per layer pair, in ``layer_map``
    order, for each model (:class:`distill.taps.Tap` records, as :class:`distill.taps.TappedBert` returns them).
    """

    def __init__(self, layer_map: Sequence[tuple[int, int]], relation_heads: int | None = None):
        super().__init__()
        self.layer_map = [tuple(p) for p in layer_map]
        self.relation_heads = relation_heads

    @property
    def part_names(self) -> list[str]:
        return ["qq", "kk", "vv"] if self.relation_heads else ["attention", "value_relation"]

    def forward(self, teacher: Sequence[QKVTuple], student: Sequence[QKVTuple],
                mask: torch.Tensor | None = None) -> LossOutput:
        if len(teacher) != len(self.layer_map) or len(student) != len(self.layer_map):
            raise ValueError(f"expected {len(self.layer_map)} tapped layers per model, got teacher {len(teacher)}, "
                             f"student {len(student)}")
        parts = {name: [] for name in self.part_names}
        pairs: dict[str, torch.Tensor] = {}
        for (s_layer, t_layer), t, s in zip(self.layer_map, teacher, student, strict=True):
            if self.relation_heads:
                terms = [self_relation_kl(t[i], s[i], self.relation_heads, mask) for i in range(3)]
            else:
                terms = [attention_kl(t, s, mask), value_relation_kl(t, s, mask)]
            for name, term in zip(self.part_names, terms, strict=True):
                parts[name].append(term)
            pairs[f"s{s_layer}-t{t_layer}"] = sum(terms)
        summed = {name: torch.stack(v).sum() for name, v in parts.items()}
        return LossOutput(total=sum(summed.values()), parts=summed, pairs=pairs)
