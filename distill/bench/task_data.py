"""Read a benchmark task's data in its original format and cut it into train / dev / test.

Rows come out in one shape per head:

- classification: ``{"sentence1", ["sentence2"], "label": str}`` (label one of ``task.labels``)
- regression: ``{"sentence1", "sentence2", "score": float}``
- token: ``{"tokens": [word, ...], "tags": [BIO tag, ...]}`` (tags as ``B-PER`` / ``I-PER`` / ``O``)
- qa: ``{"id", "title", "context", "question", "answers": [{"text", "answer_start"}]}``

NSMC, sentence-pair and KorQuAD files go through :mod:`koembed.korean_data`; the NER formats
are read here. Malformed rows are skipped and counted in a shared ``RowReport``.
Splits that a task lacks are carved with a fixed seed (0), so every model and every seed sees the
same train / dev / test examples.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from distill.bench.tasks import Task
from koembed import korean_data as kd
from koembed.errors import InputError
from koembed.korean_data import RowReport
from koembed.text import iter_lines, normalize

SPLIT_SEED = 0


class TaskDataMissing(InputError):
    """The task has no usable data here; ``reason`` goes into the report as a 'missing' cell."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


# ---------------------------------------------------------------- readers of the NER formats (not in korean_data)


def _naver_tag(tag: str) -> str:
    # Naver NLP Challenge tags: PER_B / PER_I, and '-' for outside.
    if tag in ("-", "O"):
        return "O"
    kind, _, pos = tag.rpartition("_")
    return f"{pos}-{kind}" if pos in ("B", "I") and kind else tag


def read_naver_ner(path: Path, report: RowReport) -> list[dict]:
    """Naver NER: ``index<TAB>token<TAB>tag`` lines (tags ``PER_B``, ``-``), a blank line between sentences."""
    name, out, tokens, tags, start = str(path), [], [], [], 0

    def flush() -> None:
        if tokens:
            out.append({"tokens": list(tokens), "tags": list(tags)})
            report.kept(name)
            tokens.clear()
            tags.clear()

    for lineno, line in enumerate(iter_lines(path, errors="replace"), start=1):
        cols = line.split()
        if not cols:
            flush()
            continue
        if not tokens:
            report.read(name)
            start = lineno
        if len(cols) != 3 or not cols[0].isdigit():
            report.bad(name, lineno, f"expected 'index token tag', found {len(cols)} fields (sentence at line {start})")
            continue
        tokens.append(normalize(cols[1]) or cols[1])
        tags.append(_naver_tag(cols[2]))
    flush()
    return out


def _words_from_units(units: list[tuple[object, str, str]]) -> tuple[list[str], list[str]]:
    """Merge (word id, piece, BIO tag) units (characters or morphemes) into words and word-level tags.

    A word takes the first B- tag among its pieces (an entity starting inside it, e.g. ``경찰은``),
    else the I- tag of its first piece (an entity continuing from the previous word), else O.
    """
    words: list[str] = []
    tags: list[str] = []
    piece_tags: list[list[str]] = []
    last = object()
    for wid, piece, tag in units:
        if wid != last:
            words.append("")
            piece_tags.append([])
            last = wid
        words[-1] += piece
        piece_tags[-1].append(tag)
    for pt in piece_tags:
        b = next((t for t in pt if t.startswith("B-")), None)
        tags.append(b or (pt[0] if pt[0].startswith("I-") else "O"))
    return words, tags


def _sentence_sink(name: str, out: list[dict], report: RowReport):
    """``(units, flush)``: collect (word id, unit, tag) rows; ``flush()`` turns them into one sentence."""
    units: list = []

    def flush() -> None:
        if units:
            words, tags = _words_from_units(units)
            out.append({"tokens": words, "tags": tags})
            report.kept(name)
            units.clear()

    return units, flush


def read_klue_ner(path: Path, report: RowReport) -> list[dict]:
    """KLUE NER TSV: ``## id<TAB>annotated sentence`` header, one ``char<TAB>tag`` row per character
    (spaces included), blank line between sentences; characters are merged into words."""
    name, out, wid = str(path), [], 0
    units, flush = _sentence_sink(name, out, report)

    for lineno, line in enumerate(iter_lines(path, errors="replace"), start=1):
        if line.startswith("##"):
            continue
        if not line.strip("\n\r"):
            flush()
            continue
        if not units:
            report.read(name)
        char, sep, tag = line.rstrip("\r\n").rpartition("\t")
        if not sep or len(char) != 1:
            report.bad(name, lineno, "expected 'character<TAB>tag'")
            continue
        if char.isspace():
            wid += 1
            continue
        units.append((wid, char, tag.strip()))
    flush()
    return out


def read_kmou_ner(path: Path, report: RowReport) -> list[dict]:
    """KMOU NER (2016 KLP): ``; raw`` and ``$tagged`` lines, then ``word-index morph POS tag`` rows (``B_PS``);
    morphemes are merged into words by their index."""
    name, out = str(path), []
    units, flush = _sentence_sink(name, out, report)

    for lineno, line in enumerate(iter_lines(path, errors="replace"), start=1):
        if line.startswith(";") or not line.strip():
            flush()
            continue
        if line.startswith("$"):
            report.read(name)
            continue
        cols = line.split("\t")
        if len(cols) != 4:
            report.bad(name, lineno, f"expected 4 tab-separated columns, found {len(cols)}")
            continue
        units.append((cols[0], cols[1], cols[3].strip().replace("_", "-")))
    flush()
    return out


def _pairs(reader: Callable[..., list[dict]], field_name: str = "label") -> Callable[[Path, RowReport], list[dict]]:
    def read(path: Path, report: RowReport) -> list[dict]:
        rows = reader(path, report)
        for r in rows:
            r.pop("line", None)
            if field_name == "label":
                r["label"] = str(r["label"])
        return rows

    return read


def _korquad(path: Path, report: RowReport) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "line"} for r in kd.read_korquad(path, report)]


LOADERS: dict[str, Callable[[Path, RowReport], list[dict]]] = {
    "nsmc": _pairs(kd.read_nsmc),
    "paws": _pairs(kd.read_paws_x),
    "naver_ner": read_naver_ner,
    "klue_ner": read_klue_ner,
    "kmou_ner": read_kmou_ner,
    "kornli": _pairs(kd.read_kornli),
    "klue_nli": _pairs(kd.read_klue_nli),
    "korsts": _pairs(kd.read_korsts, "score"),
    "klue_sts": _pairs(kd.read_klue_sts, "score"),
    "question_pair": _pairs(kd.read_question_pair),
    "korquad": _korquad,
}


# ---------------------------------------------------------------- Hub fallback


def _hub_rows(task: Task, report: RowReport) -> dict[str, list[dict]]:
    """Rows per split from ``task.hub`` via ``datasets.load_dataset``; raises TaskDataMissing when unreachable."""
    hub = task.hub
    if hub is None:
        raise TaskDataMissing("no Hub dataset is registered for it")
    try:
        from datasets import load_dataset

        dsd = load_dataset(hub.path, hub.config)
    except Exception as exc:  # offline, renamed or gated: one reason for the table
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise TaskDataMissing(f"Hub dataset {hub.path} could not be loaded ({reason})") from None
    columns = dict(hub.columns)
    out: dict[str, list[dict]] = {}
    for ours, theirs in hub.splits:
        if theirs not in dsd:
            continue
        ds, src = dsd[theirs], f"hub:{hub.path}/{theirs}"
        label_names = _class_names(ds.features.get(columns.get("label", "label")))
        rows = []
        for i, raw in enumerate(ds, start=1):
            report.read(src)
            row = {k: _dig(raw, v) for k, v in columns.items()} if columns else dict(raw)
            if "label" in row:
                row["label"] = label_names[row["label"]] if label_names and isinstance(row["label"], int) \
                    else str(row["label"])
                if task.labels and row["label"] not in task.labels:
                    report.bad(src, i, f"label {row['label']!r} not in {task.labels}")
                    continue
            if task.head == "qa" and isinstance(row.get("answers"), dict):
                a = row["answers"]
                row["answers"] = [{"text": t, "answer_start": s} for t, s in zip(a["text"], a["answer_start"],
                                                                                 strict=True)]
            rows.append(row)
            report.kept(src)
        out[ours] = rows
    return out


def _dig(row: dict, dotted: str):
    for part in dotted.split("."):
        row = row[part]
    return row


def _class_names(feature) -> list[str] | None:
    return list(feature.names) if feature is not None and hasattr(feature, "names") else None


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
    data_dir: str | Path,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    use_hub: bool = True,
    report: RowReport | None = None,
) -> TaskData:
    """Read ``task``'s files under ``data_dir`` (or its Hub dataset) and return train / dev / test.

    Raises :class:`TaskDataMissing` with the reason when nothing usable is found.
    """
    report = report if report is not None else RowReport()
    data_dir = Path(data_dir)
    loader = LOADERS[task.loader]
    rows: dict[str, list[dict]] = {}
    missing = []
    for split, rel in task.files:
        path = data_dir / rel
        if path.is_file():
            rows.setdefault(split, []).extend(loader(path, report))
        else:
            missing.append(str(path))
    source = "local files"
    if not rows:
        reason = f"no data: {', '.join(missing)} not found"
        if not use_hub or task.hub is None:
            raise TaskDataMissing(reason + ("" if task.hub else " and no Hub dataset is registered"))
        try:
            rows, source = _hub_rows(task, report), f"Hub {task.hub.path}"
        except TaskDataMissing as exc:
            raise TaskDataMissing(f"{reason}; {exc.reason}") from None
    rows = {k: v for k, v in rows.items() if v}
    if not rows:
        raise TaskDataMissing(f"no usable rows ({report.summary()})")
    return _split(task, rows, source, max_train_samples, max_eval_samples, report)


def _split(task: Task, rows: dict[str, list[dict]], source: str, max_train: int | None, max_eval: int | None,
           report: RowReport) -> TaskData:
    group = "title" if task.head == "qa" else None
    test_file = "test"
    if task.test_split != "test" and "train" in rows and task.test_split in rows:
        rows = {k: v for k, v in rows.items() if k != task.test_split} | {"test": rows[task.test_split]}
        test_file = task.test_split
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
