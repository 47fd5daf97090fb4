"""Sentence-embedding training: NLI then KorSTS stages on ``SentenceTransformerTrainer``.

    from koembed.training import TrainConfig, train

    result = train(TrainConfig(output_dir="my-model").with_overrides(seed=1))

Modules: :mod:`~koembed.training.run` (the config and the stages), :mod:`~koembed.training.data`
(training examples from the Korean data readers), :mod:`~koembed.training.model_card` (the README
written beside a model). The stages module is not named ``train``: a submodule of that name would
replace the ``train`` function on this package once imported. Names load on first use, and the
config module imports no torch, so the CLI can show its defaults cheaply.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "TrainConfig": "koembed.training.run",
    "StageConfig": "koembed.training.run",
    "train": "koembed.training.run",
}

if TYPE_CHECKING:
    from koembed.training.run import StageConfig, TrainConfig, train

__all__ = ["StageConfig", "TrainConfig", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'koembed.training' has no attribute {name!r}")
