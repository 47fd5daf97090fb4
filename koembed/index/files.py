"""The files of an index directory: names, checksums, the manifest's first checks, the writer lock.

See :mod:`koembed.index.core` for the layout and the commit protocol that uses them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import zlib
from pathlib import Path
from typing import Any

from koembed.errors import IndexRefusedError
from koembed.index.manifest import FORMAT, FORMAT_VERSION, Manifest

MANIFEST = "manifest.json"
STORE = "docs.sqlite"
LOCK = ".lock"
# Read-only opens memory-map FAISS files at least this big instead of reading them into RAM.
MMAP_MIN_BYTES = 1 << 30


def file_checksum(path: Path) -> dict[str, Any]:
    """Size and CRC-32 of a file: enough to catch truncation and corruption, at ~1 GB/s."""
    crc = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            crc = zlib.crc32(chunk, crc)
    return {"bytes": path.stat().st_size, "crc32": f"{crc:08x}"}


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def not_an_index(d: Path, why: str) -> IndexRefusedError:
    return IndexRefusedError(f"{d}: not a koembed index ({why}); build one with `koembed index INPUT -o {d}`")


def read_manifest(d: Path) -> Manifest:
    """The parsed ``manifest.json`` of ``d``; refuses directories that are not koembed indexes."""
    if not d.is_dir():
        raise not_an_index(d, "no such directory")
    path = d / MANIFEST
    if not path.is_file():
        raise not_an_index(d, f"no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise IndexRefusedError(f"{path}: corrupt manifest (not valid JSON); the index cannot be trusted, "
                                "rebuild it") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise not_an_index(d, f"{MANIFEST} is not a koembed manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexRefusedError(f"{d}: index format version {manifest.get('format_version')} is not supported "
                                f"by this koembed (version {FORMAT_VERSION}); upgrade koembed or rebuild")
    return Manifest.from_dict(manifest, path)


def verify_file(d: Path, name: str, expected: dict[str, Any]) -> None:
    path = d / name
    if not path.is_file():
        raise IndexRefusedError(f"{path}: missing; the index is incomplete, rebuild it")
    size = path.stat().st_size
    if size != expected["bytes"]:
        raise IndexRefusedError(f"{path}: {size} bytes, the manifest says {expected['bytes']} (truncated or "
                                "corrupt); rebuild the index")
    got = file_checksum(path)
    if got["crc32"] != expected["crc32"]:
        raise IndexRefusedError(f"{path}: checksum {got['crc32']} does not match the manifest's "
                                f"{expected['crc32']} (corrupt); rebuild the index")


def read_faiss(d: Path, committed: Manifest, *, mmap: bool | None) -> Any:
    """Load the FAISS file ``committed`` names, checked against its vector count and dimension.

    ``mmap`` None: memory-map files of at least ``MMAP_MIN_BYTES``; False: read into RAM (writers always do).
    """
    import faiss

    path = d / str(committed.faiss_file)
    if mmap is None:
        mmap = path.stat().st_size >= MMAP_MIN_BYTES
    # IVF maps its inverted lists, flat-code types (Flat, HNSW storage) their codes.
    flags = faiss.IO_FLAG_READ_ONLY | (faiss.IO_FLAG_MMAP if "IVF" in committed.spec else faiss.IO_FLAG_MMAP_IFC)
    try:
        fi = faiss.read_index(str(path), flags if mmap else 0)
    except RuntimeError:
        raise IndexRefusedError(f"{path}: unreadable FAISS file (corrupt); rebuild the index") from None
    if fi.d != committed.dim or fi.ntotal != committed.ntotal:
        raise IndexRefusedError(f"{path}: holds {fi.ntotal} vectors of dimension {fi.d}, the manifest "
                                f"says {committed.ntotal} of {committed.dim}; rebuild the index")
    return fi


def lock_dir(d: Path) -> int:
    fd = os.open(d / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise IndexRefusedError(f"{d}: another koembed process is writing this index; wait for it to finish") from None
    return fd


def unlock_dir(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def remove_orphans(d: Path, keep: str) -> None:
    """Delete FAISS files of other generations and temp files that a killed writer left behind."""
    for p in d.glob("index.*.faiss"):
        if p.name != keep:
            p.unlink(missing_ok=True)
    for p in d.glob(".*.tmp"):
        p.unlink(missing_ok=True)
