"""The e5-student recipe's diet: which Korean texts the student learns from, and with which E5 prompt.

Data, not code: a source is a raw-text file of the shared data folder (see :mod:`distill.recipe.corpus`), how many
of its texts to take, the role the teacher embeds them in (``query: `` or ``passage: ``), and where to cut them.
None of these is a split that a reported number is measured on.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.recipe.corpus import TextSource
from koembed import korean_data as kd

QUERY, DOCUMENT = "query", "document"


@dataclass(frozen=True)
class DietSource:
    """Texts of one source, how many to take (0 = all), and the prompt (role) the teacher embeds them with."""

    source: TextSource
    cap: int
    role: str
    max_length: int = 128


# None of these is a split that a reported number is measured on (see distill.recipe.corpus).
DIET: tuple[DietSource, ...] = (
    DietSource(TextSource("nsmc-neutral", "nsmc/raw_neutral_reviews.tsv", 3), 9000, QUERY),
    DietSource(TextSource("nsmc-train", "nsmc/ratings_train.txt", "sentence1", reader=kd.read_nsmc), 6000, QUERY),
    DietSource(TextSource("hate-speech-unlabeled", "korean_hate_speech/unlabeled/unlabeled_comments_5.txt", None,
                          header=False), 3000, QUERY),
    DietSource(TextSource("3i4k-train", "3i4k/train_val_test/fci_train_val.txt", 1, header=False), 4000, QUERY),
    DietSource(TextSource("sae4k", "sae4k/sae4k_v1.txt", 0, header=False), 3000, QUERY),
    DietSource(TextSource("chatbot-q", "chatbot_data/ChatbotData.csv", 0, delimiter=","), 4000, QUERY),
    DietSource(TextSource("korsts-train-1", "korsts/sts-train.tsv", "sentence1", reader=kd.read_korsts), 0, QUERY),
    DietSource(TextSource("korsts-train-2", "korsts/sts-train.tsv", "sentence2", reader=kd.read_korsts), 0, QUERY),
    DietSource(TextSource("boolq-questions", "kobest/BoolQ/train.tsv", 2), 0, QUERY),
    # Documents: Wikipedia paragraphs (KoBEST BoolQ train), news sentences, and short texts as short documents.
    DietSource(TextSource("boolq-passages", "kobest/BoolQ/train.tsv", 1), 0, DOCUMENT, 256),
    DietSource(TextSource("news-v1-dev-ko", "ko_en_parallel/news-v1/korean-english-park.dev.ko", None,
                          header=False), 0, DOCUMENT),
    DietSource(TextSource("chatbot-a", "chatbot_data/ChatbotData.csv", 1, delimiter=","), 3000, DOCUMENT),
    DietSource(TextSource("nsmc-neutral-docs", "nsmc/raw_neutral_reviews.tsv", 3), 3000, DOCUMENT),
)
