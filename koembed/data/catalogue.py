"""The data catalogue: every public Korean data set koembed reads, as data.

A :class:`DataSet` names its files per split (relative to the data folder, see
:func:`koembed.paths.data_dir`), the format that reads them (a key of
:data:`koembed.korean_data.FORMATS`), its licence and attribution, where the files were copied from,
and the Hugging Face Hub dataset (with a pinned revision where one is known) that
:func:`koembed.data.read_split` loads through ``datasets`` when no local file exists.

Training (:mod:`koembed.training`), evaluation (:mod:`koembed.evaluate`), the benchmark suite
(:mod:`distill.bench`), the recipes and the model cards all look data up here; docs/data.md is the
human-readable view of this table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from koembed.registry import Registry

SPLITS = ("train", "dev", "test")


class DataLicence(NamedTuple):
    name: str  # the data set's usual name, as a model card lists it
    licence: str
    attribution: str


@dataclass(frozen=True)
class HubSource:
    """A Hub dataset holding the same data: ``load_dataset(path, config, revision=revision)``.

    ``splits`` maps our split names to the dataset's; ``columns`` maps the fields of our rows to its
    columns (a dotted name reaches into a nested column, e.g. ``labels.label``). ``path`` may also be a
    local folder of parquet/JSONL/CSV files, which ``datasets`` reads the same way.
    """

    path: str
    config: str | None = None
    revision: str | None = None  # a commit id; None where no verified one is known (docs/data.md says which)
    splits: tuple[tuple[str, str], ...] = (("train", "train"), ("dev", "validation"), ("test", "test"))
    columns: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DataSet:
    name: str
    folder: str  # its folder under the data folder (several data sets may share one, e.g. klue)
    licence: DataLicence
    source: str  # where the local files come from (repository @ commit, path)
    format: str | None = None  # key of koembed.korean_data.FORMATS; None = raw text only (no reader here)
    files: tuple[tuple[str, str], ...] = ()  # (split, path under the data folder); a repeated split concatenates
    hub: HubSource | None = None
    note: str = ""

    def paths(self, split: str) -> list[str]:
        return [p for s, p in self.files if s == split]

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits this data set has, locally or on the Hub, in train/dev/test order."""
        have = {s for s, _ in self.files} | {s for s, _ in (self.hub.splits if self.hub else ())}
        return tuple(s for s in SPLITS if s in have)


_CC_BY_SA = "CC BY-SA 4.0"
_KORNLU = "Ham et al. 2020, kakaobrain/KorNLUDatasets"
_KLUE = DataLicence("KLUE v1.1", _CC_BY_SA, "Park et al. 2021, KLUE-benchmark/KLUE")
_KLUE_HUB_REVISION = "349481ec73fff722f88e0453ca05c77a447d967c"  # klue/klue, as pinned by MTEB's KLUE tasks
_KLUE_SPLITS = (("train", "train"), ("dev", "validation"))
_QUESTION_PAIR = DataLicence("Korean Question Pair", "MIT", "songys/Question_pair")


def _klue(task: str, ext: str, hub: HubSource | None) -> DataSet:
    return DataSet(
        f"klue-{task}", "klue", _KLUE, "github.com/KLUE-benchmark/KLUE @ 3efd987, klue_benchmark/",
        f"klue-{task}", (("train", f"klue/{task}/klue-{task}-v1.1_train.{ext}"),
                         ("dev", f"klue/{task}/klue-{task}-v1.1_dev.{ext}")), hub,
        note="the shared data holds the dev file only (KLUE has no public test labels)")


_DATASETS = (
    DataSet("korsts", "korsts", DataLicence("KorSTS", _CC_BY_SA, _KORNLU),
            "github.com/kakaobrain/KorNLUDatasets @ 0df0fe7, KorSTS/", "korsts",
            (("train", "korsts/sts-train.tsv"), ("dev", "korsts/sts-dev.tsv"), ("test", "korsts/sts-test.tsv")),
            HubSource("kakaobrain/kor_nlu", "sts", columns=(("sentence1", "sentence1"), ("sentence2", "sentence2"),
                                                          ("score", "score"))),
            note="the Hub copy drops rows the TSVs keep (train 5,703 / dev 1,471 of 5,749 / 1,500)"),
    DataSet("kornli", "kornli", DataLicence("KorNLI", _CC_BY_SA, _KORNLU),
            "github.com/kakaobrain/KorNLUDatasets @ 0df0fe7, KorNLI/", "kornli",
            (("train", "kornli/snli_1.0_train.ko.tsv"), ("train", "kornli/multinli.train.ko.tsv"),
             ("dev", "kornli/xnli.dev.ko.tsv"), ("test", "kornli/xnli.test.ko.tsv")),
            HubSource("kakaobrain/kor_nlu", "nli", columns=(("sentence1", "premise"), ("sentence2", "hypothesis"),
                                                          ("label", "label"))),
            note="the shared data lacks both train files (over 4 MiB); the Hub's train split is SNLI only"),
    _klue("sts", "json", HubSource("klue/klue", "sts", _KLUE_HUB_REVISION, _KLUE_SPLITS,
                                   (("sentence1", "sentence1"), ("sentence2", "sentence2"),
                                    ("score", "labels.label")))),
    _klue("nli", "json", HubSource("klue/klue", "nli", _KLUE_HUB_REVISION, _KLUE_SPLITS,
                                   (("sentence1", "premise"), ("sentence2", "hypothesis"), ("label", "label")))),
    _klue("ner", "tsv", None),  # the Hub copy tags characters: no mapping onto word-level rows here
    DataSet("nsmc", "nsmc", DataLicence("NSMC", "CC0 1.0", "e9t/nsmc"), "github.com/e9t/nsmc @ cc0670e", "nsmc",
            (("train", "nsmc/ratings_train.txt"), ("test", "nsmc/ratings_test.txt")),
            HubSource("e9t/nsmc", splits=(("train", "train"), ("test", "test")),
                      columns=(("sentence1", "document"), ("label", "label")))),
    DataSet("paws-x-ko", "paws_x_ko", DataLicence("PAWS-X Korean", "free use, credit Google",
                                                  "google-research-datasets/paws"),
            "github.com/monologg/KoELECTRA @ 024fbdd, finetune/data/paws/", "paws-x",
            (("train", "paws_x_ko/translated_train.tsv"), ("dev", "paws_x_ko/dev_2k.tsv"),
             ("test", "paws_x_ko/test_2k.tsv")),
            HubSource("google-research-datasets/paws-x", "ko",
                      columns=(("sentence1", "sentence1"), ("sentence2", "sentence2"), ("label", "label")))),
    DataSet("question-pair", "question_pair", _QUESTION_PAIR, "github.com/songys/Question_pair @ e84b6f0",
            "question-pair",
            (("train", "question_pair/kor_pair_train.csv"), ("test", "question_pair/kor_Pair_test.csv"))),
    DataSet("question-pair-txt", "question_pair", _QUESTION_PAIR, "github.com/songys/Question_pair @ e84b6f0",
            "question-pair", (("train", "question_pair/train.txt"), ("dev", "question_pair/validation.txt"),
                              ("test", "question_pair/test.txt")),
            note="the repository's second layout (TSV), a different sample from the CSV files"),
    DataSet("parakqc", "parakqc", DataLicence("ParaKQC", _CC_BY_SA, "Cho et al. 2020, warnikchow/paraKQC"),
            "github.com/warnikchow/paraKQC @ c16270f, data/", "parakqc", (("train", "parakqc/paraKQC_v1.txt"),),
            note="1,000 sets of 10 paraphrases, read as 9 pairs per set"),
    DataSet("korquad", "korquad", DataLicence("KorQuAD 1.0", "CC BY-ND 2.0 KR", "korquad/korquad.github.io"),
            "github.com/korquad/korquad.github.io @ 61d7d66, dataset/", "korquad",
            (("train", "korquad/KorQuAD_v1.0_train.json"), ("dev", "korquad/KorQuAD_v1.0_dev.json")),
            HubSource("KorQuAD/squad_kor_v1", splits=(("train", "train"), ("dev", "validation")),
                      columns=(("id", "id"), ("title", "title"), ("context", "context"), ("question", "question"),
                               ("answers", "answers")))),
    DataSet("naver-ner", "naver-ner", DataLicence("Naver NER", "no redistribution (Naver NLP Challenge 2018 terms)",
                                                  "naver/nlp-challenge"),
            "not in the shared data: bring your own copy", "naver-ner",
            (("train", "naver-ner/train_data"), ("test", "naver-ner/test_data"))),
    DataSet("kmou-ner", "kmou_ner", DataLicence("KMOU NER", "non-commercial only (MIT terms)", "kmounlp/NER"),
            "github.com/kmounlp/NER @ 1e557de", "kmou-ner",
            (("train", "kmou_ner/2016klp/ner.train"), ("dev", "kmou_ner/2016klp/ner.dev"),
             ("test", "kmou_ner/2016klp/ner.test"))),
    # Raw text (the recipe's corpus, tokenizer training): licences and sources, no reader here.
    DataSet("kobest", "kobest", DataLicence("KoBEST v1.0", _CC_BY_SA, "SKT-LSL/KoBEST_datarepo"),
            "github.com/SKT-LSL/KoBEST_datarepo @ 2956e24, v1.0/"),
    DataSet("3i4k", "3i4k", DataLicence("3i4K", _CC_BY_SA, "warnikchow/3i4k"), "github.com/warnikchow/3i4k @ cfa90c1"),
    DataSet("sae4k", "sae4k", DataLicence("sae4k", _CC_BY_SA, "warnikchow/sae4k"),
            "github.com/warnikchow/sae4k @ 4d55f8f"),
    DataSet("korean-hate-speech", "korean_hate_speech",
            DataLicence("Korean HateSpeech", _CC_BY_SA, "kocohub/korean-hate-speech"),
            "github.com/kocohub/korean-hate-speech @ f8d05dc"),
    DataSet("chatbot-data", "chatbot_data", DataLicence("Korean Chatbot Data", "MIT", "songys/Chatbot_data"),
            "github.com/songys/Chatbot_data @ 4cf20d1"),
    DataSet("ko-en-parallel", "ko_en_parallel",
            DataLicence("Korean-English parallel", "CC BY-SA 3.0", "jungyeul/korean-parallel-corpora"),
            "github.com/jungyeul/korean-parallel-corpora @ a1fb53d"),
    DataSet("tatoeba-ko-en", "tatoeba_ko_en", DataLicence("Tatoeba kor-eng", "CC BY 2.0 FR", "facebookresearch/LASER"),
            "github.com/facebookresearch/LASER @ 74bc6ae, data/tatoeba/v1/"),
)

CATALOGUE: Registry[DataSet] = Registry("data set", ((d.name, d) for d in _DATASETS),
                                        aliases={"paws-x": "paws-x-ko", "paws": "paws-x-ko"})

# File names that identify a data set when its folder is not in the path (e.g. a copied file).
_FILE_HINTS = {"kor_pair": "question-pair", "sts-": "korsts", "xnli": "kornli", "parakqc": "parakqc"}


def find_dataset(name: str) -> DataSet:
    """The catalogue entry called ``name``; a typo gets the nearest names suggested."""
    return CATALOGUE.get(name)


def dataset_for_path(path: str) -> tuple[DataSet, str | None] | None:
    """The data set a path belongs to and its split: an exact catalogue file, else by folder (split None),
    else by a file-name hint; None when the path names no catalogued data."""
    rel = path.replace("\\", "/")
    for _, ds in CATALOGUE.items():
        for split, p in ds.files:
            if rel == p or rel.endswith("/" + p):
                return ds, split
    parts = rel.split("/")
    by_folder = {ds.folder: ds for _, ds in reversed(list(CATALOGUE.items()))}  # the first entry of a folder wins
    for part in parts[:-1]:
        if part in by_folder:
            return by_folder[part], None
    name = parts[-1].lower()
    for hint, key in _FILE_HINTS.items():
        if hint in name:
            return CATALOGUE[key], None
    return None


def licence_for(path: str) -> DataLicence | None:
    """The licence of the data set a path (or a ``DATASET:SPLIT`` reference) belongs to, or None."""
    name, sep, split = path.partition(":")
    if sep and name in CATALOGUE and split in SPLITS:
        return CATALOGUE[name].licence
    found = dataset_for_path(path)
    return found[0].licence if found else None


def licences_for(paths: Iterable[str]) -> list[DataLicence]:
    """The distinct licences of ``paths``, sorted by data-set name; unknown paths are skipped."""
    seen = {lic.name: lic for p in paths if (lic := licence_for(p)) is not None}
    return [seen[name] for name in sorted(seen)]
