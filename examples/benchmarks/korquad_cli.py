"""KorQuAD dev through the command line with every default: `koembed index` + `koembed search`, scored.

Writes KorQuAD 1.0 dev's distinct paragraphs as JSONL (id = the paragraph's id in
``koembed.evaluate.korquad_retrieval``) and its questions one a line, then runs, as a user would:

    koembed index paragraphs.jsonl -o ix
    koembed search ix --queries questions.txt --json -k 100

and scores the JSON hits (MRR@10, Recall@1/10/100, nDCG@10). No option is given to either command, so
this measures the defaults: the embedded model, the auto index type, the bigram lexical part, hybrid
mode with the model's recorded dense weight.

    python examples/benchmarks/korquad_cli.py [--workdir DIR] [--extra-search-args "--mode dense"]
    python examples/benchmarks/korquad_cli.py --extra-index-args "--model e5-small-ko"   # the search remembers it
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from koembed.evaluate import load_retrieval_data, ranking_metrics
from koembed.system import machine_summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--extra-search-args", default="", help="e.g. '--mode lexical' (default: none)")
    ap.add_argument("--extra-index-args", default="", help="e.g. '--model e5-small-ko' (default: none)")
    ap.add_argument("--reuse-index", action="store_true", help="search the index an earlier run left in --workdir")
    args = ap.parse_args(argv)
    data = load_retrieval_data("korquad-retrieval", args.data_dir)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="koembed-korquad-cli-"))
    work.mkdir(parents=True, exist_ok=True)
    with (work / "paragraphs.jsonl").open("w", encoding="utf-8") as fh:
        for doc_id, text in data.corpus.items():
            fh.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    qids = list(data.queries)
    (work / "questions.txt").write_text("".join(data.queries[q].replace("\n", " ") + "\n" for q in qids),
                                        encoding="utf-8")
    koembed = [sys.executable, "-m", "koembed"]
    print(f"# {machine_summary()}", flush=True)
    index_cmd = ["index", str(work / "paragraphs.jsonl"), "-o", str(work / "ix"), "-q",
                 *shlex.split(args.extra_index_args)]
    search_cmd = ["search", str(work / "ix"), "--queries", str(work / "questions.txt"), "--json", "-k", "100",
                  *shlex.split(args.extra_search_args)]
    times = {}
    reuse = args.reuse_index and (work / "ix").is_dir()
    for name, cmd in (("index", index_cmd), ("search", search_cmd)):
        if name == "index" and reuse:
            times[name] = 0.0
            continue
        print("$ koembed " + " ".join(shlex.quote(c) for c in cmd), flush=True)
        t0 = time.perf_counter()
        out = subprocess.run([*koembed, *cmd], check=True, capture_output=True, text=True).stdout
        times[name] = time.perf_counter() - t0
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len(qids), (len(lines), len(qids))
    rankings = {q: [h["id"] for h in line["hits"]] for q, line in zip(qids, lines, strict=True)}
    m = ranking_metrics(rankings, data.qrels)
    mode = lines[0].get("mode")
    print(f"KorQuAD dev, {len(qids)} questions, {len(data.corpus)} paragraphs, mode {mode}: "
          + "  ".join(f"{k} {m[k]:.4f}" for k in ("mrr@10", "recall@1", "recall@10", "recall@100", "ndcg@10"))
          + f"  (index {times['index']:.0f} s, search {times['search']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
