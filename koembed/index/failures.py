"""One clear line for the failures of an index that koembed does not cause: a full disk, a read-only file
or folder, a damaged store. They come as ``OSError`` (Python), ``sqlite3.Error`` (the store),
``RuntimeError`` (FAISS) or ``SafetensorError`` (the BM25 file), the last two with the system's reason in
their text; each is mapped to a ``KoembedError``
that names the path, says what state the index is in and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from koembed.errors import IndexRefusedError, KoembedError, WriteError

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)
# How the same reasons read inside SQLite and FAISS messages (FAISS appends strerror to its own text).
_FULL_TEXT = ("no space left", "disk quota", "database or disk is full", "file too large")
_READ_ONLY_TEXT = ("readonly database", "read-only file system", "permission denied", "operation not permitted")
_CORRUPT_TEXT = ("malformed", "not a database", "no such table", "no such file", "unable to open")
# Less free space than this, and an I/O error is taken for a full disk.
FULL_BELOW_BYTES = 1 << 20


def _reason(exc: BaseException) -> str:
    if getattr(exc, "strerror", None):
        return str(exc.strerror)
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
    system = re.search(r"\(([^()]+)\)\s*$", text)  # FAISS ends its message with the system's reason
    if system and isinstance(exc, RuntimeError):
        return system.group(1)[:200]
    io = re.search(r"I/O error: (.+)$", text)  # safetensors: "Error while serializing: I/O error: <reason>"
    return (io.group(1) if io else text)[:200]


def write_error(where: object, exc: BaseException, state: str) -> KoembedError | None:
    """A ``WriteError`` for a full disk or a read-only target, else None (the caller re-raises ``exc``).

    ``state`` says what the index holds now, e.g. "the index is unchanged (generation 4)".
    """
    code = getattr(exc, "errno", None)
    text = str(exc).lower()
    # SQLite reports a -shm or -wal file it could not grow as a plain I/O error.
    if code in _FULL or any(t in text for t in _FULL_TEXT) or ("i/o error" in text and _disk_full(where)):
        return WriteError(f"{where}: the disk is full ({_reason(exc)}); {state}; free some space and rerun")
    if code in _READ_ONLY or any(t in text for t in _READ_ONLY_TEXT):
        return WriteError(f"{where}: cannot write here ({_reason(exc)}); {state}; the index can still be searched, "
                          "but changing it needs write access to the folder and its files")
    return None


def _disk_full(where: object) -> bool:
    path = Path(str(where))
    folder = path if path.is_dir() else path.parent
    try:
        return shutil.disk_usage(folder).free < FULL_BELOW_BYTES
    except OSError:
        return False


@contextlib.contextmanager
def writing(where: object, state: str | Callable[[], str]) -> Iterator[None]:
    """Turn a full disk or a read-only target inside the block into one :class:`WriteError`."""
    try:
        yield
    except Exception as exc:  # OSError, sqlite3.Error, FAISS's RuntimeError, safetensors' SafetensorError, ...
        # Classified by errno or by the system's reason in the text (libraries wrap ENOSPC in their own types);
        # anything else is not a write failure and goes on as it was.
        err = write_error(where, exc, state() if callable(state) else state)
        if err is None:
            if isinstance(exc, sqlite3.Error):
                raise refused_store(where, exc) from None
            raise
        raise err from None


def refused_store(path: object, exc: BaseException) -> KoembedError:
    """The error for a SQLite store that could not be opened or read (or written: see :func:`write_error`)."""
    err = write_error(path, exc, "nothing was changed")
    if err is not None:
        return err
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return IndexRefusedError(f"{path}: the document store stayed locked by another process ({_reason(exc)}); "
                                 "retry when it has finished")
    if any(t in text for t in _CORRUPT_TEXT) or type(exc) is sqlite3.DatabaseError or isinstance(exc, ValueError):
        return IndexRefusedError(f"{path}: not a readable document store ({_reason(exc)}); the index is corrupt, "
                                 "rebuild it")
    return IndexRefusedError(f"{path}: the document store failed ({_reason(exc)})")
