"""Training examples for each stage, built from the readers in :mod:`koembed.korean_data`.

- ``nli``: (anchor, positive, negative) triplets from NLI data (premise, an entailment hypothesis,
  a contradiction hypothesis of the same premise; also hypothesis -> premise, as in the
  sentence-transformers NLI recipe), and (anchor, positive) pairs from premises without a
  contradiction and from paraphrase data (paraKQC, Question Pair duplicates).
- ``sts``: (sentence1, sentence2, score / 5) from KorSTS-format TSV or KLUE-STS JSON.

File specs are ``FORMAT:PATH`` (``parakqc:parakqc/paraKQC_v1.txt``) or a bare path whose format is
inferred from its name; ``hub:NAME`` loads a Hub dataset when online. Relative paths are taken from
the data folder.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

from koembed.errors import InputError
from koembed.korean_data import (
    NLI_LABELS,
    RowReport,
    load_pairs_from_hub,
    read_klue_nli,
    read_klue_sts,
    read_kornli,
    read_korsts,
    read_parakqc_pairs,
    read_question_pair,
)

# format -> (reader, what its rows are): "nli" rows carry NLI labels, "pairs" are positive pairs,
# "sts" rows carry a 0..5 score.
READERS: dict[str, tuple[Callable[[Path, RowReport], list[dict]], str]] = {
    "kornli": (read_kornli, "nli"),
    "klue-nli": (read_klue_nli, "nli"),
    "parakqc": (read_parakqc_pairs, "pairs"),
    "question-pair": (read_question_pair, "pairs"),
    "korsts": (read_korsts, "sts"),
    "klue-sts": (read_klue_sts, "sts"),
}


def infer_format(path: str) -> str:
    name = Path(path).name.lower()
    if "parakqc" in name:
        return "parakqc"
    if "klue-nli" in name:
        return "klue-nli"
    if "klue-sts" in name:
        return "klue-sts"
    if name.startswith(("sts-", "korsts")):
        return "korsts"
    if "question_pair" in str(path).lower() or name.startswith("kor_pair"):
        return "question-pair"
    if name.endswith(".tsv"):
        return "kornli"
    raise InputError(f"{path}: cannot tell the data format from the name; write it as FORMAT:PATH with FORMAT one of "
                     f"{', '.join(READERS)}")


def parse_spec(spec: str, data_dir: Path) -> tuple[str, Path | str]:
    """``FORMAT:PATH`` / ``PATH`` / ``hub:NAME`` -> (format, resolved path or Hub name)."""
    fmt, sep, rest = spec.partition(":")
    if sep and fmt == "hub":
        return "hub", rest
    if not sep or fmt not in READERS:
        fmt, rest = infer_format(spec), spec
    p = Path(rest).expanduser()
    p = p if p.is_absolute() else data_dir / p
    if not p.is_file():
        raise InputError(f"training data {spec!r}: {p} not found; pass an existing file or --data-dir")
    return fmt, p


def read_spec(spec: str, data_dir: Path, report: RowReport, expected: Sequence[str]) -> tuple[str, list[dict]]:
    """Read one file spec; the format's row kind must be one of ``expected`` (e.g. no STS file in the NLI stage)."""
    fmt, where = parse_spec(spec, data_dir)
    if fmt == "hub":
        # Hub rows are NLI rows when their labels are NLI label names, else pairs (kept when unlabelled or label 1).
        rows = load_pairs_from_hub(str(where), report=report)
        if rows and rows[0].get("label") in NLI_LABELS:
            return "nli", [r for r in rows if r["label"] in NLI_LABELS]
        return "pairs", [r for r in rows if r.get("label", 1) in (1, True)]
    reader, kind = READERS[fmt]
    if kind not in expected:
        raise InputError(f"training data {spec!r} is {fmt} ({kind} rows); "
                         f"this stage takes {' or '.join(expected)} data")
    rows = reader(where, report)
    report.raise_if_empty(where)
    return kind, rows


def nli_triplets(rows: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """(triplets, pairs) from NLI rows; a premise without a contradiction yields pairs only."""
    by_premise: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        slot = by_premise.setdefault(r["sentence1"], {"entailment": [], "contradiction": []})
        if r["label"] in slot:
            slot[r["label"]].append(r["sentence2"])
    triplets, pairs = [], []
    for premise, hyps in by_premise.items():
        ents, cons = hyps["entailment"], hyps["contradiction"]
        for i, ent in enumerate(ents):
            if cons:
                neg = cons[i % len(cons)]
                triplets.append({"anchor": premise, "positive": ent, "negative": neg})
                triplets.append({"anchor": ent, "positive": premise, "negative": neg})
            else:
                pairs.append({"anchor": premise, "positive": ent})
    return triplets, pairs


def positive_pairs(rows: Sequence[dict]) -> list[dict]:
    """Rows labelled same-meaning (label 1), minus identical pairs, which teach nothing."""
    return [{"anchor": r["sentence1"], "positive": r["sentence2"]}
            for r in rows if r.get("label", 1) == 1 and r["sentence1"] != r["sentence2"]]


def _sample(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    if n is None or n >= len(rows):
        return rows
    return random.Random(seed).sample(rows, n)


def nli_stage_data(specs: Sequence[str], data_dir: Path, report: RowReport, max_samples: int | None = None,
                   seed: int = 0) -> dict[str, list[dict]]:
    """``{"triplets": [...], "pairs": [...]}`` (empty lists dropped) for MultipleNegativesRankingLoss."""
    nli_rows: list[dict] = []
    pairs: list[dict] = []
    for spec in specs:
        kind, rows = read_spec(spec, data_dir, report, expected=("nli", "pairs"))
        if kind == "nli":
            nli_rows += rows
        else:
            pairs += positive_pairs(rows)
    triplets, nli_pairs = nli_triplets(nli_rows)
    out = {"triplets": _sample(triplets, max_samples, seed), "pairs": _sample(pairs + nli_pairs, max_samples, seed)}
    out = {k: v for k, v in out.items() if v}
    if not out:
        raise InputError("the nli stage has no training examples: give NLI files with entailment rows or pair files")
    return out


def sts_stage_data(specs: Sequence[str], data_dir: Path, report: RowReport, max_samples: int | None = None,
                   seed: int = 0) -> dict[str, list[dict]]:
    """``{"sts": [{"sentence1", "sentence2", "score" in [0, 1]}]}`` for CoSENT / CosineSimilarity loss."""
    rows: list[dict] = []
    for spec in specs:
        rows += read_spec(spec, data_dir, report, expected=("sts",))[1]
    data = [{"sentence1": r["sentence1"], "sentence2": r["sentence2"], "score": r["score"] / 5.0} for r in rows]
    if not data:
        raise InputError("the sts stage has no training examples: give KorSTS or KLUE-STS files")
    return {"sts": _sample(data, max_samples, seed)}


def to_datasets(examples: dict[str, list[dict]]):
    """A ``datasets.DatasetDict`` with one dataset per source, also for one source (the trainer samples
    several proportionally, and one alone in its own order)."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({name: Dataset.from_list(rows) for name, rows in examples.items()})
