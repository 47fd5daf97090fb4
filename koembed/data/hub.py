"""Rows from a Hugging Face Hub dataset, in the same shape the local readers return.

``datasets`` is imported here only, when a Hub dataset is actually loaded. A ``HubSource.path`` that is
a local folder (parquet/JSONL/CSV files, one per split) is read by the same ``load_dataset`` call, which
is how this path is tested offline.
"""

from __future__ import annotations

import logging
from typing import Any

from koembed.data.catalogue import HubSource
from koembed.errors import InputError
from koembed.korean_data import NLI_LABELS
from koembed.row_report import RowReport, checked_pair, parse_score, report_or_new
from koembed.text import normalize


class HubUnavailable(InputError):
    """The Hub dataset could not be loaded (offline, renamed, gated); ``reason`` is one line."""

    def __init__(self, source: HubSource, reason: str) -> None:
        self.reason = f"Hub dataset {source.path}" + (f" ({source.config})" if source.config else "") + \
            f" could not be loaded: {reason}"
        super().__init__(self.reason)


# Why a Hub dataset failed, so that the other splits of a run do not wait for the network again.
_FAILED: dict[tuple[str, str | None, str | None], str] = {}


def _load(source: HubSource, split: str | None = None):
    key = (source.path, source.config, source.revision)
    if key in _FAILED:
        raise HubUnavailable(source, _FAILED[key])
    try:
        from datasets import load_dataset
    except ImportError:
        raise HubUnavailable(source, "the datasets package is not installed (pip install datasets)") from None
    options = {"revision": source.revision} if source.revision else {}
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its retry warnings; a failure is reported once, below
    try:
        return load_dataset(source.path, source.config, split=split, **options)
    except Exception as exc:  # offline, missing or gated: one line says which
        _FAILED[key] = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise HubUnavailable(source, _FAILED[key]) from None
    finally:
        hub_log.setLevel(level)


def hub_split(source: HubSource, split: str, rows_kind: str, report: RowReport | None = None) -> list[dict]:
    """Our ``split`` of ``source`` as reader-shaped rows of kind ``rows_kind`` (see ``korean_data.Format``).

    Rows are checked as the readers check theirs (empty sentences, scores outside 0..5, unknown NLI
    labels are counted as malformed); ``line`` is the row's 1-based position in the split.
    """
    report = report_or_new(report)
    theirs = dict(source.splits).get(split)
    if theirs is None:
        raise HubUnavailable(source, f"it has no split for our {split!r} (it maps {dict(source.splits)})")
    ds = _load(source, theirs)
    columns = dict(source.columns) or {c: c for c in ds.column_names}
    label_feature = ds.features.get(columns.get("label", ""))
    names = list(label_feature.names) if rows_kind == "nli" and hasattr(label_feature, "names") else None
    src, out = f"hub:{source.path}/{theirs}", []
    for i, raw in enumerate(ds, start=1):
        report.read(src)
        row = {ours: _dig(raw, col) for ours, col in columns.items()}
        if (row := _checked(row, rows_kind, names, report, src, i)) is not None:
            out.append(row | {"line": i})
            report.kept(src)
    return out


def _checked(row: dict, kind: str, names: list[str] | None, report: RowReport, src: str, i: int) -> dict | None:
    if kind in ("sts", "nli", "pairs"):
        pair = checked_pair(report, src, i, str(row.get("sentence1") or ""), str(row.get("sentence2") or ""))
        if pair is None:
            return None
        row["sentence1"], row["sentence2"] = pair
    if kind == "sts":
        if (score := parse_score(report, src, i, row.get("score"))) is None:
            return None
        row["score"] = score
    if kind == "nli":
        raw = row.get("label")
        label = names[raw] if names and isinstance(raw, int) and 0 <= raw < len(names) else str(raw)
        if label not in NLI_LABELS:
            report.bad(src, i, f"label {row.get('label')!r} is not one of {', '.join(NLI_LABELS)}")
            return None
        row["label"] = label
    if kind == "labelled":
        if not (text := normalize(str(row.get("sentence1") or ""))):
            report.bad(src, i, "empty document")
            return None
        row["sentence1"] = text
    if kind in ("pairs", "labelled") and row.get("label") not in (0, 1):
        report.bad(src, i, f"label {row.get('label')!r} is not 0 or 1")
        return None
    if kind == "qa":
        row["context"], row["question"] = (normalize(str(row.get(k) or "")) for k in ("context", "question"))
        if not row["context"] or not row["question"]:
            report.bad(src, i, f"question {row.get('id')!r}: empty {'context' if not row['context'] else 'question'}")
            return None
    if kind == "qa" and isinstance(row.get("answers"), dict):
        a = row["answers"]
        row["answers"] = [{"text": t, "answer_start": int(s)}
                          for t, s in zip(a["text"], a["answer_start"], strict=True)]
    return row


def _dig(row: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        row = row[part]
    return row


def load_pairs_from_hub(
    name: str, split: str = "train", config: str | None = None, columns: tuple[str, str] | None = None,
    label_column: str | None = None, report: RowReport | None = None,
) -> list[dict]:
    """Any Hub dataset of sentence pairs (training's ``hub:NAME``) as ``sentence1``/``sentence2`` dicts.

    ``columns`` names the two text columns (default: the first of ``sentence1/sentence2``,
    ``premise/hypothesis``, ``anchor/positive``, ``question1/question2`` present); ``label_column``
    (``label``, ``score``, ``gold_label`` by default if present) is copied as ``label``.
    """
    report = report_or_new(report)
    source = HubSource(name, config)
    ds = _load(source, split)
    cols = ds.column_names
    if columns is None:
        candidates = [("sentence1", "sentence2"), ("premise", "hypothesis"), ("anchor", "positive"),
                      ("question1", "question2")]
        columns = next((c for c in candidates if set(c) <= set(cols)), None)
        if columns is None:
            raise InputError(f"Hub dataset {name!r}: cannot tell the text columns among {cols}; pass columns=(a, b)")
    if label_column is None:
        label_column = next((c for c in ("label", "score", "gold_label") if c in cols), None)
    src, out = f"hub:{name}/{split}", []
    for i, row in enumerate(ds, start=1):
        report.read(src)
        pair = checked_pair(report, src, i, str(row[columns[0]] or ""), str(row[columns[1]] or ""))
        if pair is None:
            continue
        item = {"sentence1": pair[0], "sentence2": pair[1], "line": i}
        if label_column:
            item["label"] = row[label_column]
        out.append(item)
        report.kept(src)
    return out
