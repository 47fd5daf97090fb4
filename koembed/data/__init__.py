"""The data side of koembed: the catalogue of public Korean data sets, reading a split of one
(local files first, the Hugging Face Hub as the fallback), and the evaluation tasks built on them.

- :mod:`~koembed.data.catalogue`: name -> files per split, format, licence, source, Hub id and revision.
- :mod:`~koembed.data.load`: :func:`read_split`, the one way training, evaluation, the benchmark and the
  recipes read catalogued data.
- :mod:`~koembed.data.hub`: rows from a Hub dataset (``datasets`` is imported there only).
- :mod:`~koembed.data.tasks`: the one :class:`Task` type and registry of ``koembed eval`` and ``distill bench``.

The readers of each file format stay in :mod:`koembed.korean_data` (and :mod:`koembed.korean_ner`).
"""

from __future__ import annotations

from koembed.data.catalogue import (
    CATALOGUE,
    SPLITS,
    DataLicence,
    DataSet,
    HubSource,
    dataset_for_path,
    find_dataset,
    licence_for,
    licences_for,
)
from koembed.data.load import DataMissing, SplitRows, read_split
from koembed.data.tasks import TASKS, Hyper, Task, find_task

__all__ = [
    "CATALOGUE", "SPLITS", "TASKS", "DataLicence", "DataMissing", "DataSet", "HubSource", "Hyper", "SplitRows",
    "Task", "dataset_for_path", "find_dataset", "find_task", "licence_for", "licences_for", "read_split",
]
