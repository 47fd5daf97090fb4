"""The ONNX export cache: one folder per (model fingerprint, variant), created whole or not at all.

A model folder may also ship its own fp32 graph in ``onnx/`` (the embedded model does, built by the
recipe's packaging step): :func:`shipped_artefact` finds it when its manifest names the same export
key as the model's files have now, so the first use exports nothing.

An artefact is built in a temporary sibling folder and renamed into place, so a crash or ``kill -9``
mid-export leaves at most a ``.tmp-*`` folder that no load ever reads (and that the next build of
the same key sweeps away). A file lock keeps parallel workers from exporting the same model twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from koembed.model_source import ModelSource, fingerprint
from koembed.paths import cache_dir

# Bump when the exported graph or the files in an artefact change, so old caches are not reused.
# 2: ORT's fused BERT operators, fp16 storage of fp16-valued weights, a shipped graph's "export_key".
EXPORT_VERSION = 2
MANIFEST = "manifest.json"
STALE_TMP_SECONDS = 3600
SHIPPED_DIR = "onnx"  # inside a model folder; skipped by the model fingerprint


def export_key(source: ModelSource) -> str:
    """What an exported graph depends on: the model's files (``onnx/`` excluded), its kind and the export version."""
    return fingerprint(source.path, extra=f"onnx-export-v{EXPORT_VERSION};kind={source.kind}")


def artefact_dir(source: ModelSource, variant: str) -> Path:
    """Where ``variant`` (``fp32``, ``int8-...``) of ``source`` lives: keyed by the model's file contents."""
    return cache_dir() / "onnx" / f"{export_key(source)[:24]}-{variant}"


def shipped_artefact(source: ModelSource) -> tuple[Path, dict[str, Any]] | None:
    """The fp32 graph shipped in ``source``'s ``onnx/`` folder, if it was exported from these very files."""
    folder = Path(source.path) / SHIPPED_DIR
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("export_key") != export_key(source):
        return None
    return folder, manifest


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_artefact(final: Path, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Return ``final``'s manifest, first running ``build(tmp_dir) -> manifest`` if the artefact is absent.

    ``build`` writes its files into ``tmp_dir``; the manifest is written last and the folder is then
    renamed to ``final`` in one step.
    """
    manifest = read_manifest(final)
    if manifest is not None:
        return manifest
    final.parent.mkdir(parents=True, exist_ok=True)
    with _lock(final.parent / f".{final.name}.lock"):
        manifest = read_manifest(final)  # another process may have built it while we waited
        if manifest is not None:
            return manifest
        _sweep_stale(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
        try:
            manifest = build(tmp)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            _fsync_tree(tmp)
            if final.exists():  # a folder without a manifest: incomplete, never loaded; replace it
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def discard(final: Path) -> None:
    """Remove an artefact that failed to load, so the next call rebuilds it."""
    shutil.rmtree(final, ignore_errors=True)


def _sweep_stale(final: Path) -> None:
    # Temp folders of this key from crashed builds; a live build of the same key holds the lock.
    for tmp in final.parent.glob(f".tmp-{final.name}-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    now = time.time()
    for tmp in final.parent.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for f in folder.iterdir():
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no lock; concurrent builds still end in one complete folder
        yield
        return
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
