"""Train a stand-in "trained" model for judging int8 fidelity until the project's own trained model exists.

Quantisation error depends on the weight and activation distributions that training produces, so
int8 must be judged on trained weights, never on random ones. This script builds the KoMiniLM-23M
architecture (6 layers, hidden 384, 12 heads, FFN 1536) with a WordPiece trained on real Korean
text, then trains it from scratch with CoSENT on KorSTS train for a fixed wall-clock budget. It is
a proxy (no MLM pre-training, minutes of training), not a model to ship.

    python examples/benchmarks/train_fidelity_model.py OUT_DIR --minutes 6
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from koembed.paths import data_dir


def korsts_pairs(split: str = "train") -> list[tuple[str, str, float]]:
    rows = (data_dir() / "korsts" / f"sts-{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
    out = []
    for row in rows:
        cols = row.split("\t")
        if len(cols) == 7:
            out.append((cols[5], cols[6], float(cols[4]) / 5.0))
    return out


def tokenizer_texts() -> list[str]:
    texts = [s for a, b, _ in korsts_pairs() for s in (a, b)]
    nsmc = (data_dir() / "nsmc" / "ratings_train.txt").read_text(encoding="utf-8").splitlines()[1:]
    texts += [r.split("\t")[1] for r in nsmc if r.count("\t") == 2]
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    from distill.tiny import build_tiny_bert, wrap_as_sentence_transformer

    torch.set_num_threads(args.threads)
    bert = build_tiny_bert(tokenizer_texts(), args.out / "bert", vocab_size=32000, hidden_size=384, num_layers=6,
                           num_heads=12, intermediate_size=1536, max_position_embeddings=128)
    st_dir = wrap_as_sentence_transformer(bert, args.out / "model")
    model = SentenceTransformer(str(st_dir), device="cpu")
    loss_fn = CoSENTLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    pairs = korsts_pairs()
    rng = random.Random(0)
    deadline, step, epoch = time.time() + 60 * args.minutes, 0, 0
    model.train()
    while time.time() < deadline:
        rng.shuffle(pairs)
        for s in range(0, len(pairs) - args.batch_size + 1, args.batch_size):
            batch = pairs[s : s + args.batch_size]
            feats = [model.preprocess([p[i] for p in batch]) for i in (0, 1)]
            loss = loss_fn(feats, torch.tensor([p[2] for p in batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 50 == 0:
                print(f"epoch {epoch} step {step} loss {loss.item():.3f}", flush=True)
            if time.time() >= deadline:
                break
        epoch += 1
    model.eval()
    model.save(str(st_dir))
    dev = korsts_pairs("dev")
    a = model.encode([p[0] for p in dev], normalize_embeddings=True)
    b = model.encode([p[1] for p in dev], normalize_embeddings=True)
    from scipy.stats import spearmanr

    rho = spearmanr((a * b).sum(1), [p[2] for p in dev]).statistic
    print(f"saved {st_dir}: {step} steps, {epoch} epochs, KorSTS dev Spearman {rho:.4f}")


if __name__ == "__main__":
    main()
