"""Header parsing for the index: decoded fields, never an exception, header block only."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsync.core.headers import MAX_HEADER_BYTES, HeaderInfo, header_block, parse_headers

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
