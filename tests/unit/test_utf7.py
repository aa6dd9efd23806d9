"""Modified UTF-7 (RFC 3501 5.1.3): known names, round trips, strict and lenient decoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foundation import ImapProtocolError
from mailsync.core.utf7 import decode_mailbox_name, decode_mutf7, encode_mutf7

KNOWN = [
    ("INBOX", b"INBOX"),
    ("", b""),
    ("&", b"&-"),
    ("a&b", b"a&-b"),
    ("Entwürfe", b"Entw&APw-rfe"),
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 example
    ("Gesendete Objekte", b"Gesendete Objekte"),
    ("€uro", b"&IKw-uro"),
    ("Отправленные", b"&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
    ("😀", b"&2D3eAA-"),  # outside the BMP: a UTF-16 surrogate pair
    ("tab\there", b"tab&AAk-here"),
]


@pytest.mark.parametrize(("name", "wire"), KNOWN)
def test_known_names(name: str, wire: bytes) -> None:
    assert encode_mutf7(name) == wire
    assert decode_mutf7(wire) == name


@given(st.text())
def test_round_trip(name: str) -> None:
    try:
        wire = encode_mutf7(name)
    except UnicodeEncodeError:
        # lone surrogates cannot be written as UTF-16
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in name)
        return
    assert wire.isascii()
    assert all(0x20 <= b <= 0x7E for b in wire)
    assert decode_mutf7(wire) == name
    assert encode_mutf7(decode_mutf7(wire)) == wire


@pytest.mark.parametrize(
    "wire",
    [
        b"&",  # unterminated shift
        b"abc&AOk",  # unterminated shift
        b"&AGE-",  # shifted run holding printable ASCII ("a")
        b"&AOl-",  # non-zero pad bits
        b"&A-",  # one base64 digit cannot hold a byte
        b"&AOkA-",  # odd UTF-16 length
        b"&2D0-",  # lone high surrogate
        b"&A/k-",  # "/" is not in the modified alphabet
        b"caf\xc3\xa9",  # 8-bit
        b"a\x01b",  # control character
        b"&AOk=-",  # padding is not used
    ],
)
def test_invalid_raises(wire: bytes) -> None:
    with pytest.raises(ImapProtocolError):
        decode_mutf7(wire)


def test_lenient_fallback() -> None:
    assert decode_mailbox_name(b"Entw&APw-rfe") == "Entwürfe"
    assert decode_mailbox_name(b"caf\xc3\xa9") == "café"  # UTF8=ACCEPT servers
    assert decode_mailbox_name(b"&AGE-") == "&AGE-"
    assert decode_mailbox_name(b"bad\xff") == "bad\ufffd"


@given(st.binary(max_size=60))
def test_decode_never_raises_anything_else(wire: bytes) -> None:
    try:
        name = decode_mutf7(wire)
    except ImapProtocolError:
        return
    assert encode_mutf7(name) == wire or b"&" in wire  # adjacent shifted runs may re-merge
    assert isinstance(decode_mailbox_name(wire), str)
