"""The raw Korean text that feeds the recipe's tokenizer, MLM and distillation stages.

Each source is a record (file, how to read the text out of it): data, not code paths. Formats that
:mod:`koembed.korean_data` reads go through its readers; a source's licence is the one
the data catalogue (:mod:`koembed.data`) lists for it. Nothing here is a split that a reported number is
measured on: KorSTS dev/test, the KorNLI/XNLI test, NSMC test, Question Pair test, PAWS-X, KLUE dev
sets and KorQuAD dev stay out.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from koembed import korean_data as kd
from koembed.atomic import atomic_path
from koembed.data import DataLicence, licence_for
from koembed.text import normalize


@dataclass(frozen=True)
class TextSource:
    name: str
    path: str  # relative to the data dir
    column: int | str | None  # TSV/CSV column holding the text (None = the whole line), or a field of reader's rows
    delimiter: str = "\t"
    header: bool = True
    reader: Callable[[Path], list[dict]] | None = None  # a koembed.korean_data reader, for the formats it knows

    @property
    def licence(self) -> DataLicence:
        found = licence_for(self.path)
        if found is None:
            raise ValueError(f"{self.path}: no data set of the catalogue (koembed.data) holds it")
        return found


RAW_TEXT_SOURCES: tuple[TextSource, ...] = (
    TextSource("nsmc-neutral", "nsmc/raw_neutral_reviews.tsv", 3),
    TextSource("nsmc-train", "nsmc/ratings_train.txt", "sentence1", reader=kd.read_nsmc),
    TextSource("hate-speech-unlabeled", "korean_hate_speech/unlabeled/unlabeled_comments_5.txt", None, header=False),
    TextSource("3i4k-train", "3i4k/train_val_test/fci_train_val.txt", 1, header=False),
    TextSource("sae4k", "sae4k/sae4k_v1.txt", 0, header=False),
    TextSource("chatbot-q", "chatbot_data/ChatbotData.csv", 0, delimiter=","),
    TextSource("chatbot-a", "chatbot_data/ChatbotData.csv", 1, delimiter=","),
    TextSource("kobest-boolq-train", "kobest/BoolQ/train.tsv", 1),
    TextSource("news-v1-dev-ko", "ko_en_parallel/news-v1/korean-english-park.dev.ko", None, header=False),
    TextSource("korsts-train-1", "korsts/sts-train.tsv", "sentence1", reader=kd.read_korsts),
    TextSource("korsts-train-2", "korsts/sts-train.tsv", "sentence2", reader=kd.read_korsts),
)


def iter_source(data_dir: Path, source: TextSource) -> Iterator[str]:
    """Yield the normalised texts of one source of at least 2 characters (CSV-quoted for ',' files, unquoted TSV)."""
    path = data_dir / source.path
    if source.reader is not None:
        texts: Iterator[str] = (row[source.column] for row in source.reader(path))
    else:
        texts = _column(path, source)
    for raw in texts:
        text = normalize(raw)
        if len(text) >= 2:
            yield text


def _column(path: Path, source: TextSource) -> Iterator[str]:
    quoting = csv.QUOTE_MINIMAL if source.delimiter == "," else csv.QUOTE_NONE
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        if source.column is None:
            rows: Iterator = ([line.rstrip("\n")] for line in fh)
        else:
            rows = csv.reader(fh, delimiter=source.delimiter, quoting=quoting)
        for i, row in enumerate(rows):
            col = source.column or 0
            if not (source.header and i == 0) and len(row) > col:
                yield row[col]


def write_corpus(data_dir: Path, output: Path, sources: tuple[TextSource, ...] = RAW_TEXT_SOURCES) -> dict[str, int]:
    """Write every source's texts to ``output`` (one a line, atomically); returns lines per source."""
    counts: dict[str, int] = {}
    missing = [s.path for s in sources if not (data_dir / s.path).is_file()]
    if missing:
        from koembed.errors import InputError

        raise InputError(f"recipe corpus: missing files under {data_dir}: {', '.join(missing)}")
    with atomic_path(output) as tmp, tmp.open("w", encoding="utf-8") as out:
        for source in sources:
            n = 0
            for text in iter_source(data_dir, source):
                out.write(text.replace("\n", " ") + "\n")
                n += 1
            counts[source.name] = n
    return counts
