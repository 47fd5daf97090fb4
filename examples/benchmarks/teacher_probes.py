"""Probes for a better small teacher on two CPU cores (docs/recipe.md, third session).

    python examples/benchmarks/teacher_probes.py mlm VARIANT RUN_DIR OUT_DIR
    python examples/benchmarks/teacher_probes.py vectors RUN_DIR OUT_DIR
    python examples/benchmarks/teacher_probes.py bigram RUN_DIR

``RUN_DIR`` is a finished ``nano`` recipe folder (its corpus, tokenizer, architectures and random
student are reused). ``mlm`` pretrains the recipe's teacher shape with one change and logs the loss
(compare the windows with ``RUN_DIR/teacher/log.jsonl``); it runs until killed or ``--steps``.
VARIANTs: ``sin`` (sinusoidal table as the initial position embeddings, at the embeddings' scale),
``sinmim`` (that plus mimetic attention init, W_q^T W_k ~ 0.7 I + 0.7 noise), ``short`` (32-token
segments, batch 32, lr 5e-4), ``vectors`` (PPMI-SVD word vectors as the initial embeddings),
``preln`` (a pre-LayerNorm transformer of the same shape; ``--lr`` and ``--dropout`` set its rate and
dropout, docs/recipe.md, fourth session).
``vectors`` gives the random student the corpus's PPMI-SVD word vectors, trains it with the
recipe's sentence stage and prints KorSTS dev/test. ``bigram`` is the yardstick for
``distill.probes.context_gain``: the cross-entropy of corpus lines 5,000-7,000 under a unigram model and
under a left-neighbour bigram model (interpolated with the unigram), both counted on the other lines.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path


def sinusoid(n: int, d: int):
    import torch

    pos = torch.arange(n).float()[:, None]
    angle = pos / 10000 ** (torch.arange(0, d, 2).float() / d)
    table = torch.zeros(n, d)
    table[:, 0::2], table[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return table


def mlm(variant: str, run: Path, out: Path, steps: int, lr: float | None = None, dropout: float = 0.1) -> None:
    import torch

    import distill.mlm as m

    build = m.masked_lm_model

    def patched(config):
        model = build(config)
        emb = model.mlm.bert.embeddings.position_embeddings.weight
        with torch.no_grad():
            emb.copy_(sinusoid(*emb.shape) * 0.02 * math.sqrt(2))  # entries of std ~0.02, like the init
            if variant == "sinmim":
                for layer in model.mlm.bert.encoder.layer:
                    att = layer.attention.self
                    d = att.query.weight.shape[0]
                    u, s, vh = torch.linalg.svd(0.7 * torch.randn(d, d) / math.sqrt(d) + 0.7 * torch.eye(d))
                    att.query.weight.copy_((u * s.sqrt()).T)
                    att.key.weight.copy_((vh.T * s.sqrt()).T)
        return model

    if variant.startswith("sin"):  # the other variants are MLMConfig settings
        m.masked_lm_model = patched
    short = variant == "short"
    name = variant if lr is None else f"{variant}-lr{lr:g}-do{dropout:g}"
    cfg = m.MLMConfig(corpus=[str(run / "corpus" / "corpus.txt")], output_dir=str(out / f"mlm-{name}"),
                      config=str(run / "teacher_architecture.json"), tokenizer=str(run / "tokenizer" / "tokenizer"),
                      max_steps=steps, batch_size=32, lr=lr or (5e-4 if short else 2e-4),
                      max_length=32 if short else 128,
                      log_every=25, checkpoint_every=250, seed=42, quiet=True, word_vectors=variant == "vectors",
                      pre_layernorm=variant == "preln",
                      config_overrides={"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout})
    m.train_mlm(cfg)


def vectors(run: Path, out: Path) -> None:
    from transformers import AutoTokenizer, BertModel

    from distill.mlm import MLMConfig, seed_word_embeddings
    from distill.recipe.run import RecipeConfig
    from koembed.evaluate import run_task
    from koembed.training import TrainConfig, train

    tok = AutoTokenizer.from_pretrained(run / "tokenizer" / "tokenizer")
    model = BertModel.from_pretrained(run / "random_student" / "model")
    seed_word_embeddings(model, MLMConfig(corpus=[str(run / "corpus" / "corpus.txt")], seed=0), tok)
    base = out / "random-with-vectors"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    sentence = RecipeConfig.load("nano").sentence
    folder = train(TrainConfig.from_dict({**sentence, "base_model": str(base), "output_dir": str(out / "sentence"),
                                          "resume": True, "quiet": True})).output_dir
    print(json.dumps({k: run_task(str(folder), k)["spearman"] for k in ("korsts-dev", "korsts-test")}))


def bigram(run: Path) -> None:
    from collections import Counter

    import numpy as np
    from transformers import AutoTokenizer

    from distill.probes import PROBE_SPAN

    tok = AutoTokenizer.from_pretrained(run / "tokenizer" / "tokenizer")
    lines = (run / "corpus" / "corpus.txt").read_text(encoding="utf-8").splitlines()
    lo, hi = PROBE_SPAN  # the lines distill.probes.context_gain is reported on
    held, rest = lines[lo:hi], lines[:lo] + lines[hi:]

    def rows(texts):
        for i in range(0, len(texts), 20_000):
            for enc in tok.backend_tokenizer.encode_batch(texts[i:i + 20_000], add_special_tokens=False):
                yield [tok.cls_token_id, *enc.ids]

    uni, pairs, left = np.zeros(len(tok)), Counter(), Counter()
    for ids in rows(rest):
        np.add.at(uni, ids[1:], 1)
        pairs.update(itertools.pairwise(ids))
    for (a, _), c in pairs.items():
        left[a] += c
    p_uni = (uni + 0.5) / (uni.sum() + 0.5 * len(tok))
    h_uni = h_bi = n = 0.0
    for ids in rows(held):
        for a, b in itertools.pairwise(ids):
            p_bi = pairs.get((a, b), 0) / left[a] if left[a] else 0.0
            h_uni -= np.log(p_uni[b])
            h_bi -= np.log(0.7 * p_bi + 0.3 * p_uni[b])
            n += 1
    print(json.dumps({"unigram_nats": round(h_uni / n, 3), "bigram_nats": round(h_bi / n, 3), "tokens": int(n)}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("mlm")
    p.add_argument("variant", choices=["sin", "sinmim", "short", "vectors", "preln"])
    p.add_argument("run", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--lr", type=float, default=None, help="peak lr (default: the variant's)")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout of the preln variant")
    v = sub.add_parser("vectors")
    v.add_argument("run", type=Path)
    v.add_argument("out", type=Path)
    sub.add_parser("bigram").add_argument("run", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "mlm":
        mlm(args.variant, args.run, args.out, args.steps, args.lr, args.dropout)
    elif args.cmd == "vectors":
        vectors(args.run, args.out)
    else:
        bigram(args.run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
