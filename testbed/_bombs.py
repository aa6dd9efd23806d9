"""Decompression bombs for the fault server: tiny bodies that inflate to gigabytes of spaces.

Deflate cannot do better than about 1032:1 (a 258-byte match costs at least 2 bits), so a gzip
body for 1 GiB is about 1 MB; brotli and zstd reach far higher ratios (1 GiB -> ~1 KB / ~32 KB).

The gzip body is never compressed in full: one MiB of spaces is compressed once and ended with a
full flush, which byte-aligns the output and resets the history, so the same ~1 KB block can be
repeated once per MiB to form a valid single-member stream (clients that stop after the first
gzip member would otherwise see a small body). Only the CRC-32 needs a pass over the whole size.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import brotli
import zstandard

__all__ = ["FILL", "MIB", "GzipBomb", "brotli_bomb", "gzip_bomb", "zstd_bomb"]

MIB = 1 << 20
FILL = b" "  # spaces: valid (empty) HTML text, so a lenient parser does not stop early
_CRC_CHUNK = 16 * MIB
# 10-byte gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown (255)
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


@dataclass(frozen=True)
class GzipBomb:
    """A gzip body of ``mib`` MiB of spaces, produced as header + block x mib + tail."""

    mib: int
    block: bytes
    tail: bytes

    @property
    def compressed_size(self) -> int:
        return len(_GZIP_HEADER) + len(self.block) * self.mib + len(self.tail)

    @property
    def inflated_size(self) -> int:
        return self.mib * MIB

    def chunks(self, blocks_per_chunk: int = 64) -> Iterator[bytes]:
        """The body in pieces of ``blocks_per_chunk`` blocks (~66 KB), never all in memory."""
        yield _GZIP_HEADER
        left = self.mib
        while left > 0:
            n = min(blocks_per_chunk, left)
            yield self.block * n
            left -= n
        yield self.tail


@lru_cache(maxsize=4)
def gzip_bomb(mib: int = 1024) -> GzipBomb:
    """The gzip bomb for ``mib`` MiB (computed once per size: ~0.3 s per GiB, for the CRC)."""
    if mib < 1:
        raise ValueError("mib must be >= 1")
    one = FILL * MIB
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(one) + comp.flush(zlib.Z_FULL_FLUSH)
    # an empty final block closes the raw deflate stream after the repeated blocks
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = 0
    big = FILL * min(_CRC_CHUNK, mib * MIB)
    left = mib * MIB
    while left > 0:
        piece = big if left >= len(big) else big[:left]
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    tail = final + struct.pack("<II", crc, (mib * MIB) & 0xFFFFFFFF)
    return GzipBomb(mib=mib, block=block, tail=tail)


@lru_cache(maxsize=4)
def brotli_bomb(mib: int = 1024) -> bytes:
    """A brotli body of ``mib`` MiB of spaces (about 1 KB per GiB; ~0.8 s per GiB to make)."""
    comp = brotli.Compressor(quality=5, lgwin=24)
    one = FILL * MIB
    out = [comp.process(one) for _ in range(mib)]
    out.append(comp.finish())
    return b"".join(out)


@lru_cache(maxsize=4)
def zstd_bomb(mib: int = 1024) -> bytes:
    """A zstd body of ``mib`` MiB of spaces (about 32 KB per GiB; ~0.15 s per GiB to make)."""
    comp = zstandard.ZstdCompressor(level=1).compressobj()
    one = FILL * MIB
    out = [comp.compress(one) for _ in range(mib)]
    out.append(comp.flush())
    return b"".join(out)
