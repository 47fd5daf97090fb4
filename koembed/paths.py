"""Where koembed finds things it does not ship: the shared Korean data and its cache."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir(override: str | Path | None = None) -> Path:
    """The folder of real Korean data sets (``../shared/data`` next to the checkout by default).

    Order: an explicit ``override``, ``$KOEMBED_DATA_DIR``, ``./../shared/data`` from the working
    directory, then ``../shared/data`` beside the source checkout. The first that exists wins; if
    none does, the last candidate is returned so that callers can name it in their error message.
    """
    candidates = [Path(override)] if override else []
    if os.environ.get("KOEMBED_DATA_DIR"):
        candidates.append(Path(os.environ["KOEMBED_DATA_DIR"]))
    candidates += [Path.cwd().parent / "shared" / "data", REPO_ROOT.parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0] if override else candidates[-1]


def cache_dir() -> Path:
    """koembed's cache (ONNX exports, demo models): ``$KOEMBED_CACHE`` or ``~/.cache/koembed``."""
    return Path(os.environ.get("KOEMBED_CACHE", Path.home() / ".cache" / "koembed"))
