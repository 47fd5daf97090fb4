"""The manifest of an index: a typed view of ``manifest.json`` (and of the copy committed in SQLite).

The file format is unchanged from the untyped dict it replaces: :meth:`Manifest.to_dict` writes the
same keys, and keys a newer koembed may add are kept in ``extra`` and written back, so a rewrite
never drops them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from koembed.errors import IndexRefusedError
from koembed.model_names import stable_model_name

FORMAT = "koembed-index"
FORMAT_VERSION = 1
METRIC = "cosine (inner product of L2-normalised vectors)"


# The JSON type each known key must have; None only where the dataclass default is None (_NULLABLE).
_TYPES: dict[str, type] = {
    "dim": int, "spec": str, "index_type": str, "metric": str, "spec_reason": str, "search_defaults": dict,
    "count": int, "ntotal": int, "tombstones": int, "next_row_id": int, "trained": bool, "generation": int,
    "files": dict, "created": str, "updated": str, "config": dict, "calibration": dict, "faiss_file": str,
    "lexical": dict, "lists_file": str,
}
_NULLABLE = {"calibration", "faiss_file", "lexical", "lists_file"}


def _is(value: object, kind: type) -> bool:
    if kind is int:  # JSON has no separate bool, but Python's bool is an int: refuse it where a count is due
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


class LexicalInfo(TypedDict):
    """The manifest's ``lexical`` entry: the lexical part's analyser, BM25 constants, file and sizes."""

    analyser: str  # koembed.lexical.analysers name; a query or write with another is refused
    k1: float
    b: float
    file: str | None  # lexical.{generation}.safetensors; None until the first commit
    documents: int
    vocabulary: int
    postings: int


class CandidateRecall(TypedDict, total=False):
    spec: str
    nprobe: int
    recall_at_10: float
    speedup_vs_flat: float


class Calibration(TypedDict, total=False):
    """The manifest's ``calibration``: how an IVF index's default nprobe was chosen.

    ``target_recall_at_10`` is the recall@10 against exact search that nprobe was calibrated to reach on a
    held-out sample (koembed.index.spec.CALIBRATION_RECALL), for auto and explicit IVF alike.
    ``promised_recall_at_10`` (auto only) is the recall the auto rule promises, below it to leave room for
    sampling noise and quantisation loss (koembed.index.autotune.TARGET_RECALL). Indexes made before this
    record was typed may say ``calibrated_to`` for the first and ``target_recall_at_10`` for the second.
    """

    nprobe: int
    target_recall_at_10: float
    promised_recall_at_10: float
    sample: int  # training vectors the calibration ran on
    queries: int  # held-out queries (auto)
    min_speedup: float  # over Flat, for auto to choose IVF
    candidates: list[CandidateRecall]  # auto: what each type measured
    chosen: str  # auto: the factory string chosen


@dataclass
class ModelInfo:
    """The model whose vectors an index holds (all None for an index built from bare vectors).

    ``prompts`` maps each role (``query``, ``document``; :mod:`koembed.backends.prompts`) to the prompt
    the model put before such inputs when the index was built: documents were encoded with the
    ``document`` one, and queries must be encoded with the ``query`` one. An index written before
    prompts were recorded has none: its documents were encoded without a prompt.
    """

    name: str | None = None
    fingerprint: str | None = None
    backend: str | None = None
    prompts: dict[str, str] = field(default_factory=dict)

    def prompt(self, role: str) -> str:
        return self.prompts.get(role, "")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        if not self.prompts:  # an index without prompts keeps the manifest it always had
            out.pop("prompts")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: object) -> ModelInfo:
        prompts = data.get("prompts") or {}
        if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
            raise IndexRefusedError(f"{where}: the manifest's model.prompts must map roles to strings; the index is "
                                    "corrupt, rebuild it")
        return cls(data.get("name"), data.get("fingerprint"), data.get("backend"), dict(prompts))

    def __post_init__(self) -> None:
        # A model koembed can name is recorded by that name, not by this environment's folder for it, and an
        # older manifest's folder is read as the name (koembed.model_names): the index moves between venvs.
        self.name = stable_model_name(self.name)


@dataclass
class Manifest:
    dim: int
    spec: str  # the FAISS factory string
    index_type: str = "auto"  # as requested: auto, an alias or a factory string
    model: ModelInfo = field(default_factory=ModelInfo)
    metric: str = METRIC
    spec_reason: str = ""
    search_defaults: dict[str, int] = field(default_factory=dict)
    count: int = 0
    ntotal: int = 0
    tombstones: int = 0
    next_row_id: int = 0
    trained: bool = False
    generation: int = -1
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"bytes", "crc32"}
    created: str = ""
    updated: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # the IndexConfig of the last build
    calibration: Calibration | None = None  # how the default nprobe was chosen (IVF only)
    faiss_file: str | None = None  # None only before the first commit
    # The lexical part (koembed.index.lexical_part.new_info): analyser, BM25 constants, its file and counts; None for an
    # index without one (all indexes made before lexical search existed).
    lexical: LexicalInfo | None = None
    lists_file: str | None = None  # IVF lists in their own memory-mapped file (an index merged by koembed.scale)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, kept as they were

    _REQUIRED = ("dim", "spec", "generation", "files")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: object) -> Manifest:
        """Parse a manifest dict read from ``where`` (a path, for messages); refuse one missing required keys."""
        missing = [k for k in cls._REQUIRED if k not in data]
        if missing:
            raise IndexRefusedError(f"{where}: the manifest lacks {', '.join(missing)}; the index is corrupt, "
                                    "rebuild it")
        wrong = [f"{k} ({'null' if data[k] is None else type(data[k]).__name__}, expected {kind.__name__})"
                 for k, kind in _TYPES.items()
                 if k in data and not (data[k] is None and k in _NULLABLE) and not _is(data[k], kind)]
        if not isinstance(data.get("model") or {}, dict):
            wrong.append(f"model ({type(data['model']).__name__}, expected dict)")
        if wrong:
            raise IndexRefusedError(f"{where}: the manifest has the wrong type for {', '.join(wrong)}; the index is "
                                    "corrupt, rebuild it")
        names = {f.name for f in dataclasses.fields(cls)} - {"model", "extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names | {"model", "format", "format_version"}}
        return cls(**known, model=ModelInfo.from_dict(data.get("model") or {}, where), extra=extra)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": self.model.as_dict()}
        for f in dataclasses.fields(self):
            if f.name in ("model", "extra"):
                continue
            value = getattr(self, f.name)
            if f.name in ("calibration", "faiss_file", "lexical", "lists_file") and value is None:
                continue
            out[f.name] = value
        return out | self.extra

    def check_model(self, where: object, fingerprint: str | None, dim: int | None = None, *,
                    allow_mismatch: bool = False, name: str | None = None,
                    prompts: dict[str, str] | None = None) -> None:
        """Refuse a model whose vectors would not be comparable with the ones this index holds.

        ``prompts`` maps roles to the prompts the caller will encode with (a search: its query prompt; a
        write: its document prompt); each must be the one the index recorded, like the model itself.
        """
        if dim is not None and dim != self.dim:
            raise IndexRefusedError(f"{where}: the model gives {dim}-dimensional vectors, the index holds "
                                    f"{self.dim}-dimensional ones; use the index's model ({self.model.name})")
        want = self.model.fingerprint
        if want and fingerprint and fingerprint != want and not allow_mismatch:
            raise IndexRefusedError(
                f"{where}: model {name or ''} (fingerprint {fingerprint[:12]}) differs from the index's model "
                f"{self.model.name!r} (fingerprint {want[:12]}); use that model, or for search "
                "only allow the mismatch (allow_model_mismatch=True, --allow-model-mismatch)")
        for role, prompt in (prompts or {}).items():
            recorded = self.model.prompt(role)
            if prompt != recorded and not allow_mismatch:
                raise IndexRefusedError(
                    f"{where}: {role}s would be encoded with the prompt {prompt!r}, but the index was built for the "
                    f"{role} prompt {recorded!r}; vectors made with other prompts are not comparable: use the "
                    "index's model and prompts, or for search only allow the mismatch "
                    "(allow_model_mismatch=True, --allow-model-mismatch)")

    def copy(self, **changes: Any) -> Manifest:
        """A deep-enough copy (nested dicts copied) with ``changes`` applied."""
        m = dataclasses.replace(self, model=dataclasses.replace(self.model, prompts=dict(self.model.prompts)),
                                search_defaults=dict(self.search_defaults),
                                files=dict(self.files), config=dict(self.config), extra=dict(self.extra),
                                lexical=None if self.lexical is None else dict(self.lexical))
        for key, value in changes.items():
            setattr(m, key, value)
        return m
