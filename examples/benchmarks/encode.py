"""Encoding speed, the machine's floor, int8 fidelity and cold start: koembed backends vs sentence-transformers.

    python examples/benchmarks/encode.py --threads 2 [--trained-model DIR] [--speed-model DIR]

Speed runs on the KoMiniLM-23M architecture (6 layers, hidden 384, 12 heads, FFN 1536) with random
weights (built once into the koembed cache when --speed-model is not given); fidelity (cosine and
top-10 neighbour overlap against fp32 torch) needs trained weights (--trained-model), because
quantisation error on random weights says nothing. Texts: 2,000 real Korean sentences (KorSTS train
sentence 1 and NSMC test reviews) from the shared data folder. All numbers come from this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from koembed.paths import cache_dir, data_dir


def variants(presets: list[str]) -> list[tuple[str, str, dict]]:
    """(label, backend, options): torch, onnx fp32, and onnx-int8 once per quantisation preset."""
    out = [("torch", "torch", {}), ("onnx", "onnx", {})]
    return out + [(f"onnx-int8[{p}]", "onnx-int8", {"quantization": p}) for p in presets]
GEMM_SHAPES = [(384, 384, 384), (384, 384, 1536), (384, 1536, 384)]  # (tokens, in, out) of one 32-text batch


def korean_texts(n: int = 2000) -> list[str]:
    root = data_dir()
    korsts = [r.split("\t")[5] for r in (root / "korsts" / "sts-train.tsv").read_text("utf-8").splitlines()[1:]
              if r.count("\t") == 6]
    nsmc = [r.split("\t")[1] for r in (root / "nsmc" / "ratings_test.txt").read_text("utf-8").splitlines()[1:]
            if r.count("\t") == 2 and r.split("\t")[1].strip()]
    half = list(dict.fromkeys(korsts))[: n // 2]
    return half + nsmc[: n - len(half)]


def random_23m_model() -> Path:
    """KoMiniLM-23M architecture, random weights, a 32k WordPiece trained on KorSTS + NSMC train."""
    out = cache_dir() / "bench" / "kominilm-23m-random"
    if (out / "config.json").is_file():
        return out
    from distill.tiny import build_tiny_bert

    root = data_dir()
    texts = [r.split("\t")[1] for r in (root / "nsmc" / "ratings_train.txt").read_text("utf-8").splitlines()[1:]
             if r.count("\t") == 2]
    return build_tiny_bert(texts, out, vocab_size=32000, hidden_size=384, num_layers=6, num_heads=12,
                           intermediate_size=1536, max_position_embeddings=512)


def timed(fn, repeats: int) -> tuple[float, float]:
    """(median, best) seconds of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def flops_per_text(config: dict, lengths: np.ndarray) -> float:
    """Multiply-adds x2 of the encoder's matrix products, averaged over the texts' real token counts."""
    h, f, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    per_text = layers * (8 * lengths * h * h + 4 * lengths * h * f + 4 * lengths**2 * h)
    return float(per_text.mean())


def gemm_rates(threads: int) -> dict[str, float]:
    """Best GFLOP/s (fp32) and GOP/s (int8) at the model's GEMM shapes, per library, in this process."""
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    torch.set_num_threads(threads)
    rates: dict[str, float] = {}
    rng = np.random.default_rng(0)

    def rate(name: str, fn, ops: float) -> None:
        med, best = timed(fn, 20)
        rates[name] = max(rates.get(name, 0.0), ops / best / 1e9)

    for m, k, n in GEMM_SHAPES:
        a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
        ops = 2.0 * m * k * n
        rate("numpy fp32", lambda a=a, b=b: a @ b, ops)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        rate("torch fp32", lambda ta=ta, tb=tb: ta @ tb, ops)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        for dtype, name, op in ((TensorProto.FLOAT, "ort fp32", "MatMul"),
                                (TensorProto.UINT8, "ort int8", "MatMulInteger")):
            out_t = TensorProto.INT32 if op == "MatMulInteger" else TensorProto.FLOAT
            w = b if op == "MatMul" else rng.integers(-127, 127, (k, n), dtype=np.int8)
            graph = helper.make_graph(
                [helper.make_node(op, ["a", "w"], ["y"])], "g",
                [helper.make_tensor_value_info("a", dtype, [m, k])],
                [helper.make_tensor_value_info("y", out_t, [m, n])],
                [onnx.numpy_helper.from_array(w, "w")],
            )
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            x = a if op == "MatMul" else rng.integers(0, 255, (m, k), dtype=np.uint8)
            rate(name, lambda sess=sess, x=x: sess.run(None, {"a": x}), ops)
    return rates


def neighbours(vecs: np.ndarray, k: int = 10) -> np.ndarray:
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def fidelity(ref: np.ndarray, other: np.ndarray) -> dict[str, float]:
    cos = (ref * other).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(other, axis=1))
    a, b = neighbours(ref), neighbours(other)
    overlap = np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)])
    return {"mean_cos": float(cos.mean()), "min_cos": float(cos.min()), "top10_overlap": float(overlap)}


def encode_with(model: Path, backend: str, texts: list[str], threads: int, **options):
    from koembed import KoMiniLMEncoder

    extra = {"threads": threads} if backend.startswith("onnx") else {}
    enc = KoMiniLMEncoder(str(model), backend=backend, **extra, **options)
    return enc, enc.encode(texts, show_progress=False)


def build_search_index(model: Path, folder: Path, n_docs: int, threads: int) -> Path | None:
    """A ``n_docs`` index from the model's onnx vectors of the benchmark texts, tiled with noise (no re-encoding)."""
    try:
        from koembed.index import Index
    except ImportError:
        return None
    enc, vecs = encode_with(model, "onnx", korean_texts(2000), threads)
    rng = np.random.default_rng(0)
    reps = -(-n_docs // len(vecs))
    tiled = np.tile(vecs, (reps, 1))[:n_docs] + 0.05 * rng.standard_normal((n_docs, vecs.shape[1]), dtype=np.float32)
    index = Index.create(folder, enc.dim, expected_count=n_docs, model_name=str(model),
                         model_fingerprint=enc.fingerprint, backend="onnx")
    try:
        texts = korean_texts(2000)
        for s in range(0, n_docs, 20_000):
            ids = [str(i) for i in range(s, min(s + 20_000, n_docs))]
            index.add_vectors(ids, tiled[s : s + len(ids)], [texts[int(i) % len(texts)] for i in ids], commit=False)
        index.commit()
    finally:
        index.close()
    return folder


def cold_start(model: Path, threads: int, repeats: int, search_docs: int) -> dict[str, float]:
    """Wall seconds of fresh processes: koembed encode/search (onnx) vs a sentence-transformers script."""
    env = os.environ | {"KOEMBED_THREADS": str(threads), "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    koembed = [str(Path(sys.executable).with_name("koembed"))]
    if not Path(koembed[0]).exists():
        koembed = [sys.executable, "-m", "koembed"]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "ten.txt"
        lines.write_text("\n".join(korean_texts(10)) + "\n", encoding="utf-8")
        st_script = ("import sys; from sentence_transformers import SentenceTransformer; "
                     "m = SentenceTransformer(sys.argv[1], device='cpu'); "
                     "m.encode(open(sys.argv[2], encoding='utf-8').read().splitlines())")
        encode = koembed + ["encode", str(lines), "--model", str(model), "-q", "-o"]
        cmds = {
            "koembed encode --backend onnx (10 lines)": encode + [f"{tmp}/v.npy", "--backend", "onnx"],
            "koembed encode --backend torch (10 lines)": encode + [f"{tmp}/t.npy", "--backend", "torch"],
            "python: import sentence_transformers + load + encode 10": [sys.executable, "-c", st_script, str(model),
                                                                        str(lines)],
        }
        if search_docs and build_search_index(model, Path(tmp) / "index", search_docs, threads) is not None:
            cmds[f"koembed search DIR '질의' --backend onnx ({search_docs} docs)"] = koembed + [
                "search", f"{tmp}/index", "한국어 문장 검색", "--backend", "onnx", "-q", "--json"]
        for name, cmd in cmds.items():
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                times.append(time.perf_counter() - t)
                if proc.returncode != 0:
                    print(f"  {name}: failed ({proc.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
                    break
            out[name] = statistics.median(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--speed-model", type=Path, default=None, help="bare BERT or ST folder (default: random 23M)")
    ap.add_argument("--trained-model", type=Path, default=None, help="trained model for cosine/overlap")
    ap.add_argument("--int8-presets", nargs="*", default=["dynamic-all", "dynamic", "static"],
                    help="presets of koembed.backends.onnx.quantize")
    ap.add_argument("--search-docs", type=int, default=100_000, help="index size for the search cold start")
    ap.add_argument("--skip", nargs="*", default=[], help="parts to skip: speed floor fidelity cold")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["KOEMBED_THREADS"] = str(args.threads)

    import torch

    torch.set_num_threads(args.threads)
    texts = korean_texts(args.texts)
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                     "threads": args.threads, "texts": len(texts), "command": " ".join(sys.argv)}
    print(f"# {len(texts)} Korean texts, {args.threads} threads, {results['machine']}")
    speed_model = args.speed_model or random_23m_model()

    if "speed" not in args.skip:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(speed_model), device="cpu")
        st.encode(texts[:256])  # warm-up; koembed's encoders warm up in encode_with
        calls = {"ST.encode defaults": lambda: st.encode(texts)}
        encoders = {}
        for label, backend, options in variants(args.int8_presets):
            encoders[label], _ = encode_with(speed_model, backend, texts, args.threads, **options)
            calls[f"koembed {label}"] = lambda enc=encoders[label]: enc.encode(texts, show_progress=False)
        # Interleaved rounds (every variant once per round), so a change in machine load hits all alike.
        times = {name: [] for name in calls}
        for _ in range(args.repeats):
            for name, call in calls.items():
                t = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t)
        speed = {name: (len(texts) / statistics.median(ts), len(texts) / min(ts)) for name, ts in times.items()}
        enc = encoders["onnx"]
        tokens = enc._backend.token_lengths(texts)
        results["speed"] = speed
        base = speed["ST.encode defaults"][0]
        print("\n## texts/s (median, best of runs; ratio = median / ST.encode median)")
        for name, (med, best) in speed.items():
            print(f"  {name:<28} {med:8.1f} {best:8.1f}   x{med / base:.2f}")
        config = json.loads((speed_model / "config.json").read_text())
        lengths = np.minimum(tokens, enc.max_seq_length).astype(np.float64)
        results["mean_tokens"] = float(lengths.mean())
        results["mflop_per_text"] = flops_per_text(config, lengths) / 1e6
        print(f"  mean tokens/text {lengths.mean():.1f}; {results['mflop_per_text']:.0f} MFLOP/text")

    if "floor" not in args.skip and "speed" in results:
        rates = gemm_rates(args.threads)
        results["gemm_rates"] = rates
        fp32 = max(v for k, v in rates.items() if "fp32" in k)
        int8 = rates["ort int8"]
        per_text = results["mflop_per_text"] * 1e6
        floors = {"fp32": fp32 * 1e9 / per_text, "int8": int8 * 1e9 / per_text}
        results["floors"] = floors
        shown = ", ".join(f"{k} {v:.0f}" for k, v in rates.items())
        print(f"\n## GEMM rates at the model's shapes (G(FL)OP/s): {shown}")
        for name, (got, _) in results["speed"].items():
            kind = "int8" if "int8" in name else "fp32"
            print(f"  {name:<28} {got / floors[kind]:6.0%} of the {kind} floor ({floors[kind]:.0f} texts/s)")

    if "fidelity" not in args.skip:
        if args.trained_model is None:
            print("\n## fidelity: skipped (pass --trained-model; random weights say nothing about int8)")
        else:
            _, ref = encode_with(args.trained_model, "torch", texts, args.threads)
            results["fidelity"] = {}
            print(f"\n## fidelity vs fp32 torch on {args.trained_model}")
            for label, backend, options in variants(args.int8_presets)[1:]:
                _, vecs = encode_with(args.trained_model, backend, texts, args.threads, **options)
                results["fidelity"][label] = fid = fidelity(ref, vecs)
                print(f"  {label:<20} mean cos {fid['mean_cos']:.5f}  min cos {fid['min_cos']:.5f}  "
                      f"top-10 overlap {fid['top10_overlap']:.3f}")

    if "cold" not in args.skip:
        results["cold_start_s"] = cold = cold_start(speed_model, args.threads, args.repeats, args.search_docs)
        print("\n## cold start (wall s, median of fresh processes; ONNX cache already built)")
        for name, secs in cold.items():
            print(f"  {name:<58} {secs:6.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
