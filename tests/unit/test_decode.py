"""Content-Encoding decoding: every coding, stacks, corrupt data, and bombs stopped at the cap."""

from __future__ import annotations

import gzip
import os
import tracemalloc
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard

from crawler.decode import SUPPORTED_ENCODINGS, decode_body
from foundation.errors import DecodeError

PAYLOAD = b"<html><body>" + b"fetchlab " * 5000 + os.urandom(2000) + b"</body></html>"
MIB = 1 << 20


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "identity": lambda b: b,
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


def test_every_supported_encoding_has_a_case() -> None:
    assert set(SUPPORTED_ENCODINGS) == set(ENCODERS)


@pytest.mark.parametrize("coding", list(ENCODERS))
def test_each_encoding(coding: str) -> None:
    assert decode_body(ENCODERS[coding](PAYLOAD), coding, len(PAYLOAD)) == PAYLOAD


@pytest.mark.parametrize("header", [None, "", "identity", " , "])
def test_no_encoding(header: str | None) -> None:
    assert decode_body(PAYLOAD, header, len(PAYLOAD)) == PAYLOAD


def test_raw_deflate_accepted() -> None:
    # Servers often send raw deflate under "deflate"; both forms are read.
    assert decode_body(raw_deflate(PAYLOAD), "deflate", len(PAYLOAD)) == PAYLOAD


def test_case_and_spaces_in_header() -> None:
    assert decode_body(gzip.compress(PAYLOAD), " GZip ", len(PAYLOAD)) == PAYLOAD


@pytest.mark.parametrize(
    "codings", [["gzip", "br"], ["br", "gzip"], ["deflate", "zstd", "gzip"], ["gzip", "gzip"]]
)
def test_stacked_encodings(codings: list[str]) -> None:
    body = PAYLOAD
    for c in codings:  # applied in header order, so decoded in reverse
        body = ENCODERS[c](body)
    assert decode_body(body, ", ".join(codings), len(PAYLOAD)) == PAYLOAD


def test_gzip_members_and_padding() -> None:
    body = gzip.compress(b"first ") + gzip.compress(b"second") + b"\0\0\0"
    assert decode_body(body, "gzip", 100) == b"first second"


def test_zstd_multiple_frames() -> None:
    c = zstandard.ZstdCompressor()
    assert decode_body(c.compress(b"one ") + c.compress(b"two"), "zstd", 100) == b"one two"


def test_empty_body_with_encoding() -> None:
    assert decode_body(b"", "gzip", 10) == b""
    assert decode_body(b"", "br, zstd", 10) == b""


def test_exact_cap_is_fine_one_more_is_not() -> None:
    for coding, enc in ENCODERS.items():
        body = enc(PAYLOAD)
        assert decode_body(body, coding, len(PAYLOAD)) == PAYLOAD
        with pytest.raises(DecodeError, match=f"over {len(PAYLOAD) - 1} bytes"):
            decode_body(body, coding, len(PAYLOAD) - 1)


def test_unsupported_encoding() -> None:
    with pytest.raises(DecodeError, match="unsupported content-encoding 'compress'"):
        decode_body(b"x", "compress", 10)
    with pytest.raises(DecodeError, match="unsupported"):
        decode_body(gzip.compress(b"x"), "gzip, sdch", 10)


CORRUPT = [
    ("gzip", b"\x1f\x8b\x08\x00garbage-garbage"),
    ("gzip", b"not gzip at all"),
    ("gzip", gzip.compress(PAYLOAD)[:-20]),
    ("deflate", b"\x78\x9c\xff\xff\xff\xff"),
    ("deflate", zlib.compress(PAYLOAD)[:-10]),
    ("br", b"\xff\xff\xff\xff garbage"),
    ("br", brotli.compress(PAYLOAD)[:-10]),
    ("zstd", b"garbage garbage"),
    ("zstd", zstandard.ZstdCompressor().compress(PAYLOAD)[:-10]),
]


@pytest.mark.parametrize(("coding", "body"), CORRUPT)
def test_corrupt_data(coding: str, body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_body(body, coding, 10 * len(PAYLOAD))


def test_decode_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        decode_body(b"nope", "gzip", 10)


def _gzip_bomb(mib: int) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    block = bytes(MIB)
    return b"".join(c.compress(block) for _ in range(mib)) + c.flush()


def _brotli_bomb(mib: int) -> bytes:
    c = brotli.Compressor(quality=5)
    block = bytes(MIB)
    chunks: list[bytes] = [c.process(block) for _ in range(mib)]
    chunks.append(c.finish())
    return b"".join(chunks)


def _zstd_bomb(mib: int) -> bytes:
    c = zstandard.ZstdCompressor(level=3).compressobj()
    block = bytes(MIB)
    return b"".join(c.compress(block) for _ in range(mib)) + c.flush()


BOMB_MIB = 64
CAP = 2 * MIB


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {
        "gzip": _gzip_bomb(BOMB_MIB),
        "br": _brotli_bomb(BOMB_MIB),
        "zstd": _zstd_bomb(BOMB_MIB),
        "deflate": zlib.compress(bytes(BOMB_MIB * MIB // 4), 9),
        "br, gzip": gzip.compress(_brotli_bomb(BOMB_MIB)),
    }


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd", "deflate", "br, gzip"])
def test_bomb_stopped_at_cap_without_big_allocations(bombs: dict[str, bytes], coding: str) -> None:
    body = bombs[coding]
    assert len(body) < 2 * MIB  # a small body ...
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match=f"decoded body over {CAP} bytes"):
            decode_body(body, coding, CAP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # ... that would inflate to 16-64 MiB is stopped holding little more than the cap.
    assert peak < CAP + 256 * 1024, peak
