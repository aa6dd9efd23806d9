"""mboxrd (RFC 4155 with reversible ``>From `` quoting): the bytes of one mailbox entry.

An entry is a ``From `` separator line, the message with every line that starts with zero or more
``>`` followed by ``From `` given one more ``>``, and an empty line. A reader takes away one ``>``
from every such line and the empty line before the next separator, and gets the message back
byte for byte -- NUL bytes, lone CR, bare LF and CRLF line ends included, since only LF counts as
a line end here (as in Python's :mod:`mailbox` and in mutt).

The one message mbox cannot carry exactly is one that does not end with a line end: the format
needs a LF before the empty line, so one is added, and a reader cannot tell it was not there.
:func:`entry` says so (``exact`` False) and the export counts such messages; the .eml export keeps
them exact.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["MboxEntry", "entry", "envelope_sender", "from_line", "quote", "unquote"]

# every line (start of data or after LF) that a reader could take for a separator, or that an
# earlier quoting made look like one: >*From
_QUOTE = re.compile(rb"^(>*From )", re.MULTILINE)
_UNQUOTE = re.compile(rb"^>(>*From )", re.MULTILINE)
_ADDR = re.compile(r"[^\s<>\"]+@[^\s<>\"]+")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
UNKNOWN_SENDER = "MAILER-DAEMON"


def quote(message: bytes) -> bytes:
    """``message`` with one more ``>`` before every ``>*From `` line."""
    return _QUOTE.sub(rb">\1", message)


def unquote(quoted: bytes) -> bytes:
    """The inverse of :func:`quote`."""
    return _UNQUOTE.sub(rb"\1", quoted)


def envelope_sender(from_header: str | None) -> str:
    """The address of a From header for the separator line (one word, ASCII), or
    ``MAILER-DAEMON`` when there is none usable."""
    if from_header:
        m = _ADDR.search(from_header)
        if m and m.group(0).isascii():
            return m.group(0)
    return UNKNOWN_SENDER


def from_line(sender: str, when: datetime | None) -> bytes:
    """``From sender Www Mmm dd hh:mm:ss yyyy`` + LF, the date in UTC (asctime form, RFC 4155);
    the epoch when the date is unknown."""
    t = (when or datetime(1970, 1, 1, tzinfo=UTC)).astimezone(UTC)
    stamp = (
        f"{_DAYS[t.weekday()]} {_MONTHS[t.month - 1]} {t.day:2d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} {t.year}"
    )
    word = sender if sender and not any(c.isspace() for c in sender) else UNKNOWN_SENDER
    return f"From {word} {stamp}\n".encode("ascii", "replace")


class MboxEntry:
    """One entry as chunks to write (no copy of the message when nothing needed quoting)."""

    __slots__ = ("chunks", "exact")

    def __init__(self, chunks: tuple[bytes, ...], exact: bool) -> None:
        self.chunks = chunks
        self.exact = exact  # False: a LF was added (the message did not end with one)

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.chunks)


def entry(message: bytes, sender: str, when: datetime | None) -> MboxEntry:
    """The separator line, the quoted message, the line end it may lack and the empty line."""
    body = quote(message) if b"From " in message else message
    exact = message.endswith(b"\n")
    tail = b"\n" if exact else b"\n\n"
    return MboxEntry((from_line(sender, when), body, tail), exact)
