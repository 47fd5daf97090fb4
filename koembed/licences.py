"""The one table of data-set licences, keyed by the folder a data set has under the data directory.

Model cards, the evaluation tasks, the recipe's corpus and the packaging step all read it, so a
licence is written once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class DataLicence(NamedTuple):
    name: str
    licence: str
    attribution: str


LICENCES: dict[str, DataLicence] = {
    "korsts": DataLicence("KorSTS", "CC BY-SA 4.0", "Ham et al. 2020, kakaobrain/KorNLUDatasets"),
    "kornli": DataLicence("KorNLI", "CC BY-SA 4.0", "Ham et al. 2020, kakaobrain/KorNLUDatasets"),
    "klue": DataLicence("KLUE v1.1", "CC BY-SA 4.0", "Park et al. 2021, KLUE-benchmark/KLUE"),
    "parakqc": DataLicence("ParaKQC", "CC BY-SA 4.0", "Cho et al. 2020, warnikchow/paraKQC"),
    "question_pair": DataLicence("Korean Question Pair", "MIT", "songys/Question_pair"),
    "nsmc": DataLicence("NSMC", "CC0 1.0", "e9t/nsmc"),
    "korquad": DataLicence("KorQuAD 1.0", "CC BY-ND 2.0 KR", "korquad/korquad.github.io"),
    "paws_x_ko": DataLicence("PAWS-X Korean", "free use, credit Google", "google-research-datasets/paws"),
    "kmou_ner": DataLicence("KMOU NER", "non-commercial only (MIT terms)", "kmounlp/NER"),
    "kobest": DataLicence("KoBEST v1.0", "CC BY-SA 4.0", "SKT-LSL/KoBEST_datarepo"),
    "3i4k": DataLicence("3i4K", "CC BY-SA 4.0", "warnikchow/3i4k"),
    "sae4k": DataLicence("sae4k", "CC BY-SA 4.0", "warnikchow/sae4k"),
    "korean_hate_speech": DataLicence("Korean HateSpeech", "CC BY-SA 4.0", "kocohub/korean-hate-speech"),
    "chatbot_data": DataLicence("Korean Chatbot Data", "MIT", "songys/Chatbot_data"),
    "ko_en_parallel": DataLicence("Korean-English parallel", "CC BY-SA 3.0", "jungyeul/korean-parallel-corpora"),
    "tatoeba_ko_en": DataLicence("Tatoeba kor-eng", "CC BY 2.0 FR", "facebookresearch/LASER"),
}

# File names that identify a data set when its folder is not in the path (e.g. a copied file).
_FILE_HINTS = {"kor_pair": "question_pair", "sts-": "korsts", "xnli": "kornli", "paraKQC": "parakqc"}


def licence_for(path: str) -> DataLicence | None:
    """The licence of the data set a path belongs to (by folder, then by file-name hint), or None."""
    parts = path.replace("\\", "/").split("/")
    for part in parts:
        if part in LICENCES:
            return LICENCES[part]
    name = parts[-1].lower()
    for hint, key in _FILE_HINTS.items():
        if hint.lower() in name:
            return LICENCES[key]
    return None


def licences_for(paths: Iterable[str]) -> list[DataLicence]:
    """The distinct licences of ``paths``, sorted by data-set name; unknown paths are skipped."""
    seen = {lic.name: lic for p in paths if (lic := licence_for(p)) is not None}
    return [seen[name] for name in sorted(seen)]
