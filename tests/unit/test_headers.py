"""Header parsing for the index: decoded fields, never an exception, header block only.

The fast ``parse_headers`` is proven against ``_parse_headers_stdlib`` (the stdlib parser with
``policy=default``, the reference): identical ``HeaderInfo`` on every message of a generated
corpus (all four malformed kinds included) and on hypothesis-built hostile header blocks.
"""

from __future__ import annotations

import pickle
import re
from collections import Counter
from email.header import Header

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsync.core.headers import (
    _ENCODED_NAME,
    _ENCODED_TEXT,
    _PLAIN_ADDRESS,
    _PLAIN_ID,
    MAX_HEADER_BYTES,
    HeaderInfo,
    _parse_headers_stdlib,
    header_block,
    parse_headers,
)
from testbed.corpus import generate_corpus
from testbed.mailgen import MALFORMED_KINDS

MESSAGE = (
    b"Return-Path: <jorg@example.org>\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"Subject: =?iso-8859-1?q?caf=E9?= and\r\n =?utf-8?b?8J+YgA==?= folded\r\n"
    b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\n"
    b'To: a@example.org, "B, Bee" <b@example.org>\r\n'
    b"Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
    b"\r\n"
    b"Subject: not a header, the body\r\n"
)


def test_decodes_fields() -> None:
    info = parse_headers(MESSAGE)
    assert info == HeaderInfo(
        message_id="<m1@example.org>",
        subject="café and 😀 folded",
        from_="Jörg <jorg@example.org>",
        to='a@example.org, "B, Bee" <b@example.org>',
        date="2003-07-01T10:52:37+02:00",
        error=None,
    )


def test_lf_only_and_missing_fields() -> None:
    info = parse_headers(b"Subject: plain\n\nFrom: body@x\n")
    assert info == HeaderInfo(None, "plain", None, None, None, None)


def _block_by_regex(raw: bytes) -> tuple[bytes, bool]:
    """header_block as it was written first: the window sliced, then ``\r?\n\r?\n``."""
    window = raw[:MAX_HEADER_BYTES]
    if window.startswith((b"\r\n", b"\n")):
        return b"", True
    m = re.search(rb"\r?\n\r?\n", window)
    if m is None:
        return window, len(raw) <= MAX_HEADER_BYTES
    return window[: m.start()], True


@given(st.lists(st.sampled_from([b"\r", b"\n", b"a", b":", b" "]), max_size=14))
def test_header_block_ends_where_the_first_blank_line_starts(parts: list[bytes]) -> None:
    raw = b"".join(parts)
    assert header_block(raw) == _block_by_regex(raw)


@pytest.mark.parametrize("sep", [b"\r\n\r\n", b"\n\n", b"\n\r\n", b"\r\n\n"])
@pytest.mark.parametrize("shift", range(-5, 4))
def test_header_block_at_the_size_limit(sep: bytes, shift: int) -> None:
    raw = b"x" * (MAX_HEADER_BYTES + shift) + sep + b"body"
    assert header_block(raw) == _block_by_regex(raw)


def test_only_header_block_is_read() -> None:
    assert header_block(MESSAGE)[0].endswith(b"+0200")
    assert header_block(b"\r\nbody") == (b"", True)
    assert header_block(b"A: b") == (b"A: b", True)
    head, complete = header_block(b"X: " + b"y" * (MAX_HEADER_BYTES + 10))
    assert (len(head), complete) == (MAX_HEADER_BYTES, False)


def test_bad_date_is_reported_not_raised() -> None:
    info = parse_headers(b"Date: the day after tomorrow\r\nSubject: s\r\n\r\n")
    assert info.subject == "s"
    assert info.date is None
    assert info.error is not None and "Date" in info.error


def test_huge_header_block_is_capped_and_reported() -> None:
    info = parse_headers(b"Subject: big\r\nX-Pad: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n\r\n")
    assert info.subject == "big"
    assert info.error is not None and "longer" in info.error


def test_8bit_and_broken_encoded_words() -> None:
    info = parse_headers(b"Subject: caf\xe9 =?utf-8?q?broken\r\nFrom: \xff\xfe <x@y>\r\n\r\n")
    assert info.subject is not None and info.subject.startswith("caf")
    assert info.from_ is not None


def test_picklable_for_the_process_pool() -> None:
    info = parse_headers(MESSAGE)
    assert pickle.loads(pickle.dumps(info)) == info
    assert pickle.loads(pickle.dumps(parse_headers)) is parse_headers


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_never_raises_on_random_bytes(raw: bytes) -> None:
    assert isinstance(parse_headers(raw), HeaderInfo)


header_lines = st.lists(
    st.sampled_from(
        [
            b"Subject: =?utf-8?b?invalid base64?=",
            b"Date: Mon, 32 Foo 99999 25:61:61 +9999",
            b"From: <<@>>, ,,, =?x-unknown?q?a?=",
            b"To: undisclosed-recipients:;",
            b"Message-ID: <a@b",
            b" folded continuation without header",
            b"NoColonHere",
            b"Subject: \x00\x01\x7f\xff",
            b"Date: ",
        ]
    ),
    max_size=8,
)


@settings(max_examples=200)
@given(header_lines)
def test_never_raises_on_hostile_headers(lines: list[bytes]) -> None:
    info = parse_headers(b"\r\n".join(lines) + b"\r\n\r\nbody")
    assert isinstance(info, HeaderInfo)


def test_same_as_stdlib_on_every_corpus_message() -> None:
    corpus = generate_corpus(messages=2000, seed=5, max_bytes=8_000_000)
    kinds = Counter(plan.kind for plan in corpus.plans)
    assert all(kinds[kind] > 0 for kind in MALFORMED_KINDS)
    differ = []
    errors = 0
    for i in range(len(corpus)):
        served = corpus.message(i).served
        new, old = parse_headers(served), _parse_headers_stdlib(served)
        errors += old.error is not None
        if new != old:
            differ.append((i, corpus.plans[i].kind, old, new))
    assert differ == []
    # the comparison saw real data: decoded non-ASCII names, dates, no stray errors
    sample = parse_headers(corpus.message(0).served)
    assert sample.message_id is not None and sample.date is not None
    assert errors == 0


# pieces of header blocks: plain forms (the fast path), forms only the stdlib renders, and
# forms that break the parser in every way the stdlib's feedparser distinguishes
_names = st.sampled_from(
    [b"Subject", b"SUBJECT", b"subject", b"From", b"from", b"To", b"tO", b"Message-ID",
     b"message-id", b"Date", b"DATE", b"Cc", b"X-Other", b"Subject2", b"From ", b""]
)  # fmt: skip
_values = st.sampled_from(
    [
        b"plain words here",
        b"  padded   words  ",
        b"",
        b" ",
        b"=?utf-8?b?SsO8cmdlbiBNw7xsbGVy?= <j@example.de>",
        b"=?iso-8859-1?q?caf=E9?= and =?utf-8?b?8J+YgA==?=",
        b"=?utf-8?b?invalid base64?=",
        b"=?x-unknown?q?a?= b",
        b"caf\xe9 \xff\xfe\x80",
        b"Alice Example <alice@example.org>",
        b"Alice<alice@example.org>",
        b"<alice@example.org>",
        b"alice@example.org",
        b"alice@example.org  ",
        b"Dave O'Brien <dave@example.ie>",
        b'"B, Bee" <b@example.org>, a@example.org',
        b'"Quoted Name" <q@example.org>',
        b"a@b, c@d",
        b"undisclosed-recipients:;",
        b"<<@>>, ,,, x",
        b"(comment) a@b (another)",
        b"a.b@c.d",
        b"a..b@c",
        b"@nolocal",
        b"<1.2.abc@fetchlab.test>",
        b"<1.2.abc@fetchlab.test> trailing",
        b"<missing-end@x",
        b"no-brackets@x",
        b"Tue, 1 Jul 2003 10:52:37 +0200",
        b"1 Jul 2003 10:52:37 -0000",
        b"Mon, 32 Foo 99999 25:61:61 +9999",
        b"Tue, 1 Jul 2003 10:52:37 +9999",
        b"the day after tomorrow",
        b"\x00\x01\x7f\x0b\x0c\x1c",
    ]
)
_ends = st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\n "])
_fold = st.sampled_from([b"", b"\r\n ", b"\r\n\t", b"\n  ", b"\r "])


@st.composite
def _header_blocks(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 9))
        if kind == 0:  # lines the feedparser treats specially
            out += draw(
                st.sampled_from(
                    [b" continuation", b"From someone Tue", b":no name", b"No colon", b"\xffx: y"]
                )
            )
        else:
            sep = draw(st.sampled_from([b": ", b":", b":\t", b" : "]))
            out += draw(_names) + sep + draw(_values) + draw(_fold) + draw(_values)
        out += draw(_ends)
    return out + draw(st.sampled_from([b"", b"\r\n", b"\n\n", b"\r\n\r\nFrom: body@x\r\n"]))


@settings(max_examples=1500, deadline=None)
@given(_header_blocks())
def test_same_as_stdlib_on_hostile_header_blocks(raw: bytes) -> None:
    assert parse_headers(raw) == _parse_headers_stdlib(raw)


def _encoded(text: str, cte: str, charset: str) -> str:
    return (
        Header(text, charset).encode()
        if cte == "b"
        else "=?"
        + charset
        + "?q?"
        + "".join(
            f"={b:02X}" if b > 126 or chr(b) in "=?_ \t" else chr(b) for b in text.encode(charset)
        )
        + "?="
    )


# a valid encoded display name, decoding to anything at all: quoting, spaces, controls, specials
_encoded_names = st.builds(
    lambda text, cte, charset, addr: f"{_encoded(text, cte, charset)} <{addr}>",
    st.text(st.characters(max_codepoint=0x2FF, exclude_categories=["Cs"]), max_size=12),
    st.sampled_from(["b", "q"]),
    st.sampled_from(["utf-8"]),
    st.sampled_from(["a@b.c", "j.m@example.de"]),
)

# a Subject of encoded words, as generators fold one: words of any text, any white space between
_encoded_subjects = st.builds(
    lambda words, gaps, lead, tail: (
        lead + "".join(w + g for w, g in zip(words[:-1], gaps, strict=False)) + words[-1] + tail
    ),
    st.lists(
        st.one_of(
            st.builds(
                _encoded,
                st.text(st.characters(max_codepoint=0x2FF, exclude_categories=["Cs"]), max_size=10),
                st.sampled_from(["b", "q"]),
                st.just("utf-8"),
            ),
            st.builds(
                _encoded,
                st.text(st.characters(max_codepoint=0xFF, exclude_categories=["Cs"]), max_size=10),
                st.sampled_from(["b", "q"]),
                st.just("iso-8859-1"),
            ),
        ).filter(lambda w: w.count("=?") == 1),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.sampled_from([" ", "\t", "  ", " \t "]), min_size=3, max_size=3),
    st.sampled_from(["", " ", "\t"]),
    st.sampled_from(["", " ", "  "]),
)

_printable = st.one_of(
    _encoded_subjects,
    st.from_regex(_ENCODED_TEXT, fullmatch=True).filter(str.isascii),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    # exactly the forms the fast path renders itself, with hypothesis' edge cases in them
    st.from_regex(_PLAIN_ADDRESS, fullmatch=True),
    st.from_regex(_PLAIN_ID, fullmatch=True),
    st.from_regex(_ENCODED_NAME, fullmatch=True).filter(str.isascii),
    _encoded_names,
    st.from_regex(r"[ \t]*[A-Za-z!#$%&'*+/=?^_`{|}~-]{1,8}( [a-z.]{1,8})*[ \t]*", fullmatch=True),
)


@settings(max_examples=800, deadline=None)
@given(st.sampled_from(["Subject", "From", "To", "Message-ID", "Date"]), _printable)
def test_same_as_stdlib_on_printable_values(name: str, value: str) -> None:
    # the fast path's own forms (atoms, <addr>, <id@host>) come from this alphabet
    raw = f"{name}: {value}\r\n\r\n".encode()
    assert parse_headers(raw) == _parse_headers_stdlib(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_same_as_stdlib_on_random_bytes(raw: bytes) -> None:
    assert parse_headers(raw) == _parse_headers_stdlib(raw)
