"""The names a search is asked in, and their checks: one home for the CLI, the library and the server's schemas.

Modes: ``dense`` (FAISS), ``lexical`` (BM25 over the index's analyser) and ``hybrid`` (both, fused by
:mod:`koembed.index.hybrid`). Fusions (named in :mod:`koembed.lexical.fusion`, re-exported here):
``convex`` (the default) and ``rrf``. The default mode is ``hybrid`` for text queries on an index with a
lexical part and ``dense`` otherwise (query vectors alone, or an index made before lexical parts
existed); lexical mode loads no model.

The dense side's weight comes from the model: a model made by this project records the weight tuned
for it (:mod:`koembed.model_card`, read once when the encoder loads); any other model gets
:data:`DEFAULT_DENSE_WEIGHT`. This module imports nothing else from :mod:`koembed.index`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

__all__ = ["DEFAULT_DENSE_WEIGHT", "DEFAULT_FUSION", "FUSIONS", "MODES", "Mode", "add_lexical_hint",
           "check_dense_weight", "check_fusion", "default_mode", "dense_weight_for", "resolve_mode"]

from koembed.errors import IndexRefusedError, InputError
from koembed.lexical.fusion import DEFAULT as DEFAULT_FUSION
from koembed.lexical.fusion import METHODS as FUSIONS
from koembed.lexical.fusion import check_dense_weight
from koembed.lexical.fusion import check_method as check_fusion

Mode = Literal["hybrid", "dense", "lexical"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "lexical")
# The dense weight for a model that records none: an even say for both sides.
DEFAULT_DENSE_WEIGHT = 0.5


def add_lexical_hint(directory: str | Path) -> str:
    """How to give an index a lexical part without re-encoding (the command; the library call is add_lexical)."""
    return f"koembed add-lexical {directory}"


def default_mode(has_lexical: bool, has_texts: bool = True) -> Mode:
    return "hybrid" if has_lexical and has_texts else "dense"


def resolve_mode(idx: Any, mode: str | None, *, has_texts: bool = True) -> Mode:
    """The mode a search of ``idx`` runs in: ``mode`` checked against the index, or the index's default.

    ``has_texts`` False: the query is vectors alone, which only dense search can take.
    """
    has_lexical = idx.lexical is not None
    if mode is None:
        return default_mode(has_lexical, has_texts)
    if mode not in MODES:
        raise InputError(f"unknown search mode {mode!r}; choose one of: {', '.join(MODES)}")
    if mode != "dense" and not has_texts:
        raise InputError(f"{mode} search needs query texts; query vectors alone can only be searched in dense mode")
    if mode != "dense" and not has_lexical:
        raise IndexRefusedError(f"{idx.directory}: has no lexical part (it was built before koembed had one), so "
                                f"{mode} search cannot run on it; add it without re-encoding: "
                                f"{add_lexical_hint(idx.directory)}")
    return mode  # type: ignore[return-value]


def dense_weight_for(encoder: Any) -> float:
    """The dense weight ``encoder``'s model records (read when it was loaded), else :data:`DEFAULT_DENSE_WEIGHT`."""
    weight = getattr(encoder, "dense_weight", None)
    return DEFAULT_DENSE_WEIGHT if weight is None else float(weight)
