"""The commit protocol of an index: how a writer's changes become one durable generation, or none.

The steps, in order, are :data:`koembed.index.layout.COMMIT_STEPS` (the FAISS file, the lexical part's
BM25 file when documents changed, then ONE SQLite transaction naming both with their checksums: the
commit point; then ``manifest.json``; then the files of generation g-1 go).

``kill -9`` before the commit point leaves generation g intact (the WAL's uncommitted frames are
ignored; the new files are orphans, deleted on the next write). After it the store already describes
g+1 and its files are complete; the next writer rewrites ``manifest.json``. Either way the index opens
in a consistent state.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from koembed.atomic import atomic_path, atomic_write_text
from koembed.index.failures import writing
from koembed.index.files import file_checksum, now, remove_orphans
from koembed.index.generations import lists_file_of, read_faiss, read_lexical
from koembed.index.layout import CREATING, MANIFEST, STORE, faiss_file_name, lexical_file_name, lists_file_name
from koembed.index.spec import (
    apply_search_defaults,
)
from koembed.index.state import IndexState


class CommitProtocol(IndexState):
    """The commit protocol over the state of :class:`~koembed.index.state.IndexState` (see the module docstring)."""

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Uncommitted changes: any failure undoes them all, and a full disk or read-only file is one line."""
        with writing(self.directory, lambda: f"nothing was committed; the index is unchanged "
                                             f"(generation {self.generation})"):
            try:
                yield
            except BaseException:
                self._abort()
                raise

    def _abort(self) -> None:
        """Undo uncommitted changes: roll SQLite back and reload the last committed FAISS file."""
        self.store.rollback()
        self.manifest = self.store.committed_manifest()
        self.faiss = read_faiss(self.directory, self.manifest, mmap=False)
        apply_search_defaults(self.faiss, self.manifest.search_defaults)
        self.lexical = read_lexical(self.directory, self.manifest, verify=False)
        self._tombstones_cache = None
        self._dirty = False

    # -- commit protocol (see the module docstring) --------------------------------------------------
    def commit(self) -> None:
        """Make every change since the last commit durable; a no-op when nothing changed."""
        if not self._dirty:
            return
        self._require_writable()
        previous = self.manifest.faiss_file
        previous_lexical = (self.manifest.lexical or {}).get("file")
        previous_lists = self.manifest.lists_file
        gen = self.generation + 1
        name = faiss_file_name(gen)
        lexical_name = None
        with writing(self.directory, f"nothing was committed; the index is unchanged (generation {gen - 1})"):
            try:
                self._write_faiss(name)
                files = {name: file_checksum(self.directory / name)}
                lists = lists_file_of(self.faiss)  # on-disk IVF lists: adopted, then carried by later commits
                if lists:
                    files[lists] = (self.manifest.files[lists] if lists == previous_lists
                                    else file_checksum(self.directory / lists))
                if self.lexical is not None:  # its BM25 file, rewritten only when documents changed
                    lexical_name = self._write_lexical(gen) if self.lexical.dirty else previous_lexical
                    files[lexical_name] = (self.manifest.files[lexical_name] if lexical_name == previous_lexical
                                           else file_checksum(self.directory / lexical_name))
                m = self.manifest.copy(generation=gen, faiss_file=name, ntotal=int(self.faiss.ntotal),
                                       files=files, updated=now(), trained=bool(self.faiss.is_trained),
                                       lexical=None if self.lexical is None else dict(self.lexical.info),
                                       lists_file=lists)
                self.store.begin()
                m.count = self.store.count()
                m.tombstones = len(self.store.tombstones())
                self.store.set_state("manifest", m.to_dict())
                self._store_commit()
            except BaseException:
                if gen > 0:  # back to what the store says is committed (a create has nothing to go back to)
                    self._abort()
                if self.generation != gen:  # the new files belong to no commit
                    (self.directory / name).unlink(missing_ok=True)
                    if lexical_name and lexical_name != previous_lexical:
                        (self.directory / lexical_name).unlink(missing_ok=True)
                raise
        self.manifest = m
        self._dirty = False
        if self.lexical is not None:
            self.lexical.committed()
        with writing(self.directory, f"generation {gen} is committed, but {MANIFEST} still describes the one "
                                     "before it (the next write repairs it)"):
            self._write_manifest()
        # The previous generation's file stays until the next commit: a reader that took its snapshot just
        # before this commit may not have opened that file yet.
        keep = {name, previous or name} | {f for f in (lexical_name, previous_lexical, lists, previous_lists) if f}
        remove_orphans(self.directory, keep=keep)

    def _write_faiss(self, name: str) -> None:
        import faiss

        with atomic_path(self.directory / name) as tmp:
            faiss.write_index(self.faiss, str(tmp))

    def _write_lexical(self, generation: int) -> str:
        return self.lexical.write(self.store.conn, self.directory, generation)

    def _store_commit(self) -> None:
        self.store.commit()

    def _write_manifest(self) -> None:
        # No checksum of docs.sqlite: in WAL mode its bytes change whenever SQLite checkpoints, and the
        # store's integrity is SQLite's job (a damaged page is refused when read).
        self.manifest.files.pop(STORE, None)
        atomic_write_text(self.directory / MANIFEST,
                          json.dumps(self.manifest.to_dict(), ensure_ascii=False, indent=2) + "\n")

    def _remove_orphans(self) -> None:
        gen = self.generation
        lexical = {(self.manifest.lexical or {}).get("file"), lexical_file_name(max(gen - 1, 0))} - {None}
        lists = {self.manifest.lists_file, lists_file_name(gen), lists_file_name(max(gen - 1, 0))} - {None}
        remove_orphans(self.directory, keep={faiss_file_name(gen), faiss_file_name(max(gen - 1, 0))} | lexical | lists)
        (self.directory / CREATING).unlink(missing_ok=True)  # a create killed after its manifest was written
