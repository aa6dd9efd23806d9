"""mboxrd quoting and entries (mailsync.core.mboxrd): reversible for any bytes."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mailsync.core import mboxrd

LINES = st.lists(
    st.sampled_from(
        [
            b"From x",
            b">From y",
            b">>From z",
            b"From",
            b"From:",
            b" From a",
            b"\x00",
            b"\r",
            b"",
            b"t",
        ]
    ),
    max_size=12,
)


@given(st.binary(max_size=300))
def test_unquote_inverts_quote_for_any_bytes(data: bytes) -> None:
    assert mboxrd.unquote(mboxrd.quote(data)) == data


@given(LINES, st.sampled_from([b"\n", b"\r\n"]))
def test_no_quoted_line_can_start_a_message(lines: list[bytes], end: bytes) -> None:
    data = end.join(lines) + end
    quoted = mboxrd.quote(data)
    assert not any(line.startswith(b"From ") for line in quoted.split(b"\n"))
    assert mboxrd.unquote(quoted) == data


def test_quote_adds_one_level_to_every_from_line() -> None:
    assert mboxrd.quote(b"From a\n>From b\n>>From c\nFrom\nX From d\n") == (
        b">From a\n>>From b\n>>>From c\nFrom\nX From d\n"
    )


def test_from_line_is_asctime_in_utc() -> None:
    when = datetime(2024, 2, 1, 10, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    assert mboxrd.from_line("a@b.org", when) == b"From a@b.org Thu Feb  1 09:00:05 2024\n"
    assert mboxrd.from_line("two words", None) == b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"


def test_envelope_sender_takes_the_address() -> None:
    assert mboxrd.envelope_sender('"Ann B" <ann@example.org>') == "ann@example.org"
    assert mboxrd.envelope_sender("undisclosed") == "MAILER-DAEMON"
    assert mboxrd.envelope_sender(None) == "MAILER-DAEMON"


def test_entry_is_exact_unless_the_message_lacks_a_final_line_end() -> None:
    ok = mboxrd.entry(b"a\r\nFrom b\r\n", "x@y", datetime(2020, 1, 1, tzinfo=UTC))
    assert ok.exact and b"".join(ok.chunks).endswith(b">From b\r\n\n")
    assert ok.size == len(b"".join(ok.chunks))
    short = mboxrd.entry(b"no end", "x@y", None)
    assert not short.exact and b"".join(short.chunks).endswith(b"no end\n\n")


@given(st.lists(st.binary(max_size=80).map(lambda b: b + b"\n"), min_size=1, max_size=5))
def test_python_mailbox_reads_the_entries_back(
    tmp_path_factory: object, bodies: list[bytes]
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "box.mbox"
        path.write_bytes(b"".join(b"".join(mboxrd.entry(b, "a@b", None).chunks) for b in bodies))
        box = mailbox.mbox(path, create=False)
        got = [mboxrd.unquote(box.get_bytes(k)) for k in box.iterkeys()]
        box.close()
    assert got == bodies
