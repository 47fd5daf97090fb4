"""The distilled student against its teacher: encoding speed with the same backend, threads and texts, one run.

1,000 KorSTS test sentences with the query prompt (what issue 25's ">= 1.8x as fast" is measured on), each model
warmed up on 64 of them, then timed twice; the best of the two counts. A machine line heads the output.

    python examples/benchmarks/student_speed.py                                   # kominilm-e5-ko vs e5-small-ko
    python examples/benchmarks/student_speed.py --student DIR --teacher e5-small-ko --backend onnx --threads 2
"""

from __future__ import annotations

import argparse
import json
import time


def texts_per_second(model: str, texts: list[str], backend: str, threads: int, repeats: int) -> float:
    from koembed import KoMiniLMEncoder

    enc = KoMiniLMEncoder(model, backend=backend, threads=threads)
    enc.encode(texts[:64], prompt_name="query", show_progress=False)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        enc.encode(texts, prompt_name="query", show_progress=False)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--student", default="kominilm-e5-ko")
    ap.add_argument("--teacher", default="e5-small-ko")
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    from koembed.data import read_split
    from koembed.system import machine_summary

    rows = read_split("korsts", "test", args.data_dir, use_hub=False).rows
    texts = [s for r in rows for s in (r["sentence1"], r["sentence2"])][: args.sentences]
    print(f"# {machine_summary()}", flush=True)
    rates = {}
    for role, model in (("student", args.student), ("teacher", args.teacher)):
        rates[role] = texts_per_second(model, texts, args.backend, args.threads, args.repeats)
        print(f"{role:<8} {model}: {rates[role]:.1f} texts/s", flush=True)
    print(json.dumps({"backend": args.backend, "threads": args.threads, "texts": len(texts),
                      "student": round(rates["student"], 1), "teacher": round(rates["teacher"], 1),
                      "ratio": round(rates["student"] / rates["teacher"], 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
