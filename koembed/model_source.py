"""Resolve a model argument (None, a local folder, or a Hub id) to a local folder and its kind.

Kinds: ``sentence-transformers`` (a folder with ``modules.json``) or ``bert`` (a bare Hugging Face
encoder checkpoint such as ``BM-K/KoMiniLM``, to which mean pooling is added). Hub ids are
downloaded (or taken from the local Hub cache) with ``huggingface_hub.snapshot_download``, so the
same code path serves local folders and the Hub.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from koembed.errors import ModelNotFoundError
from koembed.model_card import MODEL_CARD

PACKAGE_MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL_NAME = "kominilm-e5-ko"
# Files that determine the vectors: weights, tokenizer, architecture and module configs.
_FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")
_FINGERPRINT_SKIP_DIRS = {"onnx", ".cache", "runs", "eval", "checkpoints"}
# Run logs and configs saved beside a model describe how it was made, not what it computes.
_FINGERPRINT_SKIP_FILES = {
    "README.md", "koembed_train_config.json", "eval_results.json", "trainer_state.json", "distill_config.json",
    "mlm_config.json", "final_losses.json", "stage.json", MODEL_CARD, "log.jsonl",
}


@dataclass(frozen=True)
class ModelSource:
    name: str  # what the user asked for: a Hub id, or a local folder made absolute; recorded in index manifests
    path: Path  # local folder holding the files
    kind: str  # "sentence-transformers" or "bert"


def default_model() -> str:
    """The model used when none is given: ``$KOEMBED_MODEL`` or the one shipped in the package."""
    return os.environ.get("KOEMBED_MODEL") or str(PACKAGE_MODELS / DEFAULT_MODEL_NAME)


def model_names() -> list[str]:
    """The names koembed resolves without a path: the models in the package and the importable ones."""
    from koembed.importers.named import IMPORTED_MODELS

    shipped = sorted(p.name for p in PACKAGE_MODELS.iterdir() if (p / "modules.json").is_file())
    return shipped + sorted(IMPORTED_MODELS)


def resolve_model(model: str | os.PathLike | None = None) -> ModelSource:
    """Find ``model`` by name, locally or on the Hub; raise :class:`ModelNotFoundError` naming what was tried.

    A name (no "/") of a model in the package or of an importable one (``e5-small-ko``) is resolved first and
    recorded as that name, so an index built here finds its model from another environment or container.
    """
    name = str(model) if model is not None else default_model()
    named = _named_model(name)
    if named is not None:
        return named
    tried: list[str] = []
    local = Path(name).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ModelNotFoundError(f"model {name!r}: {local} is a file, expected a model folder")
        # Absolute (links kept, not resolved), so an index records a name that finds the model from any folder.
        return ModelSource(name=os.path.abspath(local), path=local.resolve(), kind=_kind(local, name))
    tried.append(f"local folder {local.resolve()} (does not exist)")
    if _looks_like_hub_id(name):
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(name))
            return ModelSource(name=name, path=path, kind=_kind(path, name))
        except Exception as exc:  # any Hub failure means "not found here"
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            tried.append(f"Hugging Face Hub id {name!r} ({reason})")
    else:
        tried.append(f"Hub id {name!r} (not a valid 'owner/name' id)")
    if model is None:
        tried.append("the embedded default model is not installed: pass --model / model=... (a path or Hub id)")
    raise ModelNotFoundError(f"model {name!r} not found; tried: " + "; ".join(tried))


def _named_model(name: str) -> ModelSource | None:
    if "/" in name or os.sep in name or name.startswith("."):
        return None
    shipped = PACKAGE_MODELS / name
    if (shipped / "modules.json").is_file():
        return ModelSource(name=name, path=shipped, kind="sentence-transformers")
    from koembed.importers.named import IMPORTED_MODELS, ensure_imported_model

    if name in IMPORTED_MODELS:
        return ModelSource(name=name, path=ensure_imported_model(name), kind="sentence-transformers")
    return None


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return 1 <= len(parts) <= 2 and all(p and not p.startswith(".") and " " not in p for p in parts)


def _kind(path: Path, name: str) -> str:
    if (path / "modules.json").is_file():
        return "sentence-transformers"
    if (path / "config.json").is_file():
        return "bert"
    raise ModelNotFoundError(
        f"model {name!r}: {path} has neither modules.json (sentence-transformers) nor config.json (Hugging Face)"
    )


def fingerprint(path: str | Path, extra: str = "") -> str:
    """A stable hex digest of the files that determine a model's vectors, plus ``extra`` settings.

    Hashes file *contents* in sorted relative-path order (weights, tokenizer, configs, module
    configs); model cards, caches and training logs are skipped, so copying or re-documenting a
    model keeps its fingerprint while any weight change alters it. Needs no torch import.
    """
    root = Path(path)
    files = sorted(_fingerprint_files(root))
    # The contents are hashed once per process and state of the files: the encoder's fingerprint and
    # the ONNX cache key hash the same weights with different ``extra`` settings. Across processes the
    # digest is remembered for that state (size and mtime of every file): hashing the embedded model's
    # 13 MB of weights would cost every command ~30 ms of its start-up.
    signature = tuple((f.relative_to(root).as_posix(), *_stat_key(f)) for f in files)
    key = hashlib.blake2b(repr((str(root.resolve()), signature, extra)).encode(), digest_size=16).hexdigest()
    memo = _memo()
    if key not in memo:
        h = _files_hash(str(root.resolve()), signature).copy()
        h.update(extra.encode())
        _remember(memo, key, h.hexdigest())
    return memo[key]


FINGERPRINT_MEMO = "fingerprints.json"  # in koembed's cache folder
FINGERPRINT_MEMO_MAX = 256


@functools.lru_cache(maxsize=1)
def _memo() -> dict[str, str]:
    from koembed.paths import cache_dir

    try:
        data = json.loads((cache_dir() / FINGERPRINT_MEMO).read_text(encoding="utf-8"))
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
    except (OSError, ValueError, AttributeError):
        return {}


def _remember(memo: dict[str, str], key: str, digest: str) -> None:
    from koembed.atomic import atomic_write_text
    from koembed.errors import KoembedError
    from koembed.paths import cache_dir

    memo[key] = digest
    while len(memo) > FINGERPRINT_MEMO_MAX:
        memo.pop(next(iter(memo)))  # the oldest entry
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_dir() / FINGERPRINT_MEMO, json.dumps(memo))
    except (OSError, KoembedError):  # a read-only home: hash again next time, nothing else changes
        pass


def _stat_key(f: Path) -> tuple[int, int]:
    st = f.stat()
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=16)
def _files_hash(root: str, signature: tuple[tuple[str, int, int], ...]) -> Any:
    """blake2b over (relative path, contents) of the files in ``signature``; callers must ``.copy()`` it."""
    h = hashlib.blake2b(digest_size=16)
    for rel, _size, _mtime in signature:
        h.update(rel.encode())
        h.update(b"\0")
        with (Path(root) / rel).open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h


def model_fingerprint(source: ModelSource, normalize: bool = True) -> str:
    """The fingerprint ``KoMiniLMEncoder`` reports: the files plus how vectors are pooled and normalised."""
    return fingerprint(source.path, extra=f"kind={source.kind};normalize={normalize}")


def _fingerprint_files(root: Path) -> list[Path]:
    out = []
    for f in root.rglob("*"):
        rel = f.relative_to(root)
        skipped_dir = any(p in _FINGERPRINT_SKIP_DIRS or p.startswith("checkpoint-") for p in rel.parts[:-1])
        if skipped_dir or not f.is_file():
            continue
        if f.name in _FINGERPRINT_SKIP_FILES or not f.name.endswith(_FINGERPRINT_SUFFIXES):
            continue
        out.append(f)
    return out
