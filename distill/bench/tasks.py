"""The benchmark tasks as data: one frozen record per task, nothing task-specific anywhere else.

A record names where the data lives (files relative to the shared data folder, and a Hub dataset
used when those files are absent), how to read it (a loader in :mod:`distill.bench.task_data`), the head
(sequence classification, regression, token classification, extractive QA), the metric, and the
default hyperparameters of KoMiniLM-Finetune (max length / epochs / batch / lr).

Splits: a task lists the files it has (``train``, ``dev``, ``test``). Where ``dev`` is absent it is
carved from train; where ``train`` is absent (this machine lacks KorNLI, PAWS-X and KorQuAD train
files) a *local split* trains on part of dev and tests on ``test`` (or on a held-out part of dev
when there is no test file either). The rule lives in :func:`distill.bench.task_data.load_task`.
"""

from __future__ import annotations

from dataclasses import dataclass

from koembed.errors import InputError
from koembed.registry import Registry

HEADS = ("classification", "regression", "token", "qa")


@dataclass(frozen=True)
class Hyper:
    """Fine-tuning defaults; ``stride`` is the token overlap between QA windows over long contexts."""

    max_length: int
    epochs: float
    batch_size: int
    learning_rate: float
    stride: int = 0


@dataclass(frozen=True)
class HubSource:
    """A Hub dataset to use when the local files are missing (and the network allows).

    ``splits`` maps our split names to the dataset's; ``columns`` maps our row fields to its columns
    (a dotted name reaches into a nested column, e.g. ``labels.label``).
    """

    path: str
    config: str | None = None
    splits: tuple[tuple[str, str], ...] = (("train", "train"), ("dev", "validation"), ("test", "test"))
    columns: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Task:
    name: str
    title: str  # column header in the report
    head: str  # one of HEADS
    metric: str  # the metric that selects checkpoints and ranks models
    shown: tuple[str, ...]  # metrics printed in the table cell (KorQuAD: EM / F1)
    loader: str  # key of distill.bench.task_data.LOADERS
    files: tuple[tuple[str, str], ...]  # (split, path relative to the data folder); a repeated split concatenates
    hyper: Hyper
    labels: tuple[str, ...] = ()  # classification labels, in head order; NER tags are read from the data
    text_fields: tuple[str, ...] = ("sentence1", "sentence2")
    hub: HubSource | None = None
    dev_fraction: float = 0.1  # of the training pool, held out for checkpoint selection when no dev file
    test_fraction: float = 0.3  # of the pool, held out as test when no test file
    test_split: str = "test"  # KorQuAD has no public test: its dev file is the test (and dev is carved from train)
    seed_task: bool = True  # one of the seven columns of the KoMiniLM table

    @property
    def greater_is_better(self) -> bool:
        return True  # every metric here is a score, none a loss


_PAIR_CLS = ("sentence1", "sentence2")
_NLI = ("entailment", "neutral", "contradiction")

TASKS: Registry[Task] = Registry("benchmark task", (
    (t.name, t)
    for t in [
        Task(
            "nsmc", "NSMC (acc)", "classification", "accuracy", ("accuracy",), "nsmc",
            (("train", "nsmc/ratings_train.txt"), ("test", "nsmc/ratings_test.txt")),
            Hyper(50, 8, 64, 5e-5), labels=("0", "1"), text_fields=("sentence1",),
            hub=HubSource("e9t/nsmc", columns=(("sentence1", "document"), ("label", "label"))),
        ),
        Task(
            "naver-ner", "Naver NER (F1)", "token", "f1", ("f1",), "naver_ner",
            # Naver NLP Challenge 2018 files; their terms forbid redistribution, so none ship here.
            (("train", "naver-ner/train_data"), ("test", "naver-ner/test_data")),
            Hyper(50, 20, 64, 8e-5), text_fields=("tokens",), test_fraction=0.1,  # KoELECTRA's 90/10 split
        ),
        Task(
            "paws", "PAWS (acc)", "classification", "accuracy", ("accuracy",), "paws",
            (("train", "paws_x_ko/translated_train.tsv"), ("dev", "paws_x_ko/dev_2k.tsv"),
             ("test", "paws_x_ko/test_2k.tsv")),
            Hyper(128, 15, 32, 3e-5), labels=("0", "1"),
            hub=HubSource("google-research-datasets/paws-x", "ko"),
        ),
        Task(
            "kornli", "KorNLI (acc)", "classification", "accuracy", ("accuracy",), "kornli",
            (("train", "kornli/snli_1.0_train.ko.tsv"), ("train", "kornli/multinli.train.ko.tsv"),
             ("dev", "kornli/xnli.dev.ko.tsv"), ("test", "kornli/xnli.test.ko.tsv")),
            Hyper(72, 10, 128, 3e-5), labels=_NLI,
        ),
        Task(
            "korsts", "KorSTS (spearman)", "regression", "spearman", ("spearman",), "korsts",
            (("train", "korsts/sts-train.tsv"), ("dev", "korsts/sts-dev.tsv"), ("test", "korsts/sts-test.tsv")),
            Hyper(72, 5, 32, 5e-5),
        ),
        Task(
            "question-pair", "Question Pair (acc)", "classification", "accuracy", ("accuracy",), "question_pair",
            (("train", "question_pair/kor_pair_train.csv"), ("test", "question_pair/kor_Pair_test.csv")),
            Hyper(72, 5, 32, 5e-5), labels=("0", "1"),
        ),
        Task(
            "korquad", "KorQuAD (EM/F1)", "qa", "f1", ("exact_match", "f1"), "korquad",
            (("train", "korquad/KorQuAD_v1.0_train.json"), ("dev", "korquad/KorQuAD_v1.0_dev.json")),
            Hyper(300, 5, 16, 5e-5, stride=128), text_fields=("question", "context"), test_split="dev",
            hub=HubSource("KorQuAD/squad_kor_v1", splits=(("train", "train"), ("dev", "validation"))),
        ),
        # Extras: KLUE dev sets and KMOU NER, present in the shared data.
        Task(
            "klue-sts", "KLUE-STS (spearman)", "regression", "spearman", ("spearman",), "klue_sts",
            (("dev", "klue/sts/klue-sts-v1.1_dev.json"),), Hyper(72, 5, 32, 5e-5), seed_task=False,
            hub=HubSource("klue/klue", "sts", columns=(("sentence1", "sentence1"), ("sentence2", "sentence2"),
                                                      ("score", "labels.label"))),
        ),
        Task(
            "klue-nli", "KLUE-NLI (acc)", "classification", "accuracy", ("accuracy",), "klue_nli",
            (("dev", "klue/nli/klue-nli-v1.1_dev.json"),), Hyper(72, 10, 128, 3e-5), labels=_NLI, seed_task=False,
            hub=HubSource("klue/klue", "nli", columns=(("sentence1", "premise"), ("sentence2", "hypothesis"),
                                                      ("label", "label"))),
        ),
        Task(
            "klue-ner", "KLUE-NER (F1)", "token", "f1", ("f1",), "klue_ner",
            (("dev", "klue/ner/klue-ner-v1.1_dev.tsv"),), Hyper(50, 20, 64, 8e-5), text_fields=("tokens",),
            seed_task=False,
        ),
        Task(
            "kmou-ner", "KMOU NER (F1)", "token", "f1", ("f1",), "kmou_ner",
            (("train", "kmou_ner/2016klp/ner.train"), ("dev", "kmou_ner/2016klp/ner.dev"),
             ("test", "kmou_ner/2016klp/ner.test")),
            Hyper(50, 20, 64, 8e-5), text_fields=("tokens",), seed_task=False,
        ),
    ]
))

SEED_TASKS: tuple[str, ...] = tuple(n for n, t in TASKS.items() if t.seed_task)
EXTRA_TASKS: tuple[str, ...] = tuple(n for n, t in TASKS.items() if not t.seed_task)


def get_task(name: str) -> Task:
    """The task called ``name`` (case and ``_``/``-`` ignored); a typo gets the nearest registered names suggested."""
    try:
        return TASKS.get(name.strip().lower().replace("_", "-"))
    except InputError as exc:
        raise InputError(f"{exc}; or a group: 'all', 'extras', 'every'") from None


def parse_tasks(spec: str | list[str] | tuple[str, ...]) -> list[Task]:
    """``all`` (the seven seed tasks), ``extras``, ``every``, or a comma-separated list of names."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[Task] = []
    for raw in (n.strip() for n in names):
        if not raw:
            continue
        group = {"all": SEED_TASKS, "extras": EXTRA_TASKS, "every": tuple(TASKS)}.get(raw.lower())
        for task in [TASKS[n] for n in group] if group else [get_task(raw)]:
            if task not in out:
                out.append(task)
    if not out:
        raise InputError(f"--tasks {spec!r} names no task; known tasks: {', '.join(TASKS)}")
    return out


def describe_tasks() -> str:
    """One line per task for ``bench --list-tasks``."""
    lines = []
    for t in TASKS.values():
        h = t.hyper
        hp = f"len {h.max_length}" + (f" stride {h.stride}" if h.stride else "")
        hp += f", {h.epochs:g} ep, batch {h.batch_size}, lr {h.learning_rate:g}"
        files = ", ".join(f"{s}={p}" for s, p in t.files)
        tag = "" if t.seed_task else " [extra]"
        lines.append(f"{t.name:<14} {t.head:<14} {t.metric:<9} {hp:<42} {files}{tag}")
    return "\n".join(lines)
