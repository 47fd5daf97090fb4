"""The sentence-transformers loss of each training stage, by name: one table for training and the model card."""

from __future__ import annotations

from typing import Any

NLI_LOSSES = {"mnrl": "MultipleNegativesRankingLoss"}
STS_LOSSES = {"cosent": "CoSENTLoss", "cosine": "CosineSimilarityLoss"}
CACHED_MNRL = "CachedMultipleNegativesRankingLoss"  # GradCache variant of mnrl (TrainConfig.cached_mnrl)


def loss_class_name(stage: str, config: Any) -> str:
    """The sentence-transformers loss class a stage trains with (``config``: a ``TrainConfig``)."""
    if stage == "nli":
        return CACHED_MNRL if config.cached_mnrl else NLI_LOSSES[config.nli_loss]
    return STS_LOSSES[config.sts_loss]
