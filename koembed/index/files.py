"""The files of an index directory: names, checksums, the manifest's first checks, the writer lock.

See :mod:`koembed.index.core` for the layout and the commit protocol that uses them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import re
import zlib
from pathlib import Path
from typing import Any

from koembed.atomic import pid_running
from koembed.errors import IndexRefusedError
from koembed.index.failures import write_error
from koembed.index.manifest import FORMAT, FORMAT_VERSION, Manifest

MANIFEST = "manifest.json"
STORE = "docs.sqlite"
LOCK = ".lock"
# Present while Index.create fills a folder: proof that the files beside it are an unfinished koembed index.
CREATING = ".koembed-creating"
FAISS_FILE = re.compile(r"index\.(\d{6,})\.faiss")
# The BM25 matrix of the lexical part (koembed.lexical.part), written by the generation in its name.
LEXICAL_FILE = re.compile(r"lexical\.(\d{6,})\.safetensors")
# The inverted lists of an IVF index merged on disk (koembed.scale), named for the generation that made them.
LISTS_FILE = re.compile(r"index\.(\d{6,})\.ivfdata")
# The temporary files koembed.atomic makes for the manifest, FAISS and BM25 files: .NAME.PID.RANDOM.tmp
TEMP_FILE = re.compile(r"\.(manifest\.json|index\.\d{6,}\.faiss|lexical\.\d{6,}\.safetensors)"
                       r"\.(\d+)\.[A-Za-z0-9_]+\.tmp")
# SQLite's own files beside the store (WAL mode; -journal from indexes written before it).
STORE_SIDECARS = (STORE + "-wal", STORE + "-shm", STORE + "-journal")
# Read-only opens memory-map FAISS files at least this big instead of reading them into RAM.
MMAP_MIN_BYTES = 1 << 30


class GenerationGone(IndexRefusedError):
    """The FAISS file of the generation a reader started on was deleted by two later commits: retry."""


def faiss_file_name(generation: int) -> str:
    return f"index.{generation:06d}.faiss"


def lexical_file_name(generation: int) -> str:
    return f"lexical.{generation:06d}.safetensors"


def lists_file_name(generation: int) -> str:
    return f"index.{generation:06d}.ivfdata"


def is_koembed_file(name: str) -> bool:
    """Whether koembed writes files of this exact name in an index folder (and so may delete them)."""
    return (name in (MANIFEST, STORE, LOCK, CREATING, *STORE_SIDECARS) or FAISS_FILE.fullmatch(name) is not None
            or LEXICAL_FILE.fullmatch(name) is not None or TEMP_FILE.fullmatch(name) is not None
            or LISTS_FILE.fullmatch(name) is not None)


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


def read_faiss(d: Path, committed: Manifest, *, mmap: bool | None) -> Any:
    """Load the FAISS file ``committed`` names, checked against its vector count and dimension.

    ``mmap`` None: memory-map files of at least ``MMAP_MIN_BYTES``; False: read into RAM (writers always do).
    """
    import faiss

    path = d / str(committed.faiss_file)
    lists_into_ram = mmap is False  # asked for (writers always ask), not decided by size below
    try:
        if mmap is None:
            mmap = path.stat().st_size >= MMAP_MIN_BYTES
    except FileNotFoundError:
        raise GenerationGone(f"{path}: missing; the index is incomplete, rebuild it") from None
    # IVF maps its inverted lists, flat-code types (Flat, HNSW storage) their codes.
    flags = faiss.IO_FLAG_READ_ONLY | (faiss.IO_FLAG_MMAP if "IVF" in committed.spec else faiss.IO_FLAG_MMAP_IFC)
    if committed.lists_file:  # the lists are in their own file, attached below
        flags, mmap = faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_SKIP_IVF_DATA, True
    try:
        fi = faiss.read_index(str(path), flags if mmap else 0)
        if committed.lists_file:
            attach_lists(fi, d / committed.lists_file, into_ram=lists_into_ram)
    except RuntimeError:
        if not path.exists():
            raise GenerationGone(f"{path}: missing; the index is incomplete, rebuild it") from None
        raise IndexRefusedError(f"{path}: unreadable FAISS file (corrupt); rebuild the index") from None
    if fi.d != committed.dim or fi.ntotal != committed.ntotal:
        raise IndexRefusedError(f"{path}: holds {fi.ntotal} vectors of dimension {fi.d}, the manifest "
                                f"says {committed.ntotal} of {committed.dim}; rebuild the index")
    return fi


def attach_lists(index: Any, path: Path, *, into_ram: bool) -> None:
    """Map the on-disk inverted lists at ``path`` into ``index`` (read with IO_FLAG_SKIP_IVF_DATA).

    The FAISS file names its lists file by the absolute path it had when written; the index folder may
    have moved since, so the name is set here (FAISS's IO_FLAG_ONDISK_SAME_DIR would do the same but
    prints to stdout, which is search output). A writer (``into_ram``) gets a copy in memory instead,
    so its next commit writes one self-contained FAISS file and the lists file is never changed.
    """
    import faiss

    ivf = faiss.extract_index_ivf(index)
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    if not isinstance(lists, faiss.OnDiskInvertedLists):
        raise IndexRefusedError(f"{path}: the manifest names a lists file, but the FAISS file has no on-disk "
                                "lists; rebuild the index")
    if not path.is_file():
        raise GenerationGone(f"{path}: missing; the index is incomplete, rebuild it")
    lists.filename = str(path)
    lists.read_only = True
    lists.do_mmap()
    if into_ram:
        ram = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
        for i in range(ivf.nlist):
            if lists.list_size(i):
                ram.add_entries(i, lists.list_size(i), lists.get_ids(i), lists.get_codes(i))
        ivf.replace_invlists(ram, True)
        ram.this.disown()


def lists_file_of(index: Any) -> str | None:
    """The file name of ``index``'s on-disk inverted lists, or None when its lists (if any) are in memory."""
    import faiss

    try:
        lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    except RuntimeError:
        return None
    return Path(lists.filename).name if isinstance(lists, faiss.OnDiskInvertedLists) else None


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


# A reader retries when the file of the generation it started on is deleted before it could read it
# (two commits landed meanwhile); each retry starts on the newest generation.
GENERATION_RETRIES = 20


def read_lexical(d: Path, committed: Manifest, *, verify: bool) -> Any:
    """The lexical part ``committed`` describes (None for an index without one), its BM25 file verified."""
    if committed.lexical is None:
        return None
    from koembed.lexical.part import LexicalPart

    name = committed.lexical.get("file")
    if name:
        entry = committed.files.get(name)
        if not (isinstance(entry, dict) and isinstance(entry.get("bytes"), int)):
            raise IndexRefusedError(f"{d / STORE}: the committed manifest names the lexical file {name} without its "
                                    "checksum; the index is corrupt, rebuild it")
        if verify:
            verify_file(d, name, entry)
    try:
        return LexicalPart.load(d, committed.lexical)
    except FileNotFoundError:
        raise GenerationGone(f"{d / str(name)}: missing; the index is incomplete, rebuild it") from None


def load_generation(d: Path, store: Any, *, verify: bool, mmap: bool | None) -> tuple[Manifest, Any, Any]:
    """The committed manifest, the FAISS index and the lexical part of one generation, as of one store snapshot.

    A read-only store first takes a fresh snapshot (and keeps it: the caller's later reads see the same
    generation); a writer's store is the latest commit already.
    """
    from koembed.index.spec import apply_search_defaults

    for attempt in range(GENERATION_RETRIES):
        if store.readonly:
            store.snapshot()
        committed = store.committed_manifest()
        name = committed.faiss_file
        entry = committed.files.get(name) if name is not None else None
        if not (isinstance(entry, dict) and isinstance(entry.get("bytes"), int)
                and isinstance(entry.get("crc32"), str)):
            raise IndexRefusedError(f"{d / STORE}: the committed manifest names no FAISS file with its checksum; "
                                    "the index is corrupt, rebuild it")
        try:
            if verify:
                verify_file(d, name, committed.files[name])
                if committed.lists_file:
                    verify_file(d, committed.lists_file, committed.files.get(committed.lists_file) or {})
            fi = read_faiss(d, committed, mmap=mmap)
            lexical = read_lexical(d, committed, verify=verify)
        except GenerationGone:
            if not store.readonly or attempt == GENERATION_RETRIES - 1:
                raise
            continue
        apply_search_defaults(fi, committed.search_defaults)
        return committed, fi, lexical
    raise AssertionError("unreachable")


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
