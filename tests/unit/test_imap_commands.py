"""IMAP command builders: exact bytes, quoting and literal decisions, UID sets and batches."""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsync.core import commands as c
from mailsync.core.lexer import Framer, tokenize
from mailsync.core.parser import ResponseParser


def test_simple_commands() -> None:
    assert c.capability() == b"CAPABILITY"
    assert c.noop() == b"NOOP"
    assert c.logout() == b"LOGOUT"
    assert c.starttls() == b"STARTTLS"
    assert c.enable_condstore() == b"ENABLE CONDSTORE"
    assert c.compress_deflate() == b"COMPRESS DEFLATE"
    assert c.list_all() == b'LIST "" "*"'
    assert c.idle_done() == b"DONE"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", b'"plain"'),
        ("", b'""'),
        ('say "hi"', b'"say \\"hi\\""'),
        ("back\\slash", b'"back\\\\slash"'),
        (b"Entw&APw-rfe", b'"Entw&APw-rfe"'),
    ],
)
def test_quote(value: str | bytes, expected: bytes) -> None:
    assert c.quote(value) == expected


@pytest.mark.parametrize("value", ["two\r\nlines", "nul\0", "caf\u00e9", "x" * 1025])
def test_quote_refuses_what_needs_a_literal(value: str) -> None:
    with pytest.raises(ValueError):
        c.quote(value)


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("bob", (b"bob",)),
        ("bob smith", (b'"bob smith"',)),
        ("a(b", (b'"a(b"',)),
        ("50%", (b'"50%"',)),
        ("", (b'""',)),
        ("p\u00e4ss", (b"{5}", b"p\xc3\xa4ss")),
    ],
)
def test_astring(value: str, parts: tuple[bytes, ...]) -> None:
    assert c.astring(value) == parts


def test_login_variants() -> None:
    assert c.login("alice", "secret") == (b"LOGIN alice secret",)
    assert c.login("alice", 'pa"ss word') == (b'LOGIN alice "pa\\"ss word"',)
    # a synchronising literal: the transport waits for "+" between the parts
    assert c.login("alice", "p\u00e4\r\nss") == (b"LOGIN alice {7}", b"p\xc3\xa4\r\nss")
    assert c.login("al ice", "p\u00e4\r\nss", literal_plus=True) == (
        b'LOGIN "al ice" {7+}\r\np\xc3\xa4\r\nss',
    )
    assert c.login("\u00e9", "\u00e8") == (b"LOGIN {2}", b"\xc3\xa9 {2}", b"\xc3\xa8")


def test_login_literal_parts_frame_like_a_server_would_read_them() -> None:
    """Parts joined as the transport sends them (part CRLF ...) frame as one message with our own
    framer (given an untagged prefix: it reads server responses, where a tagged line is text)."""
    parts = c.login("\u00e9 x", "p\u00e4\r\n}ss{3}")
    assert len(parts) == 3
    wire = b"* " + b"\r\n".join(parts) + b"\r\n"
    (framed,) = Framer().feed(wire)
    assert tokenize(framed, 2) == ("LOGIN", "\u00e9 x".encode(), "p\u00e4\r\n}ss{3}".encode())


def test_authenticate_plain() -> None:
    cmd = c.authenticate_plain("alice", "secret")
    assert cmd == b"AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA=="
    assert base64.b64decode(cmd.split()[-1]) == b"\0alice\0secret"
    assert c.authenticate_plain("alice", "secret", initial_response=False) == (
        b"AUTHENTICATE PLAIN"
    )
    assert c.plain_response("u", "p", authzid="admin") == base64.b64encode(b"admin\0u\0p")


def test_mailbox_commands() -> None:
    assert c.status(b"INBOX") == (b"STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)",)
    assert c.status(b"inbox", condstore=True) == (
        b"STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)",
    )
    assert c.examine(b"Entw&APw-rfe") == (b"EXAMINE Entw&APw-rfe",)
    assert c.examine(b"Sent Items", condstore=True) == (b'EXAMINE "Sent Items" (CONDSTORE)',)
    assert c.examine(b'quote"back\\slash') == (b'EXAMINE "quote\\"back\\\\slash"',)
    assert c.examine(b"caf\xc3\xa9", literal_plus=True) == (b"EXAMINE {5+}\r\ncaf\xc3\xa9",)
    assert c.select("a/b") == (b"SELECT a/b",)


def test_fetch_commands() -> None:
    assert c.uid_fetch_meta([3, 1, 2, 7]) == (
        b"UID FETCH 1:3,7 (UID RFC822.SIZE FLAGS INTERNALDATE)"
    )
    assert c.uid_fetch_meta("1:*", modseq=True) == (
        b"UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE MODSEQ)"
    )
    assert c.uid_fetch_meta([5], changedsince=715194045007) == (
        b"UID FETCH 5 (UID RFC822.SIZE FLAGS INTERNALDATE MODSEQ) (CHANGEDSINCE 715194045007)"
    )
    assert c.uid_fetch_bodies((4, 5, 6, 9)) == (
        b"UID FETCH 4:6,9 (UID BODY.PEEK[] FLAGS INTERNALDATE)"
    )


@pytest.mark.parametrize(
    ("uids", "expected"),
    [
        ([1], "1"),
        ([1, 2, 3, 5, 7, 8, 9, 12], "1:3,5,7:9,12"),
        ([9, 1, 2, 3, 3, 2], "1:3,9"),
        ([4294967295, 4294967294], "4294967294:4294967295"),
    ],
)
def test_sequence_set(uids: list[int], expected: str) -> None:
    assert c.sequence_set(uids) == expected


@pytest.mark.parametrize("uids", [[], [0], [-3, 2]])
def test_sequence_set_rejects(uids: list[int]) -> None:
    with pytest.raises(ValueError):
        c.sequence_set(uids)


def _expand(seq: str) -> set[int]:
    out: set[int] = set()
    for piece in seq.split(","):
        lo, _, hi = piece.partition(":")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


@given(st.sets(st.integers(1, 5000), min_size=1))
def test_sequence_set_round_trip(uids: set[int]) -> None:
    seq = c.sequence_set(uids)
    assert _expand(seq) == uids
    assert seq.count(",") + 1 <= len(uids)


def test_chunk_uids_by_count_and_bytes() -> None:
    assert c.chunk_uids([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    sizes = {1: 10, 2: 100, 3: 5, 4: 5, 5: 5}
    assert c.chunk_uids([1, 2, 3, 4, 5], 10, sizes, 50) == [[1], [2], [3, 4, 5]]
    assert c.chunk_uids([], 3) == []
    with pytest.raises(ValueError):
        c.chunk_uids([1], 0)


@given(
    st.lists(st.integers(1, 10_000), unique=True, max_size=200),
    st.integers(1, 50),
    st.integers(1, 5000),
    st.randoms(use_true_random=False),
)
def test_chunk_uids_bounds(uids: list[int], count: int, max_bytes: int, rnd: random.Random) -> None:
    sizes = {u: rnd.randint(0, 3000) for u in uids}
    batches = c.chunk_uids(uids, count, sizes, max_bytes)
    assert [u for b in batches for u in b] == uids
    for b in batches:
        assert 1 <= len(b) <= count
        assert len(b) == 1 or sum(sizes[u] for u in b) <= max_bytes


def test_commands_are_what_our_parser_would_accept_back() -> None:
    """A round trip through our own tokenizer: the quoted form decodes to the original."""
    for name in ['say "hi"', "a\\b", "Sent Items", "&-amp"]:
        (cmd,) = c.examine(name.encode())
        parser = ResponseParser()
        (resp,) = parser.feed(b'* LIST () "/" ' + cmd.split(b" ", 1)[1] + b"\r\n")
        assert getattr(resp, "raw_name", None) == name.encode()
