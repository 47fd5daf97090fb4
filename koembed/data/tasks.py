"""The evaluation tasks as data: one :class:`Task` type and one registry for ``koembed eval`` and the benchmark.

A task names a catalogued data set (:mod:`koembed.data.catalogue`), its kind, the split it reports
and its metric. The sentence evaluation (:mod:`koembed.evaluate`) runs the ``sts`` and ``retrieval``
kinds on embeddings as they are; the benchmark suite (:mod:`distill.bench`) fine-tunes a head on the
tasks that carry fine-tuning defaults (``hyper``): ``sts`` as regression, ``classification``,
``token`` (NER) and ``qa`` (extractive). KorSTS and KLUE-STS are one task each for both.
"""

from __future__ import annotations

from dataclasses import dataclass

from koembed.registry import Registry

KINDS = ("sts", "retrieval", "classification", "token", "qa")
EMBEDDING_KINDS = ("sts", "retrieval")  # what koembed eval runs without training anything
_HEADS = {"sts": "regression"}  # the benchmark's head per kind, where it differs from the kind


@dataclass(frozen=True)
class Hyper:
    """Fine-tuning defaults of the benchmark; ``stride`` is the token overlap between QA windows."""

    max_length: int
    epochs: float
    batch_size: int
    learning_rate: float
    stride: int = 0


@dataclass(frozen=True)
class Task:
    name: str
    dataset: str  # a koembed.data.catalogue name
    kind: str  # one of KINDS
    title: str  # column header in reports
    metric: str  # the metric that selects checkpoints and ranks models
    shown: tuple[str, ...]  # metrics printed in a report cell (KorQuAD: EM / F1)
    split: str = "test"  # the split scored; the benchmark carves it from the data when the data set lacks it
    aliases: tuple[str, ...] = ()
    hyper: Hyper | None = None  # fine-tuning defaults: set for the benchmark's tasks only
    labels: tuple[str, ...] = ()  # classification labels, in head order; NER tags are read from the data
    text_fields: tuple[str, ...] = ("sentence1", "sentence2")
    dev_fraction: float = 0.1  # of the training pool, held out for checkpoint selection when there is no dev split
    test_fraction: float = 0.3  # of the pool, held out as test when there is no test split
    seed_task: bool = False  # one of the seven columns of the KoMiniLM table

    @property
    def head(self) -> str:
        """The benchmark's head: regression, classification, token or qa."""
        return _HEADS.get(self.kind, self.kind)

    @property
    def greater_is_better(self) -> bool:
        return True  # every metric here is a score, none a loss


_NLI = ("entailment", "neutral", "contradiction")
_BINARY = ("0", "1")
_STS = dict(metric="spearman", shown=("spearman",))
_ACC = dict(metric="accuracy", shown=("accuracy",))
_F1 = dict(metric="f1", shown=("f1",))
_RETRIEVAL = dict(metric="ndcg@10", shown=("ndcg@10", "mrr@10", "recall@10"))

_TASKS = (
    # The seven tasks of the KoMiniLM table (the benchmark's default set).
    Task("nsmc", "nsmc", "classification", "NSMC (acc)", **_ACC, hyper=Hyper(50, 8, 64, 5e-5), labels=_BINARY,
         text_fields=("sentence1",), seed_task=True),
    Task("naver-ner", "naver-ner", "token", "Naver NER (F1)", **_F1, hyper=Hyper(50, 20, 64, 8e-5),
         text_fields=("tokens",), test_fraction=0.1, seed_task=True),  # KoELECTRA's 90/10 split
    Task("paws", "paws-x-ko", "classification", "PAWS (acc)", **_ACC, hyper=Hyper(128, 15, 32, 3e-5), labels=_BINARY,
         seed_task=True),
    Task("kornli", "kornli", "classification", "KorNLI (acc)", **_ACC, hyper=Hyper(72, 10, 128, 3e-5), labels=_NLI,
         seed_task=True),
    Task("korsts", "korsts", "sts", "KorSTS (spearman)", **_STS, aliases=("korsts-test",),
         hyper=Hyper(72, 5, 32, 5e-5), seed_task=True),  # 1,379 test pairs
    Task("question-pair", "question-pair", "classification", "Question Pair (acc)", **_ACC,
         hyper=Hyper(72, 5, 32, 5e-5), labels=_BINARY, seed_task=True),
    # KorQuAD has no public test: its dev file is the test (and the benchmark carves dev from train).
    Task("korquad", "korquad", "qa", "KorQuAD (EM/F1)", "f1", ("exact_match", "f1"), split="dev",
         hyper=Hyper(300, 5, 16, 5e-5, stride=128), text_fields=("question", "context"), seed_task=True),
    # Extras of the benchmark; KLUE-STS is also a sentence-evaluation task (519 dev pairs).
    Task("klue-sts", "klue-sts", "sts", "KLUE-STS (spearman)", **_STS, split="dev", aliases=("klue-sts-dev",),
         hyper=Hyper(72, 5, 32, 5e-5)),
    Task("klue-nli", "klue-nli", "classification", "KLUE-NLI (acc)", **_ACC, split="dev",
         hyper=Hyper(72, 10, 128, 3e-5), labels=_NLI),
    Task("klue-ner", "klue-ner", "token", "KLUE-NER (F1)", **_F1, split="dev", hyper=Hyper(50, 20, 64, 8e-5),
         text_fields=("tokens",)),
    Task("kmou-ner", "kmou-ner", "token", "KMOU NER (F1)", **_F1, hyper=Hyper(50, 20, 64, 8e-5),
         text_fields=("tokens",)),
    # Sentence evaluation only.
    Task("korsts-dev", "korsts", "sts", "KorSTS dev (spearman)", **_STS, split="dev"),  # 1,500 pairs
    # 5,774 KorQuAD dev questions -> their paragraph among 960 distinct paragraphs
    Task("korquad-retrieval", "korquad", "retrieval", "KorQuAD retrieval (nDCG@10)", **_RETRIEVAL, split="dev"),
)

TASKS: Registry[Task] = Registry("evaluation task", ((t.name, t) for t in _TASKS),
                                 aliases={a: t.name for t in _TASKS for a in t.aliases})


def find_task(name: str) -> Task:
    """The task called ``name`` (or an alias; case and ``_``/``-`` ignored); a typo gets the nearest names."""
    key = name.strip()
    return TASKS.get(key if key in TASKS else key.lower().replace("_", "-"))
