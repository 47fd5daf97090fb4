"""The layout of an index directory and its commit protocol: the one place that names its files.

Layout::

    manifest.json                  format, model (name, fingerprint, backend, prompts), dim, metric, spec,
                                   counts, the lexical part's entry, file checksums (a copy for people and
                                   tools: koembed reads the one committed in the store)
    docs.sqlite                    documents (string id <-> int64 row id, text, metadata), the lexical part's
                                   token tables, and the committed manifest
    docs.sqlite-wal, -shm          SQLite's write-ahead log and its index (WAL mode)
    index.000042.faiss             the FAISS index of generation 42 (ids = row ids)
    index.000042.ivfdata           its IVF inverted lists, for an index merged on disk (koembed.scale);
                                   carried unchanged by later commits until a writer rewrites the lists
    lexical.000042.safetensors     the BM25 matrix of the lexical part (koembed.index.lexical_part)
    .lock                          the writer lock (flock; readers never take it)
    .koembed-creating              present while Index.create fills the folder
    .NAME.PID.RANDOM.tmp           a file being written atomically (koembed.atomic)

A commit (generation g -> g+1) takes the steps of :data:`COMMIT_STEPS`, in order
(:mod:`koembed.index.commit` runs them; tests/test_index_failures.py kills a writer at each).
"""

from __future__ import annotations

import re

MANIFEST = "manifest.json"
STORE = "docs.sqlite"
LOCK = ".lock"
# Present while Index.create fills a folder: proof that the files beside it are an unfinished koembed index.
CREATING = ".koembed-creating"
FAISS_FILE = re.compile(r"index\.(\d{6,})\.faiss")
# The BM25 matrix of the lexical part, written by the generation in its name.
LEXICAL_FILE = re.compile(r"lexical\.(\d{6,})\.safetensors")
# The inverted lists of an IVF index merged on disk (koembed.scale), named for the generation that made them.
LISTS_FILE = re.compile(r"index\.(\d{6,})\.ivfdata")
# The temporary files koembed.atomic makes for the manifest, FAISS and BM25 files: .NAME.PID.RANDOM.tmp
TEMP_FILE = re.compile(r"\.(manifest\.json|index\.\d{6,}\.faiss|lexical\.\d{6,}\.safetensors)"
                       r"\.(\d+)\.[A-Za-z0-9_]+\.tmp")
# SQLite's own files beside the store (WAL mode; -journal from indexes written before it).
STORE_SIDECARS = (STORE + "-wal", STORE + "-shm", STORE + "-journal")

# The commit protocol, generation g -> g+1. A kill before step 3 leaves generation g intact (the new files
# are orphans, deleted by the next writer); after it the store describes g+1, whose files are complete,
# and the next writer finishes step 4.
COMMIT_STEPS = (
    "1. write the FAISS index to index.{g+1}.faiss (temp file, fsync, rename)",
    "2. if documents changed, write the lexical part's BM25 matrix to lexical.{g+1}.safetensors the same way "
    "(else the entry keeps generation g's file)",
    "3. commit the document changes, their tokens and the new manifest (naming both files and their checksums) "
    "in ONE SQLite transaction: the commit point",
    "4. rewrite manifest.json atomically",
    "5. delete the files of generation g-1; g's stay one more commit, for readers that took their snapshot "
    "just before this commit and have not opened them yet",
)


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
