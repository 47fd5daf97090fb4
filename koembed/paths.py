"""Where koembed finds things it does not ship: the Korean data folder and its cache."""

from __future__ import annotations

import os
from pathlib import Path

from koembed.errors import InputError

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR_ENV = "KOEMBED_DATA_DIR"


def data_dir(override: str | Path | None = None) -> Path:
    """The folder of Korean data sets that relative data paths are taken from.

    An explicit ``override``, else ``$KOEMBED_DATA_DIR``, is used as given: one that is not a folder is
    refused (never replaced by another folder, which would score other data). Without either, the
    first of ``../shared/data`` from the working directory and ``../shared/data`` beside the source
    checkout that exists; if neither does, the latter is returned, and readers that find no file
    there fall back to the Hugging Face Hub (see :mod:`koembed.data`).
    """
    if override:
        return _existing(Path(override).expanduser(), "data folder")
    if os.environ.get(DATA_DIR_ENV):
        return _existing(Path(os.environ[DATA_DIR_ENV]).expanduser(), f"{DATA_DIR_ENV}")
    candidates = [Path.cwd().parent / "shared" / "data", REPO_ROOT.parent / "shared" / "data"]
    return next((c for c in candidates if c.is_dir()), candidates[-1])


def _existing(path: Path, what: str) -> Path:
    if not path.is_dir():
        state = "is a file, not a folder" if path.exists() else "does not exist"
        raise InputError(f"{what} {path} {state}; give the folder that holds the data sets (korsts/, kornli/, ...)")
    return path


def cache_dir() -> Path:
    """koembed's cache (ONNX exports, demo models): ``$KOEMBED_CACHE`` or ``~/.cache/koembed``."""
    return Path(os.environ.get("KOEMBED_CACHE", Path.home() / ".cache" / "koembed"))
