"""Distillation benchmark: hook path vs ``output_attentions`` path, peak memory, per-step FLOPs, bytes/token.

    .venv/bin/python examples/benchmarks/distill_throughput.py [--steps 2] [--rounds 2] [--batch-size 4]
        [--max-length 128]
        [--tokenizer DIR] [--json docs/distill_bench.json]      (torch threads: $BENCH_THREADS, default 1)

1. Throughput: one training step = frozen teacher forward + student forward/backward + MiniLM loss +
   AdamW, on random token ids, teacher shaped like klue/bert-base (12 x 768, 12 heads, vocab 32000)
   and the kominilm-23m student. Each path runs in its own fresh process (so peak RSS is its own),
   paths alternate over ``--rounds``, the best tokens/s per path is kept, and the ratio is reported.
2. FLOPs per token of one distillation step, counted with ``torch.utils.flop_counter`` (eager
   attention so that attention matmuls are counted on CPU too), for kominilm-23m and kominilm-68m.
3. Bytes per token of Korean text with a 32k WordPiece tokenizer (trained here on half of the local
   recipe corpus unless ``--tokenizer`` is given; measured on the other half), and the tokenizer's
   single-thread throughput.
4. An estimate of a full 20 GB distillation run on 8 GPUs from (2) and (3) at a stated MFU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

TEACHER = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
           "vocab_size": 32000}
PEAK_BF16 = {"A100 (312 TFLOP/s bf16)": 312e12, "H100 SXM (989 TFLOP/s bf16 dense)": 989e12}
MFU = 0.30
CORPUS_BYTES = 20e9


def _models(student: str, mode: str, seed: int = 0):
    import torch
    from transformers import BertConfig, BertModel

    from distill.layer_map import uniform_layer_map
    from distill.losses import MiniLMLoss
    from distill.student import build_student, student_config
    from distill.taps import TappedBert

    torch.manual_seed(seed)
    teacher = BertModel(BertConfig(**TEACHER)).eval().requires_grad_(False)
    # Attention dropout off on both paths: output_attentions returns post-dropout probabilities.
    s_cfg = student_config(student, teacher.config, {"attention_probs_dropout_prob": 0.0})
    s_model, _ = build_student(s_cfg, seed=seed)
    pairs = uniform_layer_map(s_cfg.num_hidden_layers, teacher.config.num_hidden_layers)
    if mode == "flops":  # eager attention: the CPU SDPA kernel is invisible to the FLOP counter
        teacher.set_attn_implementation("eager")
        s_model.set_attn_implementation("eager")
        mode = "hooks"
    t = TappedBert(teacher, [t for _, t in pairs], mode=mode)
    s = TappedBert(s_model.train(), [s for s, _ in pairs], mode=mode)
    return t, s, MiniLMLoss(pairs)


def _step(t, s, loss_fn, opt, ids, mask):
    import torch

    with torch.no_grad():
        t_taps = t(ids, mask)
    loss = loss_fn(t_taps, s(ids, mask), mask).total
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def worker(mode: str, student: str, steps: int, batch: int, length: int) -> dict:
    """One path in this (fresh) process: tokens/s over ``steps`` timed steps after one warm-up step."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    t, s, loss_fn = _models(student, mode)
    t, s = t.to(device), s.to(device)
    opt = torch.optim.AdamW(s.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, TEACHER["vocab_size"], (batch, length), generator=g).to(device)
    mask = torch.ones_like(ids)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    first = _step(t, s, loss_fn, opt, ids, mask)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        _step(t, s, loss_fn, opt, ids, mask)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    out = {"mode": mode, "tokens_per_s": steps * batch * length / seconds, "s_per_step": seconds / steps,
           "first_loss": first, "peak_rss_growth_mb": rss_growth, "device": device}
    if device == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def throughput(args) -> dict:
    runs: dict[str, list[dict]] = {"hooks": [], "attentions": []}
    for _ in range(args.rounds):
        for mode in runs:
            cmd = [sys.executable, __file__, "--worker", mode, "--steps", str(args.steps), "--batch-size",
                   str(args.batch_size), "--max-length", str(args.max_length), "--student", args.student]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"  {mode}: {runs[mode][-1]['tokens_per_s']:.0f} tokens/s", file=sys.stderr)
    best = {m: max(r, key=lambda x: x["tokens_per_s"]) for m, r in runs.items()}
    return {"runs": runs, "best": best,
            "ratio_hooks_over_attentions": best["hooks"]["tokens_per_s"] / best["attentions"]["tokens_per_s"]}


def flops_per_token(student: str, length: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    t, s, loss_fn = _models(student, "flops")
    opt = torch.optim.AdamW(s.parameters(), lr=1e-4)
    ids = torch.randint(5, TEACHER["vocab_size"], (1, length))
    mask = torch.ones_like(ids)
    with FlopCounterMode(display=False) as teacher_count, torch.no_grad():
        t(ids, mask)
    with FlopCounterMode(display=False) as total:
        _step(t, s, loss_fn, opt, ids, mask)
    full_teacher = sum(p.numel() for n, p in t.bert.named_parameters() if "embeddings" not in n and "pooler" not in n)
    return {"student": student, "student_params": sum(p.numel() for p in s.bert.parameters()),
            "teacher_fwd_flops_per_token": teacher_count.get_total_flops() / length,
            "step_flops_per_token": total.get_total_flops() / length,
            "teacher_nonembedding_params": full_teacher}


def tokenizer_stats(args) -> dict:
    from transformers import AutoTokenizer

    from distill.recipe.corpus import write_corpus
    from distill.tokenizer import train_wordpiece
    from koembed.paths import data_dir

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "recipe_corpus.txt"
    if not corpus.is_file():
        write_corpus(data_dir(), corpus)
    lines = corpus.read_text(encoding="utf-8").splitlines()
    tok_dir = Path(args.tokenizer) if args.tokenizer else work / "wordpiece-32k"
    if not (tok_dir / "tokenizer.json").is_file():
        train_wordpiece(lines[::2], tok_dir, vocab_size=32000, min_frequency=2)
    tok = AutoTokenizer.from_pretrained(tok_dir).backend_tokenizer
    held = lines[1::2]
    n_bytes = sum(len(x.encode("utf-8")) + 1 for x in held)
    start, n_tok = time.perf_counter(), 0
    for i in range(0, len(held), 256):
        n_tok += sum(len(e.ids) for e in tok.encode_batch(held[i:i + 256], add_special_tokens=False))
    seconds = time.perf_counter() - start
    stats = {"tokenizer": str(tok_dir), "heldout_bytes": n_bytes, "heldout_tokens": n_tok,
             "bytes_per_token": n_bytes / n_tok, "tokenize_tokens_per_s_1thread": n_tok / seconds}
    stats["packed_stream"] = [_stream_rate(corpus, tok_dir, world, workers) for world, workers in
                              ((1, 0), (8, 0), (1, 2))]
    return stats


def _stream_rate(corpus: Path, tok_dir: Path, world: int, workers: int, batches: int = 200) -> dict:
    """Tokens/s that process 0 of ``world`` gets from the data pipeline (read, normalise, tokenise, pack).

    One corpus file, so with ``world`` > 1 every process reads every record and tokenises its share.
    """
    from transformers import AutoTokenizer

    from distill.data import open_batches

    it, _ = open_batches([str(corpus)], AutoTokenizer.from_pretrained(tok_dir), max_length=128, batch_size=32,
                         rank=0, world_size=world, workers=workers)
    next(it)  # start-up (worker processes, first tokenised block) is not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    seconds = time.perf_counter() - start
    return {"world_size": world, "data_workers": workers, "shard": "documents",
            "tokens_per_s_rank0": batches * 32 * 128 / seconds}


def estimate(flops: list[dict], tok: dict, gpus: int = 8) -> list[dict]:
    tokens = CORPUS_BYTES / tok["bytes_per_token"]
    rows = []
    for f in flops:
        for gpu, peak in PEAK_BF16.items():
            per_gpu = peak * MFU / f["step_flops_per_token"]
            hours = tokens / (per_gpu * gpus) / 3600
            rows.append({"student": f["student"], "gpu": gpu, "tokens_per_epoch": tokens, "mfu": MFU,
                         "tokens_per_s_per_gpu": per_gpu, "hours_per_epoch_8gpu": hours,
                         "tokenizer_threads_per_gpu_needed": per_gpu / tok["tokenize_tokens_per_s_1thread"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--student", default="kominilm-23m")
    ap.add_argument("--tokenizer", default=None, help="32k tokenizer folder (default: train one on local data)")
    ap.add_argument("--workdir", default=str(Path(os.environ.get("TMPDIR", "/tmp")) / "koembed-distill-bench"))
    ap.add_argument("--json", default=None, help="write all results here")
    ap.add_argument("--parts", default="throughput,flops,tokenizer", help="comma-separated subset to run")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    if args.worker:
        print(json.dumps(worker(args.worker, args.student, args.steps, args.batch_size, args.max_length)))
        return
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": platform.processor() or
              platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
              "torch_threads": torch.get_num_threads(), "load_avg_start": os.getloadavg()}
    parts = set(args.parts.split(","))
    if "throughput" in parts:
        print("throughput (hooks vs output_attentions)...", file=sys.stderr)
        result["throughput"] = throughput(args)
    if "flops" in parts:
        print("FLOPs...", file=sys.stderr)
        result["flops"] = [flops_per_token(s, args.max_length) for s in ("kominilm-23m", "kominilm-68m")]
    if "tokenizer" in parts:
        print("tokenizer...", file=sys.stderr)
        result["tokenizer"] = tokenizer_stats(args)
    if {"flops", "tokenizer"} <= parts:
        result["estimate"] = estimate(result["flops"], result["tokenizer"])
    result["load_avg_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
