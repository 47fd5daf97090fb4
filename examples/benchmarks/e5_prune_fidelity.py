"""e5-small-ko against e5-small on Korean text the pruning never saw: cosine, token counts, new <unk>.

Both folders run in sentence-transformers with the E5 prompts (query for sentences and questions, document for
paragraphs; paragraphs kept to those both tokenizers fit in 512 tokens, so truncation is the same). ``<unk>`` is
counted over each whole set. Results: docs/models.md.

    koembed import-e5 -o /tmp/e5-small --full-vocab && koembed import-e5 -o /tmp/e5-small-ko
    python examples/benchmarks/e5_prune_fidelity.py --full /tmp/e5-small --pruned /tmp/e5-small-ko
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", required=True)
    ap.add_argument("--pruned", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    from koembed.data import read_split
    from koembed.system import machine_summary

    full_tok = Tokenizer.from_file(f"{args.full}/tokenizer.json")
    ko_tok = Tokenizer.from_file(f"{args.pruned}/tokenizer.json")
    unk = full_tok.token_to_id("<unk>")
    sts = read_split("korsts", "test", use_hub=False).rows
    klue = read_split("klue-sts", "dev", use_hub=False).rows
    kq = read_split("korquad", "dev", use_hub=False).rows
    paras = list(dict.fromkeys(r["context"] for r in kq))
    sets = {
        "korsts-test": ([s for r in sts for s in (r["sentence1"], r["sentence2"])], "query", 400),
        "klue-sts-dev": ([s for r in klue for s in (r["sentence1"], r["sentence2"])], "query", 300),
        "korquad-questions": ([r["question"] for r in kq], "query", 300),
        "korquad-paragraphs": ([p for p in paras if max(len(t.encode("passage: " + p).ids)
                                                        for t in (full_tok, ko_tok)) <= 512], "document", 120),
    }
    a = SentenceTransformer(args.full, device="cpu")
    b = SentenceTransformer(args.pruned, device="cpu")
    rng = np.random.default_rng(args.seed)
    print(f"# {machine_summary()}")
    for name, (texts, role, n) in sets.items():
        new_unk = sum(e.ids.count(unk) for e in ko_tok.encode_batch(texts)) - \
            sum(e.ids.count(unk) for e in full_tok.encode_batch(texts))
        sample = list(rng.choice(texts, min(n, len(texts)), replace=False)) if role == "query" else texts[:n]
        va = a.encode(sample, prompt_name=role, batch_size=32)
        vb = b.encode(sample, prompt_name=role, batch_size=32)
        cos = (va * vb).sum(1)
        print(json.dumps({"set": name, "texts": len(sample), "mean_cos": round(float(cos.mean()), 5),
                          "min_cos": round(float(cos.min()), 4),
                          "tokens_full": sum(len(e.ids) for e in full_tok.encode_batch(sample)),
                          "tokens_pruned": sum(len(e.ids) for e in ko_tok.encode_batch(sample)),
                          "new_unk_whole_set": new_unk}), flush=True)


if __name__ == "__main__":
    main()
