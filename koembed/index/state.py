"""The state an open index holds, declared once for the layers that share it.

:class:`~koembed.index.core.Index` stacks three layers, each using only what lies below it:
:class:`IndexState` (the attributes and what they answer), :class:`~koembed.index.commit.CommitProtocol`
(making changes durable), :class:`~koembed.index.writes.IndexWrites` (the changes), and ``Index`` itself
(opening, snapshots, reads). ``Index.__init__`` sets every attribute declared here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from koembed.errors import IndexRefusedError
from koembed.index.spec import IndexSpec

if TYPE_CHECKING:
    from koembed.index.ext_ids import ExtIds
    from koembed.index.lexical_part import LexicalPart
    from koembed.index.manifest import Manifest
    from koembed.index.store import DocStore


class IndexState:
    directory: Path
    manifest: Manifest  # of the generation this Index sees, plus a writer's uncommitted changes
    store: DocStore
    faiss: Any  # the FAISS index (ids = store row ids)
    lexical: LexicalPart | None  # None: an index without a lexical part
    writable: bool
    ext_ids: ExtIds
    _lock_fd: int | None  # the writer lock, held by a writable Index
    _dirty: bool  # changes that commit() has not yet made durable
    _tombstoning: bool  # the FAISS type cannot remove ids: removed rows are tombstones until compact()
    _tombstones_cache: np.ndarray | None

    # -- properties ----------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.manifest.dim)

    @property
    def count(self) -> int:
        return self.store.count()

    @property
    def spec(self) -> IndexSpec:
        return IndexSpec(self.manifest.spec, dict(self.manifest.search_defaults))

    @property
    def generation(self) -> int:
        return int(self.manifest.generation)

    @property
    def has_changes(self) -> bool:
        """Whether there are changes that :meth:`commit` has not yet made durable."""
        return self._dirty

    @property
    def is_trained(self) -> bool:
        return bool(self.faiss.is_trained)

    def tombstones(self) -> np.ndarray:
        if self._tombstones_cache is None:
            self._tombstones_cache = self.store.tombstones()
        return self._tombstones_cache

    # -- writes --------------------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if not self.writable:
            raise IndexRefusedError(f"{self.directory}: opened read-only; open with writable=True to change it")

