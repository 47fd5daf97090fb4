"""MiniLMLoss on real (tiny) BERTs through the taps: zero for a copy, blind to padding, same on both attention paths."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import BertConfig, BertModel

from distill.layer_map import uniform_layer_map
from distill.losses import MiniLMLoss
from distill.taps import TappedBert

torch.set_num_threads(1)


def _bert(layers=4, hidden=64, heads=4, seed=0, init=0.2) -> BertModel:
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=300, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=2 * hidden, max_position_embeddings=64, initializer_range=init,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertModel(cfg).eval()


def _pre_ln(layers=4, hidden=64, heads=4, seed=0):
    from transformers import RobertaPreLayerNormModel

    from distill.mlm import pre_layernorm_config

    cfg = pre_layernorm_config(_bert(layers, hidden, heads, seed).config)
    torch.manual_seed(seed)
    return RobertaPreLayerNormModel(cfg).eval()


def _loss(teacher, student, pairs, ids, mask, relation_heads=None, mode="hooks"):
    t = TappedBert(teacher, [t for _, t in pairs], mode=mode)
    s = TappedBert(student, [s for s, _ in pairs], mode=mode)
    with torch.no_grad():
        out = MiniLMLoss(pairs, relation_heads)(t(ids, mask), s(ids, mask), mask)
    t.remove()
    s.remove()
    return out


def _batch(lengths, width, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 300, (len(lengths), width), generator=g)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return ids, mask


@pytest.mark.parametrize("relation_heads", [None, 8])
def test_loss_is_zero_for_an_exact_copy(relation_heads):
    teacher = _bert()
    student = copy.deepcopy(teacher)
    ids, mask = _batch([12, 7], 12)
    out = _loss(teacher, student, [(i, i) for i in range(4)], ids, mask, relation_heads)
    assert out.total.item() == pytest.approx(0.0, abs=1e-6)
    # And clearly non-zero for a different student, so the zero above is not vacuous.
    other = _loss(teacher, _bert(seed=5), [(i, i) for i in range(4)], ids, mask, relation_heads)
    assert other.total.item() > 1e-2


def test_padding_does_not_change_the_loss():
    teacher, student = _bert(), _bert(layers=2, hidden=32, seed=3)
    pairs = uniform_layer_map(2, 4)
    ids, mask = _batch([10, 6], 10)
    base = _loss(teacher, student, pairs, ids, mask)
    # Pad further with junk token ids: the masked positions must not count.
    wide_ids = torch.cat([ids, torch.randint(5, 300, (2, 6))], dim=1)
    wide_ids[1, 6:] = torch.randint(5, 300, (10,))
    wide_mask = torch.cat([mask, torch.zeros(2, 6, dtype=torch.long)], dim=1)
    wide = _loss(teacher, student, pairs, wide_ids, wide_mask)
    assert wide.total.item() == pytest.approx(base.total.item(), rel=1e-5)
    # The batch loss is the token-weighted mean of each sequence alone (no padding at all).
    a = _loss(teacher, student, pairs, ids[:1, :10], mask[:1, :10])
    b = _loss(teacher, student, pairs, ids[1:, :6], mask[1:, :6])
    assert base.total.item() == pytest.approx((10 * a.total.item() + 6 * b.total.item()) / 16, rel=1e-5)


@pytest.mark.parametrize("teacher_kind", ["bert", "pre-ln"])
def test_hook_path_equals_output_attentions_path(teacher_kind):
    # Pre-LN changes what feeds Q/K/V, not softmax(QK^T/sqrt(d) + mask): the hooks stay exact for it too.
    teacher, student = _bert() if teacher_kind == "bert" else _pre_ln(), _bert(layers=2, hidden=32, seed=3)
    pairs = uniform_layer_map(2, 4)
    ids, mask = _batch([9, 5], 9)
    hooks = _loss(teacher, student, pairs, ids, mask, mode="hooks")
    eager = _loss(copy.deepcopy(teacher), copy.deepcopy(student), pairs, ids, mask, mode="attentions")
    for k in hooks.parts:
        assert hooks.parts[k].item() == pytest.approx(eager.parts[k].item(), rel=1e-4), k


def test_v2_relations_distil_across_head_counts():
    teacher, student = _bert(heads=4), _bert(layers=2, hidden=48, heads=3, seed=3)
    pairs = uniform_layer_map(2, 4)
    ids, mask = _batch([8, 8], 8)
    t = TappedBert(teacher, [t for _, t in pairs])
    s = TappedBert(student.train(), [s for s, _ in pairs])
    with torch.no_grad():
        t_taps = t(ids, mask)
    out = MiniLMLoss(pairs, relation_heads=16)(t_taps, s(ids, mask), mask)
    assert set(out.parts) == {"qq", "kk", "vv"}
    assert set(out.pairs) == {"s0-t1", "s1-t3"}
    assert out.total.item() == pytest.approx(sum(v.item() for v in out.parts.values()), rel=1e-6)
    out.total.backward()
    q_proj = student.encoder.layer[0].attention.self.query.weight
    assert q_proj.grad is not None and q_proj.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="relation shapes differ"):
        MiniLMLoss(pairs)(t_taps, s(ids, mask), mask)  # v1 needs equal head counts


def test_taps_stop_after_the_last_mapped_layer():
    bert = _bert(layers=4)
    ran = []
    bert.encoder.layer[3].intermediate.register_forward_hook(lambda *a: ran.append(3))
    bert.encoder.layer[1].intermediate.register_forward_hook(lambda *a: ran.append(1))
    taps = TappedBert(bert, [1, 2])(torch.randint(5, 300, (1, 6)))
    assert ran == [1]
    assert [tuple(t.q.shape) for t in taps] == [(1, 4, 6, 16)] * 2


def test_student_presets_and_init_from_teacher():
    from distill.student import build_student, student_config

    c23 = student_config("kominilm-23m")
    sizes = (c23.num_hidden_layers, c23.hidden_size, c23.num_attention_heads, c23.intermediate_size)
    assert sizes == (6, 384, 12, 1536)
    assert (c23.vocab_size, c23.max_position_embeddings, c23.type_vocab_size, c23.hidden_act) == (32000, 512, 2, "gelu")
    assert c23.layer_norm_eps == 1e-12 and student_config("kominilm-68m").intermediate_size == 3072

    teacher = _bert(layers=4, hidden=64)
    same_width = student_config({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                 "intermediate_size": 128}, teacher.config)
    student, copied = build_student(same_width, teacher, [(0, 1), (1, 3)])
    assert torch.equal(student.encoder.layer[1].output.dense.weight, teacher.encoder.layer[3].output.dense.weight)
    assert torch.equal(student.embeddings.word_embeddings.weight, teacher.embeddings.word_embeddings.weight)
    assert "encoder.layer.0.attention.self.query.weight" in copied
    narrow = student_config({"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}, teacher.config)
    assert build_student(narrow, teacher, [(0, 1), (1, 3)])[1] == []


def test_a_pre_layernorm_teacher_is_tapped_like_bert():
    from distill.student import build_student, student_config
    from distill.taps import bert_of, usable_positions

    teacher = _pre_ln()
    assert teacher.config.model_type == "roberta-prelayernorm" and usable_positions(teacher.config) == 64
    ids, mask = _batch([9, 5], 9)
    assert _loss(teacher, copy.deepcopy(teacher), [(i, i) for i in range(4)], ids, mask).total.item() < 1e-6
    from transformers import RobertaPreLayerNormForMaskedLM

    assert bert_of(RobertaPreLayerNormForMaskedLM(teacher.config)).config.model_type == "roberta-prelayernorm"
    # The student gets the teacher's usable positions, not RoBERTa's offset table length.
    cfg = student_config({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}, teacher.config)
    assert cfg.max_position_embeddings == 64 and teacher.config.max_position_embeddings == 65
    from koembed.errors import InputError

    with pytest.raises(InputError, match="copies BERT weights by name"):
        build_student(cfg, teacher, [(0, 1), (1, 3)])
