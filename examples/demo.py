"""README command (a): encode ``examples/texts.txt``, index it, and search it, as a user would from the shell.

Uses the embedded default model when this install ships one; otherwise (no Hub access here) it
first builds a tiny Korean model offline with ``distill.tiny`` — a trained WordPiece tokenizer and
a *randomly initialised* 2-layer BERT — so every command runs, but the search results then carry
no meaning. Outputs go to ``.cache/demo/``.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / ".cache" / "demo"
KOEMBED = [sys.executable, "-m", "koembed"]
QUERIES = ["내일 날씨는 어떤가요?", "맛있는 한국 음식", "축구 경기 결과"]


def demo_model() -> list[str]:
    """``--model`` arguments: none when the embedded default exists, else a tiny model built here."""
    from koembed.model_source import default_model

    if Path(default_model()).is_dir():
        print(f"demo: using the embedded default model {default_model()}", file=sys.stderr)
        return []
    tiny = OUT / "tiny-model"
    if not (tiny / "config.json").is_file():
        from distill.tiny import build_tiny_bert

        print("demo: no embedded default model in this install: building a tiny random-weight model "
              f"offline at {tiny} (its search results are not meaningful)", file=sys.stderr)
        build_tiny_bert((HERE / "texts.txt").read_text(encoding="utf-8").splitlines(), tiny, vocab_size=1500)
    return ["--model", str(tiny)]


def run(args: list[str], capture: bool = False) -> str:
    print("$ koembed " + " ".join(shlex.quote(a) for a in args[len(KOEMBED):]), file=sys.stderr, flush=True)
    done = subprocess.run(args, check=True, stdout=subprocess.PIPE if capture else None, text=True)
    return done.stdout or ""


def found_by(index: str, query: str, k: int, model: list[str]) -> None:
    """The default (hybrid) search's hits, each with the side that found it: its own top-k in dense mode
    (meaning: the model), in lexical mode (shared words, BM25), or both."""
    def hits(mode: str) -> list[dict]:
        out = run([*KOEMBED, "search", index, query, "-k", str(k), "--json", "--mode", mode, "-q", *model],
                  capture=True)
        return json.loads(out)["hits"]

    dense_ids = {h["id"] for h in hits("dense")}
    lexical_ids = {h["id"] for h in hits("lexical")}
    print(f"\n{query}")
    for rank, hit in enumerate(hits("hybrid"), start=1):
        sides = [name for name, ids in (("dense", dense_ids), ("lexical", lexical_ids)) if hit["id"] in ids]
        side = " + ".join(sides) or "fusion only"
        print(f"  {rank}. [{side:<17}] {hit['text']}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    model = demo_model()
    texts = str(HERE / "texts.txt")
    run([*KOEMBED, "encode", texts, "-o", str(OUT / "texts.npy"), *model])
    # The demo's index is its own scratch: start it afresh, since an index made by an earlier model
    # (an older embedded default) is rightly refused rather than mixed with new vectors.
    shutil.rmtree(OUT / "index", ignore_errors=True)
    run([*KOEMBED, "index", texts, "-o", str(OUT / "index"), *model])
    run([*KOEMBED, "info", str(OUT / "index")])
    run([*KOEMBED, "search", str(OUT / "index"), QUERIES[0], "-k", "3"])  # the table as the CLI prints it
    print("\nWhich side found each hit (its own top 3 in dense mode, in lexical mode, or both):")
    for query in QUERIES:
        found_by(str(OUT / "index"), query, 3, model)


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
