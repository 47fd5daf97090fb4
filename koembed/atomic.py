"""Atomic file writes: write beside the target, fsync, then rename over it.

A reader (or a crash, even ``kill -9``) sees either the old file or the complete new one, never a
half-written file: ``os.replace`` within one folder is atomic on POSIX and Windows.

A temporary file is named ``.{target}.{pid}.{random}.tmp``. An exception (Ctrl-C, or SIGTERM under the
CLI) removes it on the way out; one left by a process that was killed outright is removed by the next
write of the same target once its pid is no longer running (:func:`remove_stale_temps`). Nothing else
in the folder is touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from koembed.errors import InputError

TMP_SUFFIX = ".tmp"


def temp_owner(name: str, target_name: str) -> int | None:
    """The pid in ``name`` if it is a temporary file :func:`atomic_path` made for ``target_name``, else None."""
    m = re.fullmatch(re.escape(f".{target_name}.") + r"(\d+)\.[A-Za-z0-9_]+" + re.escape(TMP_SUFFIX), name)
    return int(m.group(1)) if m else None


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def remove_stale_temps(folder: str | Path, target_name: str) -> int:
    """Delete the temporary files of ``target_name`` whose writing process is gone; returns how many.

    Only names of the exact form ``atomic_path`` gives are considered. (A pid reused by a new process
    keeps its file until that process ends: harmless, only a delay.)
    """
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            pid = temp_owner(entry.name, target_name)
            if pid is not None and pid != os.getpid() and not pid_running(pid):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success it replaces ``target`` atomically."""
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{target}: folder {folder} does not exist")
    if target.is_dir():
        raise InputError(f"{target}: is a directory, expected an output file name")
    remove_stale_temps(folder, target.name)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise InputError(f"{target}: cannot write to {folder} ({exc.strerror})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the result the permissions a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        # Again: a writer may have put a file of its own at the path (safetensors writes a 0600 file and
        # renames it there), and every file koembed writes gets the same permissions.
        os.chmod(tmp, 0o666 & ~umask)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(folder)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def _fsync_dir(folder: Path) -> None:
    # The rename itself is durable only once the directory entry is flushed.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
