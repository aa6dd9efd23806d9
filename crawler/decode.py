"""Content-Encoding decoding with a hard output cap, so a decompression bomb costs nothing.

Every decoder runs incrementally and is asked for at most ``cap + 1 - produced`` bytes at a time,
so the decoded body never grows past the cap, whatever the input ratio (gzip reaches ~1000:1,
brotli and zstd far more). Stacked encodings (``Content-Encoding: gzip, br``) are undone last
first, each stage under the same cap.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

from foundation.errors import DecodeError

__all__ = ["SUPPORTED_ENCODINGS", "decode_body"]

# Output is produced in chunks of this size at most: bounds the transient allocation per step.
_CHUNK = 64 * 1024

Decoder = Callable[[bytes, int], bytes]


def _too_big(cap: int) -> DecodeError:
    return DecodeError(f"decoded body over {cap} bytes")


class _Sink:
    """Decoded chunks under a cap. A list, not a growing bytearray: resizing a buffer briefly
    holds old and new copies, which would double the peak exactly when a bomb hits the cap."""

    __slots__ = ("cap", "chunks", "size")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0

    def room(self) -> int:
        """How much more to ask a decoder for: one byte past the cap proves it is exceeded."""
        return min(_CHUNK, self.cap + 1 - self.size)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            raise _too_big(self.cap)
        if chunk:
            self.chunks.append(chunk)

    def result(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)


def _zlib(data: bytes, cap: int, wbits: int) -> bytes:
    """Inflate (zlib, raw deflate or gzip by ``wbits``), following gzip members back to back."""
    out = _Sink(cap)
    pending = data
    while True:
        d = zlib.decompressobj(wbits)
        buf = pending
        while True:
            chunk = d.decompress(buf, out.room())
            out.add(chunk)
            if d.eof:
                break
            buf = d.unconsumed_tail
            # No input left and no output either: the stream ended early.
            if not buf and not chunk:
                raise DecodeError("truncated compressed body")
        pending = d.unused_data
        # Only gzip may hold several members; trailing zero padding is common and harmless.
        if wbits < 16 or not pending.strip(b"\0"):
            return out.result()


def _gzip(data: bytes, cap: int) -> bytes:
    return _zlib(data, cap, 16 + zlib.MAX_WBITS)


def _deflate(data: bytes, cap: int) -> bytes:
    # "deflate" should be zlib-wrapped (RFC 9110), but many servers send raw deflate.
    if len(data) >= 2 and (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0:
        try:
            return _zlib(data, cap, zlib.MAX_WBITS)
        except zlib.error:
            pass  # raw deflate whose first bytes happen to look like a zlib header
    return _zlib(data, cap, -zlib.MAX_WBITS)


# brotli and zstandard are imported by the first body that needs them: most sites send neither,
# and the crawl coordinator, which imports this module, never decodes (~0.4 MiB of RSS, measured)


def _brotli(data: bytes, cap: int) -> bytes:
    import brotli

    try:
        d = brotli.Decompressor()
        out = _Sink(cap)
        out.add(d.process(data, output_buffer_limit=out.room()))
        while not d.is_finished():
            if d.can_accept_more_data():
                # All input given and consumed, yet the stream is not finished.
                raise DecodeError("truncated brotli body")
            out.add(d.process(b"", output_buffer_limit=out.room()))
        return out.result()
    except brotli.error as exc:
        raise DecodeError(f"corrupt br body: {exc}") from None


def _zstd(data: bytes, cap: int) -> bytes:
    import zstandard

    try:
        dctx = zstandard.ZstdDecompressor()
        # Pass 1 only counts: the bounded reader never holds more than one chunk, so a bomb
        # stops here. The reader cannot tell a truncated frame from a complete one, hence pass 2.
        size = 0
        with dctx.stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
            while chunk := reader.read(min(_CHUNK, cap + 1 - size)):
                size += len(chunk)
                if size > cap:
                    raise _too_big(cap)
        # Pass 2 decodes frame by frame (now known to fit the cap) and checks each one ends.
        out = _Sink(cap)
        pending = data
        while pending:
            obj = dctx.decompressobj()
            out.add(obj.decompress(pending))
            if not obj.eof:
                raise DecodeError("truncated zstd body")
            pending = obj.unused_data
        return out.result()
    except zstandard.ZstdError as exc:
        raise DecodeError(f"corrupt zstd body: {exc}") from None


def _identity(data: bytes, cap: int) -> bytes:
    if len(data) > cap:
        raise _too_big(cap)
    return data


_DECODERS: dict[str, Decoder] = {
    "identity": _identity,
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}
SUPPORTED_ENCODINGS = tuple(_DECODERS)


def decode_body(body: bytes, content_encoding: str | None, cap: int) -> bytes:
    """Undo ``content_encoding`` on ``body``; raise DecodeError if corrupt or over ``cap`` bytes."""
    if not content_encoding:
        return _identity(body, cap)
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    for coding in reversed([c for c in codings if c]):
        decoder = _DECODERS.get(coding)
        if decoder is None:
            raise DecodeError(f"unsupported content-encoding {coding!r}")
        if not body and coding != "identity":
            # An empty body (HEAD, 204, 304) carries no encoded stream.
            continue
        try:
            body = decoder(body, cap)
        except DecodeError:
            raise
        except zlib.error as exc:
            raise DecodeError(f"corrupt {coding} body: {exc}") from None
    return body
