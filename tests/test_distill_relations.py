"""Relations, KL and layer maps against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from distill.layer_map import parse_layer_map, uniform_layer_map
from distill.losses import masked_kl
from distill.relations import (
    attention_log_probs,
    self_relation_log_probs,
    split_relation_heads,
    value_relation_log_probs,
)
from koembed.errors import InputError


def _t(rows) -> torch.Tensor:
    """(S, d) rows -> (1, 1, S, d)."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def test_attention_probs_match_hand_softmax():
    q = _t([[1.0, 0.0], [0.0, 2.0]])
    k = _t([[1.0, 0.0], [1.0, 1.0]])
    p = attention_log_probs(q, k).exp()[0, 0]
    # Row 0: scores (1, 1)/sqrt2 -> uniform. Row 1: scores (0, 2)/sqrt2.
    s = 2 / math.sqrt(2)
    assert p[0].tolist() == pytest.approx([0.5, 0.5], abs=1e-6)
    assert p[1].tolist() == pytest.approx([1 / (1 + math.exp(s)), math.exp(s) / (1 + math.exp(s))], abs=1e-6)


def test_value_relation_is_softmax_of_v_vt():
    v = _t([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    p = value_relation_log_probs(v).exp()[0, 0]
    r = 1 / math.sqrt(2)
    # Row 0: V0.V = (4, 0, 2)
    e = [math.exp(4 * r), 1.0, math.exp(2 * r)]
    assert p[0].tolist() == pytest.approx([x / sum(e) for x in e], abs=1e-6)
    assert p.sum(-1).tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)


def test_masked_keys_get_zero_probability():
    q = _t([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    mask = torch.tensor([[1, 1, 0]])
    p = attention_log_probs(q, q, mask).exp()[0, 0]
    assert p[:, 2].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert p[0].tolist()[:2] == pytest.approx([math.exp(1 / math.sqrt(2)) / (math.exp(1 / math.sqrt(2)) + 1),
                                               1 / (math.exp(1 / math.sqrt(2)) + 1)], abs=1e-6)


def test_kl_matches_hand_value():
    t = torch.tensor([0.5, 0.5]).log().view(1, 1, 1, 2)
    s = torch.tensor([0.9, 0.1]).log().view(1, 1, 1, 2)
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert masked_kl(t, s).item() == pytest.approx(expected, rel=1e-6)
    assert masked_kl(t, t).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_averages_over_heads_and_valid_queries_only():
    # Two heads, 2 queries; query 1 is padding and its (huge) KL must not count.
    t = torch.tensor([[0.5, 0.5], [0.5, 0.5]]).log()
    s_good = torch.tensor([[0.9, 0.1], [0.5, 0.5]]).log()
    s_bad = torch.tensor([[0.5, 0.5], [0.999, 0.001]]).log()
    teacher = torch.stack([t, t])[None]  # (1, 2, 2, 2)
    student = torch.stack([s_good, s_bad])[None]
    mask = torch.tensor([[1, 0]])
    kl_good = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    # The key axis is masked too: with key 1 masked, renormalisation is the caller's job, so only the
    # key-0 term of query 0 remains: 0.5*log(0.5/0.9) for head 0 and 0 for head 1.
    got = masked_kl(teacher, student, mask).item()
    assert got == pytest.approx((0.5 * math.log(0.5 / 0.9) + 0.0) / 2, rel=1e-6)
    assert masked_kl(teacher, student).item() == pytest.approx(
        (kl_good + 0.0 + 0.0 + (0.5 * math.log(0.5 / 0.999) + 0.5 * math.log(0.5 / 0.001))) / 4, rel=1e-6)


def test_relation_heads_regroup_concatenated_heads():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4)  # 2 heads of dim 4
    r = split_relation_heads(x, 4)  # 4 relation heads of dim 2
    assert r.shape == (1, 4, 3, 2)
    merged = x.transpose(1, 2).reshape(1, 3, 8)
    assert torch.equal(r[0, 3, 1], merged[0, 1, 6:8])
    lp = self_relation_log_probs(x, 4)
    assert lp.shape == (1, 4, 3, 3)
    with pytest.raises(ValueError):
        split_relation_heads(x, 3)


def test_uniform_layer_map_matches_formula():
    assert [t for _, t in uniform_layer_map(6, 12)] == [1, 3, 5, 7, 9, 11]
    assert [t for _, t in uniform_layer_map(4, 6)] == [1, 2, 4, 5]  # ceil(1.5)-1, ceil(3)-1, ceil(4.5)-1, 6-1
    assert uniform_layer_map(3, 3) == [(0, 0), (1, 1), (2, 2)]


def test_layer_map_specs_and_errors():
    assert parse_layer_map("last", 6, 12) == [(5, 11)]
    assert parse_layer_map("0:2,5:11", 6, 12) == [(0, 2), (5, 11)]
    assert parse_layer_map("1,3,5", 3, 6) == [(0, 1), (1, 3), (2, 5)]
    with pytest.raises(InputError, match="teacher layer 12 is out of range"):
        parse_layer_map("5:12", 6, 12)
    with pytest.raises(InputError, match="student layer 6 is out of range"):
        parse_layer_map("6:11", 6, 12)
    with pytest.raises(InputError, match="lists 2 teacher layers"):
        parse_layer_map("1,3", 6, 12)
    with pytest.raises(InputError, match="not 'uniform'"):
        parse_layer_map("a:b", 6, 12)
