"""``distill mlm``: masked-LM pretraining of a BERT on a corpus, so that a teacher can be made where none is available.

It is the distillation loop of :mod:`distill.train` (same packed stream, optimizer, schedule,
checkpoints, exact resume and log) with BERT's masked-LM objective: 15% of the non-special tokens
are chosen, 80% of those become ``[MASK]``, 10% a random token, 10% stay. The prediction head runs
on the chosen positions only, which on a small model saves most of the output-layer cost.

The output folder is a ``BertForMaskedLM`` checkpoint with its tokenizer; ``AutoModel`` loads its
``BertModel`` part, so it serves directly as ``--teacher`` for ``distill run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from distill.train import LoopConfig, make_accelerator, prepare_output, run_loop
from koembed.errors import InputError


@dataclass
class MLMConfig(LoopConfig):
    config: str = "kominilm-23m"  # preset name or CONFIG.json of the BERT to pretrain
    tokenizer: str = ""  # folder of a Hugging Face tokenizer (e.g. from distill.tokenizer.train_wordpiece)
    config_overrides: dict = field(default_factory=dict)  # BertConfig fields over the preset/CONFIG.json
    mlm_probability: float = 0.15
    lr: float = 1e-3
    warmup_steps: int = -1


def mask_tokens(ids, tokenizer, probability: float, special_ids):
    """BERT masking: returns ``(inputs, labels)`` with labels -100 except at the chosen positions."""
    import torch

    labels = ids.clone()
    prob = torch.full(ids.shape, probability, device=ids.device)
    prob.masked_fill_(torch.isin(ids, special_ids), 0.0)
    chosen = torch.bernoulli(prob).bool()
    labels[~chosen] = -100
    inputs = ids.clone()
    to_mask = torch.bernoulli(torch.full(ids.shape, 0.8, device=ids.device)).bool() & chosen
    inputs[to_mask] = tokenizer.mask_token_id
    to_random = torch.bernoulli(torch.full(ids.shape, 0.5, device=ids.device)).bool() & chosen & ~to_mask
    inputs[to_random] = torch.randint(len(tokenizer), ids.shape, device=ids.device)[to_random]
    return inputs, labels


def masked_lm_model(config):
    """A ``BertForMaskedLM`` wrapper whose forward applies the prediction head to the chosen positions only.

    The head runs inside ``forward`` so that DDP sees its parameters in the graph.
    """
    import torch
    from torch import nn
    from transformers import BertForMaskedLM

    class _Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlm = BertForMaskedLM(config)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, chosen: torch.Tensor):
            hidden = self.mlm.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return self.mlm.cls(hidden[chosen])

    return _Wrapped()


class MaskedLMStep:
    """``step(model, ids, mask) -> LossOutput``: mask, predict, cross-entropy on the chosen tokens."""

    def __init__(self, tokenizer, probability: float, device):
        import torch

        self.tokenizer, self.probability = tokenizer, probability
        self.special = torch.tensor(sorted(set(tokenizer.all_special_ids)), device=device)

    def __call__(self, model, ids, mask):
        from torch.nn import functional as F

        from distill.losses import LossOutput

        inputs, labels = mask_tokens(ids, self.tokenizer, self.probability, self.special)
        chosen = labels != -100
        logits = model(inputs, mask, chosen)
        loss = F.cross_entropy(logits.float(), labels[chosen]) if logits.shape[0] else logits.sum() * 0.0
        return LossOutput(total=loss, parts={"mlm": loss}, pairs={})


def train_mlm(cfg: MLMConfig) -> Path:
    """Pretrain a BERT (config ``cfg.config``, tokenizer ``cfg.tokenizer``) with masked LM; return its folder."""
    from accelerate.utils import set_seed
    from transformers import AutoTokenizer

    from distill.data import check_sources
    from distill.student import student_config, student_fields

    check_sources(cfg.corpus, cfg.text_field)
    if not cfg.tokenizer or not Path(cfg.tokenizer).is_dir():
        raise InputError(f"--tokenizer {cfg.tokenizer!r}: not a folder; give a Hugging Face tokenizer folder "
                         "(e.g. one saved by distill.tokenizer.train_wordpiece)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer)
    except (OSError, ValueError) as exc:
        raise InputError(f"--tokenizer {cfg.tokenizer}: cannot load a tokenizer ({str(exc).splitlines()[0]})") from None
    if tokenizer.mask_token_id is None:
        raise InputError(f"--tokenizer {cfg.tokenizer}: has no [MASK] token, which masked-LM needs")
    fields = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id, **(cfg.config_overrides or {})}
    given = student_fields(cfg.config)
    if "vocab_size" in given and given["vocab_size"] != len(tokenizer):
        raise InputError(f"vocabulary mismatch: the config has vocab_size {given['vocab_size']}, the tokenizer "
                         f"{len(tokenizer)} tokens; remove vocab_size from the config or use the matching tokenizer")
    config = student_config({**given, **fields})
    if cfg.max_length > config.max_position_embeddings:
        raise InputError(f"--max-length {cfg.max_length} exceeds the model's "
                         f"{config.max_position_embeddings} positions")
    out = prepare_output(cfg, "mlm_config.json")

    accelerator = make_accelerator(cfg)
    set_seed(cfg.seed)
    config.architectures = ["BertForMaskedLM"]
    model = masked_lm_model(config)
    step = MaskedLMStep(tokenizer, cfg.mlm_probability, accelerator.device)

    def save_final(folder: Path) -> None:
        accelerator.unwrap_model(model).mlm.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    run_loop(cfg, accelerator, model, step, tokenizer, save_final)
    return out
