"""One generation of an index on disk: its FAISS file (and on-disk lists) and its lexical part, read and verified.

A reader takes one store snapshot and reads the files the manifest committed in it names; a file
deleted meanwhile by two later commits (:class:`~koembed.index.files.GenerationGone`) makes it retry
on the newest generation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from koembed.errors import IndexRefusedError
from koembed.index.files import GenerationGone, verify_file
from koembed.index.layout import STORE
from koembed.index.lexical_part import LexicalPart
from koembed.index.manifest import Manifest

# Read-only opens memory-map FAISS files at least this big instead of reading them into RAM.
MMAP_MIN_BYTES = 1 << 30


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


# A reader retries when the file of the generation it started on is deleted before it could read it
# (two commits landed meanwhile); each retry starts on the newest generation.
GENERATION_RETRIES = 20


def read_lexical(d: Path, committed: Manifest, *, verify: bool) -> Any:
    """The lexical part ``committed`` describes (None for an index without one), its BM25 file verified."""
    if committed.lexical is None:
        return None
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


