"""``koembed_model.json``: what koembed records about a model folder it made, typed where koembed reads it.

The recipe (``distill/recipe``) writes it when it packages a model; ``examples/benchmarks/tune_dense_weight.py``
adds ``search`` (the dense weight tuned for the model). It describes how the model was made, not what it
computes, so the model's fingerprint leaves it out (:mod:`koembed.model_source`). Keys koembed does not
read (recipe, scores, timings) are kept as written in :attr:`ModelCard.raw`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_CARD = "koembed_model.json"


@dataclass(frozen=True)
class SearchSettings:
    """``search``: how hybrid search should use this model (None where the card says nothing valid)."""

    dense_weight: float | None = None  # the convex weight of the dense side, within [0, 1]
    fusion: str | None = None
    analyser: str | None = None

    @classmethod
    def from_dict(cls, d: Any) -> SearchSettings:
        if not isinstance(d, dict):
            return cls()
        w = d.get("dense_weight")
        weight = float(w) if isinstance(w, int | float) and not isinstance(w, bool) and 0.0 <= w <= 1.0 else None
        fusion, analyser = d.get("fusion"), d.get("analyser")
        return cls(weight, fusion if isinstance(fusion, str) else None, analyser if isinstance(analyser, str) else None)


@dataclass(frozen=True)
class ModelCard:
    name: str | None = None
    fingerprint: str | None = None
    search: SearchSettings = field(default_factory=SearchSettings)
    raw: dict[str, Any] = field(default_factory=dict)


def card_path(folder: str | Path) -> Path:
    return Path(folder) / MODEL_CARD


def read_model_card(folder: str | Path | None) -> ModelCard:
    """The card of the model in ``folder``; an empty one when it has none or it cannot be read (any model works
    without one: it only adds what koembed measured about its own models)."""
    if folder is None:
        return ModelCard()
    try:
        raw = json.loads(card_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ModelCard()
    if not isinstance(raw, dict):
        return ModelCard()
    name, fingerprint = raw.get("name"), raw.get("fingerprint")
    return ModelCard(name if isinstance(name, str) else None, fingerprint if isinstance(fingerprint, str) else None,
                     SearchSettings.from_dict(raw.get("search")), raw)
