"""Masked-LM settings side by side: does the teacher leave the unigram plateau? (docs/recipe.md)

    python examples/benchmarks/mlm_plateau_sweep.py CORPUS.txt TOKENIZER_DIR OUT_DIR

Runs each setting of CONFIGS (the nano teacher's shape, 20.5M tokens each) in its own process, then
measures the masked tokens' loss on 2,000 corpus lines with their real context and with every other
token masked too: the gap is how much of the context the model uses. Meant for a GPU, where all
eight run together in about three minutes (docs/results/mlm-plateau-h100.json).
"""

import json
import multiprocessing as mp
import os
import sys
import time

CONFIGS = {
    "c1_b32_lr7e-4_do.1": dict(batch_size=32, max_steps=5000, lr=7e-4, dropout=0.1),
    "c2_b32_lr7e-4_do0": dict(batch_size=32, max_steps=5000, lr=7e-4, dropout=0.0),
    "c3_b128_lr1e-3_do0": dict(batch_size=128, max_steps=1250, lr=1e-3, dropout=0.0),
    "c4_b128_lr2e-3_do0": dict(batch_size=128, max_steps=1250, lr=2e-3, dropout=0.0),
    "c5_b64_lr1e-3_do0": dict(batch_size=64, max_steps=2500, lr=1e-3, dropout=0.0),
    "c6_b32_lr2e-4_do0": dict(batch_size=32, max_steps=5000, lr=2e-4, dropout=0.0),
    "c7_b128_lr5e-4_do0": dict(batch_size=128, max_steps=1250, lr=5e-4, dropout=0.0),
    "c8_b64_lr2e-3_do0_wu10": dict(batch_size=64, max_steps=2500, lr=2e-3, dropout=0.0, warmup_steps=250),
}


def run(name):
    from distill.mlm import MLMConfig, train_mlm
    from distill.probes import context_gain, probe_lines
    from distill.recipe.run import RecipeConfig

    c = dict(CONFIGS[name])
    do = c.pop("dropout")
    os.makedirs(sys.argv[3], exist_ok=True)
    arch = os.path.join(sys.argv[3], f"arch_{name}.json")
    shape = RecipeConfig.load("nano").teacher  # the recipe's teacher, with this setting's dropout
    with open(arch, "w") as fh:
        json.dump({**shape, "hidden_dropout_prob": do, "attention_probs_dropout_prob": do}, fh)
    out = os.path.join(sys.argv[3], name)
    cfg = MLMConfig(
        corpus=[sys.argv[1]],
        output_dir=out,
        config=arch,
        tokenizer=sys.argv[2],
        max_length=128,
        quiet=True,
        log_every=25,
        checkpoint_every=100000,
        seed=42,
        **c,
    )
    t = time.time()
    train_mlm(cfg)
    gain = context_gain(out, probe_lines(sys.argv[1]))
    with open(os.path.join(out, "log.jsonl")) as fh:
        logs = [json.loads(line) for line in fh]
    res = {
        "name": name,
        "ctx_loss": round(gain["ctx_loss"], 3),
        "noctx_loss": round(gain["noctx_loss"], 3),
        "final_train_loss_mean10": round(sum(r["loss"] for r in logs[-10:]) / 10, 3),
        "seconds": round(time.time() - t, 1),
        "curve": [(r["step"], round(r["loss"], 3)) for r in logs[::8]],
    }
    with open(os.path.join(sys.argv[3], f"{name}.json"), "w") as fh:
        json.dump(res, fh)
    print(json.dumps({k: v for k, v in res.items() if k != "curve"}), flush=True)


if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    ps = [ctx.Process(target=run, args=(n,)) for n in CONFIGS]
    [p.start() for p in ps]
    [p.join() for p in ps]
