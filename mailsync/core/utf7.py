"""Modified UTF-7 for IMAP mailbox names (RFC 3501 section 5.1.3).

Printable ASCII stands for itself except ``&``, written ``&-``; every other run of characters is
``&`` + base64 of its UTF-16BE form (``,`` instead of ``/``, no padding) + ``-``.

``decode_mutf7`` is strict: anything RFC 3501 forbids (8-bit bytes, an unterminated shift, bad
base64, non-zero pad bits, a shifted run that holds printable ASCII, a lone surrogate) raises
:class:`~foundation.ImapProtocolError`; strictness keeps ``encode(decode(x)) == x``, so two
different wire names never decode to the same text. ``decode_mailbox_name`` is the lenient form
the parser uses for LIST/STATUS: it falls back to UTF-8 (``errors="replace"``) for servers that
send raw UTF-8 (``UTF8=ACCEPT``) or sloppy names, so one odd folder never stops a backup.
"""

from __future__ import annotations

import base64
import binascii
import re

from foundation.errors import ImapProtocolError

__all__ = ["decode_mailbox_name", "decode_mutf7", "encode_mutf7"]

# One run of characters that must be shifted: anything outside printable ASCII.
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")
_SHIFTED = re.compile(rb"&([^-]*)-")
_B64_ALPHABET = re.compile(rb"[A-Za-z0-9+,]*")


def _encode_run(run: str) -> bytes:
    raw = base64.b64encode(run.encode("utf-16-be"), altchars=b"+,")
    return b"&" + raw.rstrip(b"=") + b"-"


def encode_mutf7(name: str) -> bytes:
    """Encode a Unicode mailbox name to its modified UTF-7 wire form."""
    out: list[bytes] = []
    pos = 0
    for m in _UNPRINTABLE.finditer(name):
        out.append(name[pos : m.start()].replace("&", "&-").encode("ascii"))
        out.append(_encode_run(m.group()))
        pos = m.end()
    out.append(name[pos:].replace("&", "&-").encode("ascii"))
    return b"".join(out)


def _bad(raw: bytes, why: str) -> ImapProtocolError:
    return ImapProtocolError(f"invalid modified UTF-7 mailbox name ({why}): {raw[:80]!r}")


def _decode_run(raw: bytes, b64: bytes) -> str:
    if not b64:
        return "&"
    if not _B64_ALPHABET.fullmatch(b64) or len(b64) % 4 == 1:
        raise _bad(raw, "bad base64")
    padded = b64 + b"=" * (-len(b64) % 4)
    try:
        data = base64.b64decode(padded, altchars=b"+,", validate=True)
    except binascii.Error as exc:
        raise _bad(raw, "bad base64") from exc
    # Unused low bits of the last base64 digit must be zero (RFC 2152 via RFC 3501).
    if base64.b64encode(data, altchars=b"+,").rstrip(b"=") != b64:
        raise _bad(raw, "non-zero pad bits")
    if len(data) % 2:
        raise _bad(raw, "odd UTF-16 length")
    try:
        text = data.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise _bad(raw, "lone surrogate") from exc
    if any(0x20 <= ord(c) <= 0x7E for c in text):
        raise _bad(raw, "printable ASCII inside a shifted run")
    return text


def decode_mutf7(raw: bytes) -> str:
    """Decode a modified UTF-7 wire name; invalid input raises ImapProtocolError."""
    if not raw.isascii():
        raise _bad(raw, "8-bit byte")
    out: list[str] = []
    pos = 0
    while True:
        amp = raw.find(b"&", pos)
        plain = raw[pos:] if amp < 0 else raw[pos:amp]
        if any(not 0x20 <= b <= 0x7E for b in plain):
            raise _bad(raw, "control character")
        out.append(plain.decode("ascii"))
        if amp < 0:
            return "".join(out)
        m = _SHIFTED.match(raw, amp)
        if m is None:
            raise _bad(raw, "unterminated '&' shift")
        out.append(_decode_run(raw, m.group(1)))
        pos = m.end()


def decode_mailbox_name(raw: bytes) -> str:
    """Lenient decode: modified UTF-7 when valid, else UTF-8 with replacement characters."""
    try:
        return decode_mutf7(raw)
    except ImapProtocolError:
        return raw.decode("utf-8", "replace")
