"""Self-attention relations as log-probabilities: pure tensor maths, no model code.

Shapes: ``q``, ``k``, ``v`` are ``(batch, heads, seq, head_dim)``; ``key_mask`` is ``(batch, seq)``
bool/0-1, true for real tokens. Every function returns log-probabilities ``(batch, heads, seq, seq)``
over the last (key) axis, computed in float32 whatever the input dtype: the KL of two nearly equal
distributions loses everything in bf16.

Padded keys get a very negative logit (not ``-inf``), so rows stay finite and the KL can mask them
out exactly; padded query rows are left as they fall and are excluded by the loss.
"""

from __future__ import annotations

import math

import torch

_NEG = torch.finfo(torch.float32).min / 2


def relation_log_probs(x: torch.Tensor, y: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``log softmax(x @ y^T / sqrt(d))`` over keys; ``x``, ``y``: ``(B, H, S, d)`` -> ``(B, H, S, S)``."""
    x, y = x.float(), y.float()
    scores = torch.matmul(x, y.transpose(-1, -2)) / math.sqrt(x.shape[-1])
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask.bool()[:, None, None, :], _NEG)
    return torch.log_softmax(scores, dim=-1)


def attention_log_probs(q: torch.Tensor, k: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The self-attention distribution softmax(Q K^T / sqrt(d_head)) that BERT computes, as log-probs."""
    return relation_log_probs(q, k, key_mask)


def value_relation_log_probs(v: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """MiniLM's value relation softmax(V V^T / sqrt(d_head)), as log-probs."""
    return relation_log_probs(v, v, key_mask)


def split_relation_heads(x: torch.Tensor, num_relation_heads: int) -> torch.Tensor:
    """Regroup attention heads ``(B, H, S, d)`` into ``(B, R, S, H*d/R)`` relation heads (MiniLM v2).

    Concatenating the heads first and re-splitting makes teacher and student comparable whatever
    their own head counts, as long as both hidden sizes divide by ``R``.
    """
    b, h, s, d = x.shape
    if (h * d) % num_relation_heads:
        raise ValueError(f"hidden size {h * d} is not divisible by {num_relation_heads} relation heads")
    merged = x.transpose(1, 2).reshape(b, s, h * d)
    return merged.view(b, s, num_relation_heads, -1).transpose(1, 2)


def self_relation_log_probs(x: torch.Tensor, num_relation_heads: int, key_mask: torch.Tensor | None = None):
    """MiniLM v2 Q-Q / K-K / V-V relation: ``x`` regrouped into relation heads, then softmax(x x^T / sqrt(d_r))."""
    r = split_relation_heads(x, num_relation_heads)
    return relation_log_probs(r, r, key_mask)
