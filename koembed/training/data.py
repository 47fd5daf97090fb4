"""Training examples for each stage, built from the readers in :mod:`koembed.korean_data`.

- ``nli``: (anchor, positive, negative) triplets from NLI data (premise, an entailment hypothesis,
  a contradiction hypothesis of the same premise; also hypothesis -> premise, as in the
  sentence-transformers NLI recipe), and (anchor, positive) pairs from premises without a
  contradiction and from paraphrase data (paraKQC, Question Pair duplicates).
- ``sts``: (sentence1, sentence2, score / 5) from KorSTS-format TSV or KLUE-STS JSON.

A data spec is one of:

- ``DATASET:SPLIT``: a split of a catalogued data set (``korsts:train``, ``kornli:dev``; see
  :mod:`koembed.data.catalogue`), read from the local files or, when they are absent, the Hub;
- ``FORMAT:PATH`` or a bare ``PATH`` (format inferred from the name; relative paths are taken from the
  data folder). A relative path the catalogue knows (``korsts/sts-train.tsv``) falls back to the
  Hub like ``DATASET:SPLIT`` when the file is absent;
- ``hub:NAME``: any Hub dataset of sentence pairs, when online.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from koembed.data.catalogue import CATALOGUE, SPLITS, dataset_for_path
from koembed.data.load import read_split
from koembed.errors import InputError
from koembed.korean_data import FORMATS, NLI_LABELS, RowReport

# The formats a training stage can use: their rows are "nli" (NLI labels), "pairs" (positive pairs) or
# "sts" (a 0..5 score).
TRAINING_ROWS = ("nli", "pairs", "sts")
READERS = {name: f for name, f in FORMATS.items() if f.rows in TRAINING_ROWS}


def infer_format(path: str) -> str:
    """The format of a data file: the catalogue's for a file it lists, else guessed from the name."""
    known = dataset_for_path(path)
    if known is not None and known[0].format in READERS:
        return known[0].format
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
    """``DATASET:SPLIT`` / ``FORMAT:PATH`` / ``PATH`` / ``hub:NAME`` -> (format or ``catalogue`` or ``hub``, where).

    ``where`` is ``DATASET:SPLIT`` for a catalogued split (also a missing local file the catalogue
    knows), the resolved file path otherwise, or the Hub name.
    """
    fmt, sep, rest = spec.partition(":")
    if sep and fmt == "hub":
        return "hub", rest
    if sep and fmt in CATALOGUE and rest in SPLITS:
        ds = CATALOGUE[fmt]
        if ds.format not in READERS:
            raise InputError(f"training data {spec!r}: {ds.name} has no sentence-pair rows to train on")
        return "catalogue", f"{ds.name}:{rest}"
    if not sep or fmt not in READERS:
        fmt, rest = infer_format(spec), spec
    p = Path(rest).expanduser()
    if not p.is_absolute():
        known = dataset_for_path(rest)
        p = data_dir / p
        if not p.is_file() and known is not None and known[1] is not None and known[0].format == fmt:
            return "catalogue", f"{known[0].name}:{known[1]}"
    if not p.is_file():
        raise InputError(f"training data {spec!r}: {p} not found; pass an existing file, a data folder that "
                         f"holds it, or a catalogued split such as korsts:train")
    return fmt, p


def read_spec(spec: str, data_dir: Path, report: RowReport, expected: Sequence[str],
              use_hub: bool = True) -> tuple[str, list[dict]]:
    """Read one data spec; the format's row kind must be one of ``expected`` (e.g. no STS file in the NLI stage)."""
    fmt, where = parse_spec(spec, data_dir)
    if fmt == "hub":
        from koembed.data.hub import load_pairs_from_hub

        # Hub rows are NLI rows when their labels are NLI label names, else pairs (kept when unlabelled or label 1).
        rows = load_pairs_from_hub(str(where), report=report)
        if rows and rows[0].get("label") in NLI_LABELS:
            return "nli", [r for r in rows if r["label"] in NLI_LABELS]
        return "pairs", [r for r in rows if r.get("label", 1) in (1, True)]
    if fmt == "catalogue":
        name, _, split = str(where).partition(":")
        fmt = CATALOGUE[name].format
    kind = READERS[fmt].rows
    if kind not in expected:
        raise InputError(f"training data {spec!r} is {fmt} ({kind} rows); "
                         f"this stage takes {' or '.join(expected)} data")
    if isinstance(where, Path):
        rows = READERS[fmt].read(where, report)
        report.raise_if_empty(where)
        return kind, rows
    got = read_split(name, split, data_dir, report, use_hub)
    if not got.rows:
        raise InputError(f"training data {spec!r}: no usable rows ({got.source}); {report.summary()}")
    return kind, got.rows


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
                   seed: int = 0, use_hub: bool = True) -> dict[str, list[dict]]:
    """``{"triplets": [...], "pairs": [...]}`` (empty lists dropped) for MultipleNegativesRankingLoss."""
    nli_rows: list[dict] = []
    pairs: list[dict] = []
    for spec in specs:
        kind, rows = read_spec(spec, data_dir, report, ("nli", "pairs"), use_hub)
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
                   seed: int = 0, use_hub: bool = True) -> dict[str, list[dict]]:
    """``{"sts": [{"sentence1", "sentence2", "score" in [0, 1]}]}`` for CoSENT / CosineSimilarity loss."""
    rows: list[dict] = []
    for spec in specs:
        rows += read_spec(spec, data_dir, report, ("sts",), use_hub)[1]
    data = [{"sentence1": r["sentence1"], "sentence2": r["sentence2"], "score": r["score"] / 5.0} for r in rows]
    if not data:
        raise InputError("the sts stage has no training examples: give KorSTS or KLUE-STS data")
    return {"sts": _sample(data, max_samples, seed)}


def to_datasets(examples: dict[str, list[dict]]):
    """A ``datasets.DatasetDict`` with one dataset per source, also for one source (the trainer samples
    several proportionally, and one alone in its own order)."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({name: Dataset.from_list(rows) for name, rows in examples.items()})
