"""Queries shared by the search benchmarks (hybrid.py, lexical_engines.py): NSMC reviews kept out of the index."""

from __future__ import annotations

from pathlib import Path


def neutral_reviews(data_dir: Path, n: int = 1000) -> list[str]:
    """The first ``n`` non-empty texts of NSMC's raw_neutral_reviews.tsv (last column, header skipped).

    They are the reviews rated 5-8, disjoint from NSMC's train and test splits (../shared/data/README), so as
    queries against an index of those splits they are real Korean reviews with no copy of themselves to find.
    """
    out: list[str] = []
    with open(data_dir / "nsmc" / "raw_neutral_reviews.tsv", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            text = line.rstrip("\n").split("\t")[-1].strip()
            if text:
                out.append(text)
            if len(out) == n:
                break
    return out
