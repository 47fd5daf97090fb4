"""The one module that knows BERT's internals: taps on the self-attention Q/K/V projections of chosen layers.

:class:`TappedBert` wraps a Hugging Face ``BertModel`` and returns, for each requested layer, a
:class:`Tap` with ``q``, ``k``, ``v`` shaped ``(batch, heads, seq, head_dim)``, read by forward hooks
on ``encoder.layer[i].attention.self.{query,key,value}``. Attention itself keeps its fast kernel
(SDPA): the distribution is recomputed from Q and K by the loss, which is exact because BERT's
attention is softmax(Q K^T / sqrt(d_head) + mask).

Nothing after the last tapped layer's value projection feeds the loss, so by default the forward
stops there (the rest of that layer, later layers and the pooler never run).

Pre-LayerNorm RoBERTa (``roberta-prelayernorm``, what ``distill mlm --pre-layernorm`` trains) has the
same attention block, so it is tapped the same way; :data:`TAPPABLE` lists the model types.

``mode="attentions"`` is the alternative the benchmark measures: eager attention with
``output_attentions=True``, whose probabilities come back in ``Tap.attn`` (log space). In training
mode they are taken after attention dropout, so the two paths agree exactly only without dropout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

MODES = ("hooks", "attentions")


class Tap(NamedTuple):
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    attn: torch.Tensor | None = None  # log attention probabilities (mode="attentions" only)


class _StopForward(Exception):
    """Raised by the last hook: everything the loss needs has been captured."""


TAPPABLE = ("bert", "roberta-prelayernorm")  # model types whose encoder.layer[i].attention.self has query/key/value


def bert_of(model: nn.Module) -> nn.Module:
    """The encoder inside ``model`` (itself, or the base model of a task head such as BertForMaskedLM)."""
    return getattr(model, "base_model", model)


def position_offset(model_type: str, pad_token_id: int) -> int:
    """Rows of the position table before the first position: RoBERTa numbers positions from ``pad_token_id + 1``."""
    return pad_token_id + 1 if model_type.startswith("roberta") else 0


def usable_positions(config) -> int:
    """How many tokens a sequence may have."""
    return config.max_position_embeddings - position_offset(config.model_type, config.pad_token_id)


class TappedBert(nn.Module):
    """``forward(input_ids, attention_mask) -> list[Tap]``, one per entry of ``layers`` (in that order)."""

    def __init__(self, bert: nn.Module, layers: Sequence[int], mode: str = "hooks", stop_early: bool = True):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.bert = bert
        self.layers = list(layers)
        self.mode = mode
        # Eager attention needs the rest of the layer to produce its probabilities.
        self.stop_early = stop_early and mode == "hooks"
        self._heads = bert.config.num_attention_heads
        self._store: dict[int, dict[str, torch.Tensor]] = {}
        self._handles = []
        if mode == "attentions":
            bert.set_attn_implementation("eager")
        blocks = bert.encoder.layer
        for i in sorted(set(self.layers)):
            attn = blocks[i].attention.self
            for name in ("query", "key", "value"):
                self._handles.append(getattr(attn, name).register_forward_hook(self._hook(i, name)))

    def _hook(self, layer: int, name: str):
        last = max(self.layers)

        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            b, s, _ = output.shape
            self._store.setdefault(layer, {})[name] = output.view(b, s, self._heads, -1).transpose(1, 2)
            if self.stop_early and layer == last and name == "value":
                raise _StopForward

        return hook

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list[Tap]:
        self._store = {}
        attentions = None
        try:
            if self.mode == "attentions":
                out = self.bert(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
                attentions = out.attentions
            else:
                self.bert(input_ids=input_ids, attention_mask=attention_mask)
        except _StopForward:
            pass
        return self._collect(attentions)

    def forward_with_output(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """``(taps, the model's own output)``: for a model trained on both (the e5 recipe's student), in one pass."""
        if self.stop_early or self.mode != "hooks":
            raise ValueError("forward_with_output needs mode='hooks' and stop_early=False")
        self._store = {}
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
        return self._collect(None), out

    def _collect(self, attentions) -> list[Tap]:
        taps = []
        for i in self.layers:
            got = self._store[i]
            attn = None
            if attentions is not None:
                # Clamp: masked keys have probability 0 exactly, and log(0) would poison the gradient.
                attn = torch.log(attentions[i].float().clamp_min(1e-30))
            taps.append(Tap(got["query"], got["key"], got["value"], attn))
        self._store = {}
        return taps

    def remove(self) -> None:
        """Detach the hooks (the wrapped model is then an ordinary ``BertModel`` again)."""
        for h in self._handles:
            h.remove()
        self._handles = []
