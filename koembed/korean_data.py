"""Readers for Korean sentence-pair and QA data in their original formats.

Every reader takes a file path and an optional :class:`~koembed.row_report.RowReport`. Malformed rows
(wrong column count, unparsable score, unknown label, empty sentence) are skipped and recorded with
file and line, so a run never crashes on one bad row and never drops rows silently: call
``report.summary()`` (or ``report.raise_if_empty()``) after reading.

Formats (all UTF-8; a BOM is tolerated):

- KorNLUDatasets KorSTS TSV ``genre filename year id score sentence1 sentence2`` with a header.
  Rows contain bare double quotes, so quoting is disabled.
- KorNLUDatasets KorNLI TSV ``sentence1 sentence2 gold_label`` with a header (xnli dev/test and the
  full ``snli_1.0_train.ko.tsv`` / ``multinli.train.ko.tsv``).
- KLUE STS / NLI v1.1 JSON lists.
- NSMC ``ratings_*.txt`` and PAWS-X Korean TSV with a header, quoting disabled.
- songys Question_pair: ``kor_pair_train.csv`` / ``kor_Pair_test.csv`` (quoted CSV) and
  ``train.txt`` / ``validation.txt`` / ``test.txt`` (TSV). Upstream ``is_duplicate`` is 0 for *the same*
  question and 1 for different ones; readers here return ``label`` 1 = same meaning.
- paraKQC ``paraKQC_v1.txt``: ``type<TAB>subtype<TAB>sentence``, 1,000 consecutive sets of 10 paraphrases.
- KorQuAD 1.0 JSON (SQuAD v1.1 layout).
- NER formats (Naver, KLUE, KMOU): :mod:`koembed.korean_ner`.

:data:`FORMATS` names each format's reader and the kind of rows it returns; the data catalogue
(:mod:`koembed.data.catalogue`) maps each public data set to one of them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from koembed.errors import InputError
from koembed.korean_ner import read_klue_ner, read_kmou_ner, read_naver_ner
from koembed.row_report import (
    RowReport,
    check_file,
    checked_pair,
    parse_score,
    report_or_new,
    tsv_rows,
    tsv_table,
)
from koembed.text import normalize

NLI_LABELS = ("entailment", "neutral", "contradiction")
PARAKQC_SET_SIZE = 10


def read_korsts(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """KorSTS TSV -> ``[{"sentence1", "sentence2", "score" (0..5), "line"}]``."""
    p, report = check_file(path), report_or_new(report)
    name, out = str(p), []
    for lineno, cols in tsv_table(p, report, 7, skip_header=True):
        score = parse_score(report, name, lineno, cols[4])
        pair = checked_pair(report, name, lineno, cols[5], cols[6]) if score is not None else None
        if pair is None:
            continue
        out.append({"sentence1": pair[0], "sentence2": pair[1], "score": score, "line": lineno})
        report.kept(name)
    return out


def _binary_label(report: RowReport, name: str, lineno: int, raw: str) -> int | None:
    if raw.strip() not in ("0", "1"):
        report.bad(name, lineno, f"label {raw!r} is not 0 or 1")
        return None
    return int(raw)


def read_nsmc(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """NSMC ``id<TAB>document<TAB>label`` with a header -> ``[{"sentence1", "label" (0/1), "line"}]``."""
    p, report = check_file(path), report_or_new(report)
    name, out = str(p), []
    for lineno, (_, doc, raw) in tsv_table(p, report, 3, skip_header=True):
        text = normalize(doc)
        if not text:
            report.bad(name, lineno, "empty document")
        elif (label := _binary_label(report, name, lineno, raw)) is not None:
            out.append({"sentence1": text, "label": label, "line": lineno})
            report.kept(name)
    return out


def read_paws_x(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """PAWS-X TSV ``id<TAB>sentence1<TAB>sentence2<TAB>label`` with a header -> ``[{"sentence1", "sentence2",
    "label" (1 = paraphrase), "line"}]``."""
    p, report = check_file(path), report_or_new(report)
    name, out = str(p), []
    for lineno, (_, s1, s2, raw) in tsv_table(p, report, 4, skip_header=True):
        pair = checked_pair(report, name, lineno, s1, s2)
        if pair is not None and (label := _binary_label(report, name, lineno, raw)) is not None:
            out.append({"sentence1": pair[0], "sentence2": pair[1], "label": label, "line": lineno})
            report.kept(name)
    return out


def read_kornli(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """KorNLI TSV -> ``[{"sentence1", "sentence2", "label" in NLI_LABELS, "line"}]``."""
    p, report = check_file(path), report_or_new(report)
    name, out = str(p), []
    for lineno, cols in tsv_table(p, report, 3, skip_header=True):
        label = cols[2].strip()
        if label not in NLI_LABELS:
            report.bad(name, lineno, f"unknown gold_label {label!r} (expected one of {', '.join(NLI_LABELS)})")
            continue
        pair = checked_pair(report, name, lineno, cols[0], cols[1])
        if pair is None:
            continue
        out.append({"sentence1": pair[0], "sentence2": pair[1], "label": label, "line": lineno})
        report.kept(name)
    return out


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 (byte {exc.start}); convert it to UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None


def _json_list(path: Path) -> list:
    data = _load_json(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of examples (KLUE v1.1 format), found {type(data).__name__}")
    return data


def read_klue_sts(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """KLUE STS JSON -> ``[{"sentence1", "sentence2", "score" (labels.label, 0..5), "line" (1-based item)}]``."""
    p, report = check_file(path), report_or_new(report)
    name, out = str(p), []
    for i, item in enumerate(_json_list(p), start=1):
        report.read(name)
        if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
            report.bad(name, i, "item has no 'labels' object")
            continue
        score = parse_score(report, name, i, item["labels"].get("label"))
        pair = checked_pair(report, name, i, str(item.get("sentence1") or ""), str(item.get("sentence2") or "")) \
            if score is not None else None
        if pair is None:
            continue
        out.append({"sentence1": pair[0], "sentence2": pair[1], "score": score, "line": i})
        report.kept(name)
    return out


def read_klue_nli(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """KLUE NLI JSON (premise/hypothesis/gold_label) -> ``[{"sentence1", "sentence2", "label", "line"}]``."""
    p, report = check_file(path), report_or_new(report)
    name, out = str(p), []
    for i, item in enumerate(_json_list(p), start=1):
        report.read(name)
        if not isinstance(item, dict):
            report.bad(name, i, "item is not an object")
            continue
        label = str(item.get("gold_label") or "")
        if label not in NLI_LABELS:
            report.bad(name, i, f"unknown gold_label {label!r}")
            continue
        pair = checked_pair(report, name, i, str(item.get("premise") or ""), str(item.get("hypothesis") or ""))
        if pair is None:
            continue
        out.append({"sentence1": pair[0], "sentence2": pair[1], "label": label, "line": i})
        report.kept(name)
    return out


def _is_dup_to_label(raw: str) -> int | None:
    # Upstream convention: is_duplicate 0 = same question, 1 = different question.
    return {"0": 1, "1": 0}.get(raw.strip())


def read_question_pair(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """songys Question_pair (CSV or TXT layout) -> ``[{"sentence1", "sentence2", "label" (1 = same), "line"}]``."""
    p, report = check_file(path), report_or_new(report)
    rows = _question_pair_csv(p) if p.suffix.lower() == ".csv" else _question_pair_txt(p, report)
    name, out = str(p), []
    for lineno, cols, error in rows:
        report.read(name)
        if error:
            report.bad(name, lineno, error)
            continue
        label = _is_dup_to_label(cols[2])
        if label is None:
            report.bad(name, lineno, f"is_duplicate {cols[2]!r} is not 0 or 1")
            continue
        pair = checked_pair(report, name, lineno, cols[0], cols[1])
        if pair is None:
            continue
        out.append({"sentence1": pair[0], "sentence2": pair[1], "label": label, "line": lineno})
        report.kept(name)
    return out


_QP_ROW = tuple[int, list[str], str | None]  # (line, [question1, question2, is_duplicate], error)


def _question_pair_txt(p: Path, report: RowReport) -> Iterator[_QP_ROW]:
    for lineno, cols in tsv_rows(p, False, report):
        if lineno == 1 and cols[-1:] == ["is_duplicate"]:
            continue
        error = None if len(cols) == 3 else f"expected 3 tab-separated columns, found {len(cols)}"
        yield lineno, cols, error


def _question_pair_csv(p: Path) -> Iterator[_QP_ROW]:
    # The train and test CSVs differ in their leading id columns (and a trailing empty one): go by header names.
    with p.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None) or []
        try:
            idx = [header.index(c) for c in ("question1", "question2", "is_duplicate")]
        except ValueError:
            raise InputError(f"{p}: header must name question1, question2 and is_duplicate, found {header}") from None
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                yield reader.line_num, row, f"expected {len(header)} comma-separated columns, found {len(row)}"
            elif any("\ufffd" in c for c in row):
                yield reader.line_num, row, "not valid UTF-8"
            else:
                yield reader.line_num, [row[i] for i in idx], None


def read_parakqc(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """paraKQC -> paraphrase sets ``[{"set", "sentences": [...10], "line"}]``; sets are 10 consecutive lines."""
    p, report = check_file(path), report_or_new(report)
    name = str(p)
    groups: list[dict] = []
    for lineno, cols in tsv_table(p, report, 3, skip_header=False, columns=" (type, subtype, sentence)"):
        set_id = (lineno - 1) // PARAKQC_SET_SIZE
        text = normalize(cols[2])
        if not text:
            report.bad(name, lineno, "empty sentence")
            continue
        if not groups or groups[-1]["set"] != set_id:
            groups.append({"set": set_id, "sentences": [], "line": lineno})
        groups[-1]["sentences"].append(text)
        report.kept(name)
    return groups


def read_parakqc_pairs(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """paraKQC as positive pairs ``{"sentence1", "sentence2", "label": 1, "line"}``.

    Each set's first sentence is joined to each other one, 9 pairs per set, so a set contributes no
    more than a duplicate-free batch can hold.
    """
    return [{"sentence1": g["sentences"][0], "sentence2": s, "label": 1, "line": g["line"]}
            for g in read_parakqc(path, report) for s in g["sentences"][1:]]


def read_korquad(path: str | Path, report: RowReport | None = None) -> list[dict]:
    """KorQuAD 1.0 JSON -> one dict per question: ``id``, ``title``, ``context``, ``question``, ``answers``.

    ``line`` is the question's 1-based position in the file (JSON has no useful line numbers).
    """
    p, report = check_file(path), report_or_new(report)
    data = _load_json(p)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise InputError(f"{p}: expected KorQuAD/SQuAD JSON with a top-level 'data' list")
    name, out, n = str(p), [], 0
    for article in data["data"]:
        title = str(article.get("title", "")) if isinstance(article, dict) else ""
        for para in article.get("paragraphs", []) if isinstance(article, dict) else []:
            context = normalize(str(para.get("context") or ""))
            for qa in para.get("qas", []):
                n += 1
                report.read(name)
                question = normalize(str(qa.get("question") or ""))
                if not context or not question:
                    report.bad(name, n, f"question {qa.get('id')!r}: empty {'context' if not context else 'question'}")
                    continue
                answers = [
                    {"text": str(a.get("text", "")), "answer_start": int(a.get("answer_start", -1))}
                    for a in qa.get("answers", [])
                    if isinstance(a, dict)
                ]
                out.append({"id": str(qa.get("id", n)), "title": title, "context": context,
                            "question": question, "answers": answers, "line": n})
                report.kept(name)
    return out


class Format(NamedTuple):
    """A file format: its reader and the kind of rows it returns.

    Row kinds: ``sts`` (sentence1, sentence2, score 0..5), ``nli`` (sentence1, sentence2, label in
    NLI_LABELS), ``pairs`` (sentence1, sentence2, label 1 = same meaning), ``labelled`` (sentence1,
    label 0/1), ``qa`` (KorQuAD questions), ``ner`` (tokens, tags).
    """

    read: Callable[..., list[dict]]
    rows: str


FORMATS: dict[str, Format] = {
    "korsts": Format(read_korsts, "sts"),
    "klue-sts": Format(read_klue_sts, "sts"),
    "kornli": Format(read_kornli, "nli"),
    "klue-nli": Format(read_klue_nli, "nli"),
    "paws-x": Format(read_paws_x, "pairs"),
    "question-pair": Format(read_question_pair, "pairs"),
    "parakqc": Format(read_parakqc_pairs, "pairs"),
    "nsmc": Format(read_nsmc, "labelled"),
    "korquad": Format(read_korquad, "qa"),
    "naver-ner": Format(read_naver_ner, "ner"),
    "klue-ner": Format(read_klue_ner, "ner"),
    "kmou-ner": Format(read_kmou_ner, "ner"),
}
