"""Research probes on a trained masked-LM: how much it uses context, on a fixed sample of the corpus.

The recipe reports :func:`context_gain` for its teacher, and the benchmark scripts in
examples/benchmarks read it on the same lines (:data:`PROBE_SPAN`), so the numbers compare.
"""

from __future__ import annotations

from pathlib import Path

PROBE_SPAN = (5000, 7000)  # the corpus lines context_gain is read on, by the recipe and its probes


def probe_lines(corpus: str | Path) -> list[str]:
    """Lines ``PROBE_SPAN`` of a one-text-a-line corpus: the sample :func:`context_gain` is reported on."""
    import itertools

    with open(corpus, encoding="utf-8") as fh:
        return [line.strip() for line in itertools.islice(fh, *PROBE_SPAN)]


def context_gain(model_dir: str | Path, lines: list[str], max_length: int = 64, seed: int = 0) -> dict[str, float]:
    """How much a masked-LM uses context: the masked tokens' loss with their line around them and without.

    15% of the tokens of each line are masked; ``ctx_loss`` is their cross-entropy as usual,
    ``noctx_loss`` the same with every other token masked too, so only the position is left. A
    model on the early unigram plateau has ``gain`` near 0 (docs/recipe.md gives the scale measured on the
    recipe's probe lines).
    """
    import torch
    from torch.nn import functional as F
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    max_length = min(max_length, model.config.max_position_embeddings)
    enc = tok(lines, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    ids, mask = enc.input_ids, enc.attention_mask
    special = torch.tensor(sorted(set(tok.all_special_ids)))
    g = torch.Generator().manual_seed(seed)
    chosen = (torch.rand(ids.shape, generator=g) < 0.15) & mask.bool() & ~torch.isin(ids, special)
    with_context = ids.masked_fill(chosen, tok.mask_token_id)
    without = torch.full_like(ids, tok.mask_token_id)
    without[:, 0] = ids[:, 0]
    with torch.no_grad():
        losses = [F.cross_entropy(model(input_ids=x, attention_mask=mask).logits[chosen].float(), ids[chosen]).item()
                  for x in (with_context, without)]
    return {"ctx_loss": round(losses[0], 4), "noctx_loss": round(losses[1], 4),
            "gain": round(losses[1] - losses[0], 4), "masked_tokens": int(chosen.sum())}
