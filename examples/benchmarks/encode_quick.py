"""Encode throughput of ``koembed encode`` against ``SentenceTransformer.encode`` on the same model and texts.

Two models, both random-weight (speed does not depend on training): the tiny test model (2 layers, hidden
64) and a KoMiniLM-23M-shaped one (6 layers, hidden 384, 12 heads, intermediate 1536, a 32k WordPiece
vocabulary trained on KorSTS + NSMC so sentences split into a realistic number of tokens). Texts: the
KorSTS test sentences (sentence1 + sentence2), one a line.

For each model, in one process and one run: ``encode_file`` (what ``koembed encode`` runs: chunked
reading, length-sorted batches, .npy writing) and ``SentenceTransformer.encode`` with its defaults,
best of ``--repeat`` after one warm-up each; then the real console command, timed end to end.

    .venv/bin/python examples/benchmarks/encode_quick.py [--n 2000] [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def korsts_sentences(data: Path, n: int) -> list[str]:
    rows = (data / "korsts" / "sts-test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    cols = [r.split("\t") for r in rows]
    sentences = [c[5] for c in cols if len(c) >= 7] + [c[6] for c in cols if len(c) >= 7]
    return sentences[:n]


def tokenizer_corpus(data: Path) -> list[str]:
    texts = [c for r in (data / "korsts" / "sts-train.tsv").read_text(encoding="utf-8").splitlines()[1:]
             for c in r.split("\t")[5:7]]
    nsmc = (data / "nsmc" / "ratings_train.txt").read_text(encoding="utf-8").splitlines()[1:]
    return texts + [r.split("\t")[1] for r in nsmc if r.count("\t") == 2]


def build_models(data: Path, root: Path) -> dict[str, Path]:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from distill.tiny import build_tiny_bert, wrap_as_sentence_transformer
    from distill.tokenizer import train_wordpiece

    corpus = tokenizer_corpus(data)
    tiny = build_tiny_bert(corpus[:12000], root / "tiny-bert")
    big = train_wordpiece(corpus, root / "minilm-23m", vocab_size=32000, min_frequency=2, model_max_length=512)
    tok = AutoTokenizer.from_pretrained(big)
    config = BertConfig(vocab_size=len(tok), hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = BertModel(config)
    model.save_pretrained(big)
    params = sum(p.numel() for p in model.parameters())
    print(f"23M-shaped model: vocab {len(tok)}, {params / 1e6:.1f}M parameters", file=sys.stderr)
    return {
        "tiny (2x64)": wrap_as_sentence_transformer(tiny, root / "tiny-st"),
        "23M-shaped (6x384)": wrap_as_sentence_transformer(big, root / "minilm-23m-st"),
    }


def best_of(repeat: int, fn) -> float:
    fn()  # warm-up: first-call allocations and lazy imports are not throughput
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(name: str, model_dir: Path, texts: list[str], text_file: Path, repeat: int, threads: int | None) -> dict:
    from sentence_transformers import SentenceTransformer

    from koembed import KoMiniLMEncoder
    from koembed.file_encoding import encode_file

    out = text_file.with_suffix(".npy")
    encoder = KoMiniLMEncoder(str(model_dir))
    koembed_s = best_of(repeat, lambda: encode_file(text_file, out, model=encoder, show_progress=False))
    st = SentenceTransformer(str(model_dir), device="cpu")
    st_s = best_of(repeat, lambda: st.encode(texts, show_progress_bar=False))

    cmd = [str(Path(sys.executable).parent / "koembed"), "encode", str(text_file), "-o", str(out),
           "--model", str(model_dir), "--quiet"]
    env = os.environ | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    cli_wall = time.perf_counter() - start
    cli_report = json.loads(Path(f"{out}.json").read_text(encoding="utf-8"))["report"]
    n = len(texts)
    return {
        "model": name, "texts": n, "truncated": encoder.last_stats.truncated,
        "tokens_per_text": round(encoder.last_stats.tokens / max(1, encoder.last_stats.texts), 1),
        "koembed_encode_file_texts_per_s": round(n / koembed_s, 1),
        "sentence_transformers_encode_texts_per_s": round(n / st_s, 1),
        "ratio_koembed_over_st": round(st_s / koembed_s, 2),
        "cli_texts_per_s_after_load": cli_report["texts_per_s"],
        "cli_model_load_s": cli_report["load_seconds"],
        "cli_wall_s_incl_startup": round(cli_wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="sentences to encode")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per method (best is reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default: koembed.paths)")
    args = parser.parse_args()

    import torch

    from koembed.paths import data_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    data = data_dir(args.data)
    texts = korsts_sentences(data, args.n)
    with tempfile.TemporaryDirectory(prefix="koembed-bench-") as tmp:
        root = Path(tmp)
        text_file = root / "korsts.txt"
        text_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
        models = build_models(data, root)
        results = [measure(name, path, texts, text_file, args.repeat, args.threads) for name, path in models.items()]
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
    print(json.dumps({"machine": machine, "results": results}, ensure_ascii=False, indent=2))
    keys = ["model", "koembed_encode_file_texts_per_s", "sentence_transformers_encode_texts_per_s",
            "ratio_koembed_over_st", "cli_texts_per_s_after_load", "cli_wall_s_incl_startup"]
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in results:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
