"""Index fields from a message's header block: pure, picklable, never raises.

:func:`parse_headers` is the process-pool offload of mailsync (top-level, bytes in, a small frozen
dataclass out). It reads only the header block -- up to the first empty line, at most
``MAX_HEADER_BYTES`` -- with the stdlib parser (``policy=default``: RFC 2047 words decoded, dates
parsed). A broken message gives the fields that could be read plus a short ``error``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

__all__ = ["MAX_HEADER_BYTES", "HeaderInfo", "header_block", "parse_headers"]

MAX_HEADER_BYTES = 256 * 1024
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_FIELD_CAP = 2000  # characters kept per field: enough for any real address list in an index


@dataclass(frozen=True, slots=True)
class HeaderInfo:
    message_id: str | None
    subject: str | None
    from_: str | None
    to: str | None
    date: str | None  # ISO 8601, with the message's own offset when it gave one
    error: str | None = None


def header_block(raw: bytes) -> tuple[bytes, bool]:
    """The bytes up to (not including) the first empty line; False when that was not found in
    the first ``MAX_HEADER_BYTES`` (the block is then cut there)."""
    window = raw[:MAX_HEADER_BYTES]
    if window.startswith((b"\r\n", b"\n")):
        return b"", True  # no headers at all, body follows
    m = _BLANK_LINE.search(window)
    if m is None:
        return window, len(raw) <= MAX_HEADER_BYTES
    return window[: m.start()], True


def _clean(value: str) -> str:
    return " ".join(value.split())[:_FIELD_CAP]


def parse_headers(raw: bytes) -> HeaderInfo:
    """Message-ID, Subject, From, To and Date (ISO) of one message; never raises."""
    problems: list[str] = []
    try:
        block, complete = header_block(raw)
        if not complete:
            problems.append(f"header block longer than {MAX_HEADER_BYTES} bytes")
        msg = BytesHeaderParser(policy=default_policy).parsebytes(block + b"\r\n\r\n")
    except Exception as exc:  # the stdlib parser on hostile bytes: report, never raise
        return HeaderInfo(None, None, None, None, None, f"unreadable header: {exc!r}"[:300])
    fields: dict[str, str | None] = {}
    for name in ("Message-ID", "Subject", "From", "To"):
        try:
            value = msg.get(name)
            fields[name] = _clean(str(value)) if value is not None else None
        except Exception as exc:
            fields[name] = None
            problems.append(f"{name}: {exc!r}"[:200])
    date: str | None = None
    try:
        value = msg.get("Date")
        if value is not None:
            when = getattr(value, "datetime", None)
            if when is None:
                problems.append(f"Date: unparseable {str(value)[:60]!r}")
            else:
                date = when.isoformat()
    except Exception as exc:
        problems.append(f"Date: {exc!r}"[:200])
    return HeaderInfo(
        message_id=fields["Message-ID"],
        subject=fields["Subject"],
        from_=fields["From"],
        to=fields["To"],
        date=date,
        error="; ".join(problems) or None,
    )
