"""Read a benchmark task's data in its original format and cut it into train / dev / test.

Rows come out in one shape per head:

- classification: ``{"sentence1", ["sentence2"], "label": str}`` (label one of ``task.labels``)
- regression: ``{"sentence1", "sentence2", "score": float}``
- token: ``{"tokens": [word, ...], "tags": [BIO tag, ...]}`` (tags as ``B-PER`` / ``I-PER`` / ``O``)
- qa: ``{"id", "title", "context", "question", "answers": [{"text", "answer_start"}]}``

Every split is read through :func:`koembed.data.read_split` (the task's catalogued data set: local files
with the readers of :mod:`koembed.korean_data`, else its Hub dataset). Malformed rows are skipped and
counted in a shared ``RowReport``.
Splits that a task lacks are carved with a fixed seed (0), so every model and every seed sees the
same train / dev / test examples.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from koembed.data.catalogue import DataSet, find_dataset
from koembed.data.load import DataMissing, read_split
from koembed.data.tasks import Task
from koembed.errors import InputError
from koembed.korean_data import RowReport

SPLIT_SEED = 0


class TaskDataMissing(DataMissing):
    """The task has no usable data here; ``reason`` goes into the report as a 'missing' cell."""


@dataclass
class TaskData:
    task: Task
    train: list[dict]
    dev: list[dict]
    test: list[dict]
    split_kind: str  # "full" (the task's own train and test) or "local split"
    split_note: str  # how each split was obtained, for the result file
    labels: tuple[str, ...] = ()  # classification labels or NER tags (O first)
    report: RowReport = field(default_factory=RowReport)


def _bench_row(row: dict) -> dict:
    """A reader's row as the heads take it: no line number, labels as strings (the heads' label names)."""
    out = {k: v for k, v in row.items() if k != "line"}
    if "label" in out:
        out["label"] = str(out["label"])
    return out


# ---------------------------------------------------------------- splits


def _carve(rows: list[dict], fraction: float, group: str | None) -> tuple[list[dict], list[dict]]:
    """Split off about ``fraction`` of ``rows`` (whole groups, e.g. KorQuAD articles) with a fixed seed."""
    keys = sorted({r[group] for r in rows}) if group else list(range(len(rows)))
    random.Random(SPLIT_SEED).shuffle(keys)
    want = max(1, round(fraction * len(rows)))
    taken: set = set()
    n = 0
    for k in keys:
        if n >= want or len(taken) >= len(keys) - 1:
            break
        taken.add(k)
        n += sum(1 for r in rows if r[group] == k) if group else 1
    if group:
        return [r for r in rows if r[group] not in taken], [r for r in rows if r[group] in taken]
    return [r for i, r in enumerate(rows) if i not in taken], [r for i, r in enumerate(rows) if i in taken]


def _sample(rows: list[dict], n: int | None) -> list[dict]:
    if n is None or n >= len(rows):
        return rows
    idx = sorted(random.Random(SPLIT_SEED).sample(range(len(rows)), n))
    return [rows[i] for i in idx]


def _ner_labels(*splits: list[dict]) -> tuple[str, ...]:
    kinds = sorted({t[2:] for rows in splits for r in rows for t in r["tags"] if t[:2] in ("B-", "I-")})
    return ("O", *[f"{p}-{k}" for k in kinds for p in ("B", "I")])


def load_task(
    task: Task,
    data_dir: str | Path | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    use_hub: bool = True,
    report: RowReport | None = None,
    dataset: DataSet | None = None,
) -> TaskData:
    """Read ``task``'s data set (``dataset`` overrides the catalogue's entry) and return train / dev / test.

    Each split comes from the local files, else (``use_hub``) from the Hub dataset. Raises
    :class:`TaskDataMissing` with the reason when no split is found.
    """
    report = report if report is not None else RowReport()
    ds = dataset or find_dataset(task.dataset)
    rows: dict[str, list[dict]] = {}
    missing, sources = [], set()
    for split in ds.splits:
        try:
            got = read_split(ds, split, data_dir, report, use_hub)
        except DataMissing as exc:
            missing.append(exc.reason)
            continue
        rows[split] = [_bench_row(r) for r in got.rows]
        sources.add(got.source)
    if not rows:
        raise TaskDataMissing("no data: " + "; ".join(missing))
    rows = {k: v for k, v in rows.items() if v}
    if not rows:
        raise TaskDataMissing(f"no usable rows ({report.summary()})")
    return _split(task, rows, " + ".join(sorted(sources)), max_train_samples, max_eval_samples, report)


def _split(task: Task, rows: dict[str, list[dict]], source: str, max_train: int | None, max_eval: int | None,
           report: RowReport) -> TaskData:
    group = "title" if task.head == "qa" else None
    test_file = "test"
    if task.split != "test" and "train" in rows and task.split in rows:
        rows = {k: v for k, v in rows.items() if k != task.split} | {"test": rows[task.split]}
        test_file = task.split
    pool_name = "train" if "train" in rows else next(iter(rows))
    pool, notes = rows[pool_name], []
    if "test" in rows and pool_name != "test":
        test = rows["test"]
        notes.append(f"test: the {test_file} file")
    else:
        pool, test = _carve(pool, task.test_fraction, group)
        notes.append(f"test: {task.test_fraction:.0%} of {pool_name} held out")
    if "dev" in rows and pool_name == "train":
        dev = rows["dev"]
        notes.append("dev: the dev file")
    else:
        pool, dev = _carve(pool, task.dev_fraction, group)
        notes.append(f"dev: {task.dev_fraction:.0%} of {pool_name} held out for checkpoint selection")
    notes.insert(0, f"train: {pool_name} ({source})")
    kind = "full" if "train" in rows and "test" in rows else "local split"
    train, dev, test = _sample(pool, max_train), _sample(dev, max_eval), _sample(test, max_eval)
    if task.head == "regression":
        for split, kept in (("dev", dev), ("test", test)):
            if len(kept) < 2:
                raise InputError(f"{task.name}: the {split} split has {len(kept)} row(s) and a correlation needs at "
                                 "least 2; raise --max-eval-samples")
    if task.head == "token":
        labels = _ner_labels(train, dev, test)
    else:
        labels = task.labels
    return TaskData(task, train, dev, test, kind, "; ".join(notes), labels, report)
