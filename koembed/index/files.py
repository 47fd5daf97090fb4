"""The files of an index directory: checksums, the manifest's first checks, the writer lock, the folder's life.

Their names and the commit protocol are in :mod:`koembed.index.layout`; reading one generation's files
is :mod:`koembed.index.generations`.
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

from koembed.atomic import pid_running
from koembed.errors import IndexRefusedError
from koembed.index.failures import write_error
from koembed.index.layout import (
    CREATING,
    FAISS_FILE,
    LEXICAL_FILE,
    LISTS_FILE,
    LOCK,
    MANIFEST,
    TEMP_FILE,
    is_koembed_file,
)
from koembed.index.manifest import FORMAT, FORMAT_VERSION, Manifest


class GenerationGone(IndexRefusedError):
    """The FAISS file of the generation a reader started on was deleted by two later commits: retry."""


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
    # An index is only ever created in an absent or empty folder: for a folder holding files, suggest one that
    # `koembed index` accepts (and that the folder's own documents can be indexed, as a folder input).
    try:
        empty = d.is_dir() and not any(d.iterdir())
    except OSError:
        empty = False
    if empty or not d.exists():
        hint = f"build one with `koembed index INPUT -o {d}`"
    else:
        hint = ("an index is built in a new or empty folder: `koembed index INPUT -o NEW_DIR` (INPUT may be this "
                "folder, to index the documents in it)")
    return IndexRefusedError(f"{d}: not a koembed index ({why}); {hint}")


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
    try:
        size = path.stat().st_size
        if size == expected["bytes"]:
            got = file_checksum(path)
    except FileNotFoundError:
        raise GenerationGone(f"{path}: missing; the index is incomplete, rebuild it") from None
    if size != expected["bytes"]:
        raise IndexRefusedError(f"{path}: {size} bytes, the manifest says {expected['bytes']} (truncated or "
                                "corrupt); rebuild the index")
    if got["crc32"] != expected["crc32"]:
        raise IndexRefusedError(f"{path}: checksum {got['crc32']} does not match the manifest's "
                                f"{expected['crc32']} (corrupt); rebuild the index")


def lock_dir(d: Path) -> int:
    """Take the writer lock of ``d`` (one writer at a time; readers never take it)."""
    try:
        fd = os.open(d / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        err = write_error(d, exc, "nothing was changed")
        if err is None:
            raise
        raise err from None
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


def remove_orphans(d: Path, keep: set[str]) -> None:
    """Delete FAISS and BM25 files of generations not in ``keep`` and temp files of writers that were killed.

    Only names koembed writes are touched (``index.NNNNNN.faiss``, ``lexical.NNNNNN.safetensors``, and
    ``.NAME.PID.XXXX.tmp`` of a pid that is gone); a user's ``index.backup.faiss`` or ``.notes.tmp`` stays.
    """
    with contextlib.suppress(OSError):
        for entry in os.scandir(d):
            temp = TEMP_FILE.fullmatch(entry.name)
            generation_file = (FAISS_FILE.fullmatch(entry.name) or LEXICAL_FILE.fullmatch(entry.name)
                               or LISTS_FILE.fullmatch(entry.name))
            orphan = generation_file and entry.name not in keep
            if orphan or (temp and int(temp.group(2)) != os.getpid() and not pid_running(int(temp.group(2)))):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def prepare_new_index(d: Path) -> int:
    """Make ``d`` ready for :meth:`Index.create` and return its writer lock.

    ``d`` may be absent, an empty folder (or a link to one: it is filled, not replaced, so its owner and
    mode stay), or the leftovers of a create that was killed (koembed's own file names next to the
    ``.koembed-creating`` marker), which are cleared. Anything else is refused and left as it is.
    """
    try:
        d.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file, or a link to nothing
        raise IndexRefusedError(f"{d}: exists and is not a directory; choose a new output directory") from None
    except OSError as exc:
        raise (write_error(d, exc, "no index was created") or exc) from None
    _check_new_index_folder(d)  # before taking the lock: a folder that is refused gets no .lock file
    fd = lock_dir(d)
    try:
        _check_new_index_folder(d)  # again, now that no other koembed process can be creating it
        abandon_new_index(d)
        try:
            (d / CREATING).touch()
        except OSError as exc:
            raise (write_error(d, exc, "no index was created") or exc) from None
    except BaseException:
        unlock_dir(fd)
        raise
    return fd


def _check_new_index_folder(d: Path) -> None:
    names = os.listdir(d)
    if MANIFEST in names:
        raise IndexRefusedError(f"{d}: is already a koembed index (another process created it meanwhile?); "
                                "rerun to add to it")
    ours = [n for n in names if n != LOCK]
    if any(not is_koembed_file(n) for n in names) or (ours and CREATING not in names):
        raise IndexRefusedError(f"{d}: exists and is not an empty directory or a koembed index; "
                                "choose a new output directory")


def abandon_new_index(d: Path) -> None:
    """Delete what an unfinished create wrote in ``d`` (koembed's own names only; the lock file stays)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(d):
            if name != LOCK and is_koembed_file(name):
                with contextlib.suppress(FileNotFoundError):
                    (d / name).unlink()
