"""The files of an index directory: names, checksums, the manifest's first checks, the writer lock.

See :mod:`koembed.index` for the layout and the commit protocol that uses them.
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

FORMAT = "koembed-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STORE = "docs.sqlite"
LOCK = ".lock"


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


def read_manifest(d: Path) -> dict[str, Any]:
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
    return manifest


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
