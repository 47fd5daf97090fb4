"""``distill mlm``: masked-LM pretraining of a BERT on a corpus, so that a teacher can be made where none is available.

It runs the loop of :mod:`distill.loop` that distillation runs too (same packed stream, optimizer, schedule,
checkpoints, exact resume and log) with BERT's masked-LM objective: 15% of the non-special tokens
are chosen, 80% of those become ``[MASK]``, 10% a random token, 10% stay. The prediction head runs
on the chosen positions only, which on a small model saves most of the output-layer cost.

The output folder is a ``BertForMaskedLM`` checkpoint with its tokenizer; ``AutoModel`` loads its
``BertModel`` part, so it serves directly as ``--teacher`` for ``distill run``. With
``pre_layernorm`` it is the same shape as a pre-LayerNorm transformer
(``RobertaPreLayerNormForMaskedLM``, same attention layout, so the taps read it too), which takes a
higher learning rate; docs/distill.md has what it was measured to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from distill.loop import LoopConfig, make_accelerator, prepare_output, run_loop
from koembed.errors import InputError


@dataclass
class MLMConfig(LoopConfig):
    config: str = "kominilm-23m"  # preset name or CONFIG.json of the BERT to pretrain
    tokenizer: str = ""  # folder of a Hugging Face tokenizer (e.g. from distill.tokenizer.train_wordpiece)
    config_overrides: dict = field(default_factory=dict)  # BertConfig fields over the preset/CONFIG.json
    mlm_probability: float = 0.15
    lr: float = 1e-3
    warmup_steps: int = -1
    word_vectors: bool = False  # start the word embeddings from PPMI-SVD vectors of the corpus (distill.word_vectors)
    word_vector_window: int = 5  # co-occurrence window of those vectors, in tokens
    pre_layernorm: bool = False  # pretrain a pre-LN transformer (RobertaPreLayerNorm) of the same shape


# The masked-LM models distill.mlm can build: model_type -> (transformers class, its prediction-head attribute).
MLM_HEADS = {"bert": ("BertForMaskedLM", "cls"), "roberta-prelayernorm": ("RobertaPreLayerNormForMaskedLM", "lm_head")}


def pre_layernorm_config(config):
    """The ``RobertaPreLayerNormConfig`` with a ``BertConfig``'s shape, vocabulary and usable positions.

    RoBERTa numbers positions from ``pad_token_id + 1``, so its table is that much longer.
    """
    from transformers import RobertaPreLayerNormConfig

    from distill.taps import position_offset

    skip = ("model_type", "architectures", "transformers_version")
    fields = {k: v for k, v in config.to_dict().items() if k not in skip}
    offset = position_offset(RobertaPreLayerNormConfig.model_type, config.pad_token_id)
    fields["max_position_embeddings"] = config.max_position_embeddings + offset
    return RobertaPreLayerNormConfig(**fields)


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
    """A masked-LM model (class per ``config.model_type``) whose forward runs the head on the chosen positions only.

    The head runs inside ``forward`` so that DDP sees its parameters in the graph.
    """
    import torch
    import transformers
    from torch import nn

    cls_name, head = MLM_HEADS[config.model_type]

    class _Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            config.architectures = [cls_name]
            self.mlm = getattr(transformers, cls_name)(config)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, chosen: torch.Tensor):
            hidden = self.mlm.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return getattr(self.mlm, head)(hidden[chosen])

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


def seed_word_embeddings(model, cfg: MLMConfig, tokenizer) -> int:
    """Overwrite the embeddings of the tokens the corpus has with its PPMI-SVD vectors; return how many.

    The output layer is tied to these embeddings, so it starts from the same vectors.
    """
    import itertools

    import torch

    from distill.data import iter_source_texts
    from distill.word_vectors import word_vectors

    texts = itertools.chain.from_iterable(iter_source_texts(s, cfg.text_field) for s in cfg.corpus)
    weight = model.get_input_embeddings().weight
    vectors, seen = word_vectors(texts, tokenizer, weight.shape[1], window=cfg.word_vector_window, seed=cfg.seed,
                                 std=model.config.initializer_range)
    with torch.no_grad():
        rows = torch.from_numpy(seen)
        weight[rows] = torch.from_numpy(vectors[seen]).to(weight.dtype)
    return int(seen.sum())


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
    model = masked_lm_model(pre_layernorm_config(config) if cfg.pre_layernorm else config)
    if cfg.word_vectors and not cfg.resume:  # a resumed run loads its embeddings from the checkpoint
        seed_word_embeddings(model.mlm, cfg, tokenizer)
    step = MaskedLMStep(tokenizer, cfg.mlm_probability, accelerator.device)

    def save_final(folder: Path) -> None:
        accelerator.unwrap_model(model).mlm.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    run_loop(cfg, accelerator, model, step, tokenizer, save_final)
    return out
