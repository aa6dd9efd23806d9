"""The IMAP responses the parser returns: small frozen dataclasses, one per shape.

``code`` is the whole text between ``[`` and ``]`` of a status response (``"UIDVALIDITY 123"``,
``"READ-ONLY"``); ``code_name`` is its first word upper-cased and ``code_args`` its arguments as
parsed values (``(123,)``; ``PERMANENTFLAGS`` gives ``(("\\Seen", "\\*"),)``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal, TypeAlias

from foundation.errors import ImapProtocolError

__all__ = [
    "Capability",
    "Continuation",
    "FetchResp",
    "ListResp",
    "Response",
    "StatusResp",
    "Tagged",
    "Untagged",
    "capabilities_in",
    "parse_internaldate",
]


def _code_name(code: str | None) -> str | None:
    return code.split(" ", 1)[0].upper() if code else None


@dataclass(frozen=True, slots=True)
class Tagged:
    """``tag OK|NO|BAD [code] text``: the end of one command."""

    tag: str
    status: Literal["OK", "NO", "BAD"]
    code: str | None
    code_args: tuple[object, ...]
    text: str

    @property
    def code_name(self) -> str | None:
        return _code_name(self.code)


@dataclass(frozen=True, slots=True)
class Continuation:
    """``+ text``: the server waits for a literal or an authentication step."""

    text: str


@dataclass(frozen=True, slots=True)
class Untagged:
    """Any ``*`` response without a dedicated class (OK/NO/BAD/BYE/PREAUTH, EXISTS, SEARCH...).

    Status kinds fill ``code``/``code_args``/``text``; data kinds fill ``values`` (and ``text``
    with the raw rest of the line, for logs); ``number`` is set for ``* n EXISTS`` and alike.
    """

    kind: str
    number: int | None
    code: str | None
    code_args: tuple[object, ...]
    text: str
    values: tuple[object, ...]

    @property
    def code_name(self) -> str | None:
        return _code_name(self.code)


@dataclass(frozen=True, slots=True)
class Capability:
    """``* CAPABILITY ...``: capability names, upper-cased."""

    names: frozenset[str]


@dataclass(frozen=True, slots=True)
class FetchResp:
    """``* seq FETCH (...)``. ``body`` is BODY[] / BODY.PEEK[] / RFC822 / BINARY[] as bytes, or
    the literal sink's object when the literal was spilled; ``other`` holds every other item
    under its upper-cased name (``"BODY[HEADER]"``, ``"ENVELOPE"``, ``"X-GM-LABELS"``...)."""

    seq: int
    uid: int | None
    flags: tuple[str, ...] | None
    size: int | None
    internaldate: str | None
    body: bytes | object | None
    modseq: int | None
    other: Mapping[str, object] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class ListResp:
    """``* LIST (flags) delimiter name``. ``name`` is decoded from modified UTF-7 (``"INBOX"``
    in any case becomes ``"INBOX"``); ``raw_name`` is the wire form to send back in EXAMINE.
    Well-known flags are spelled as in RFC 3501/6154 whatever case the server used."""

    flags: frozenset[str]
    delimiter: str | None
    name: str
    raw_name: bytes


@dataclass(frozen=True, slots=True)
class StatusResp:
    """``* STATUS name (MESSAGES n UIDNEXT n ...)``; item names upper-cased."""

    mailbox: str
    raw_name: bytes
    items: Mapping[str, int] = field(hash=False)


Response: TypeAlias = (
    Tagged | Continuation | Untagged | Capability | FetchResp | ListResp | StatusResp
)


def capabilities_in(resp: Response) -> frozenset[str] | None:
    """Capabilities announced by ``* CAPABILITY`` or an ``[CAPABILITY ...]`` response code."""
    if isinstance(resp, Capability):
        return resp.names
    if isinstance(resp, Tagged | Untagged) and resp.code_name == "CAPABILITY" and resp.code:
        return frozenset(w.upper() for w in resp.code.split()[1:])
    return None


_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
_INTERNALDATE = re.compile(
    r"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\s*"
)


def parse_internaldate(value: str) -> datetime:
    """``"17-Jul-1996 02:44:25 -0700"`` (day may be space-padded) -> tz-aware datetime."""
    m = _INTERNALDATE.fullmatch(value)
    month = _MONTHS.get(m.group(2).upper(), 0) if m else 0
    if m is None or not month:
        raise ImapProtocolError(f"bad INTERNALDATE: {value[:60]!r}")
    day, _, year, hh, mm, ss, sign, zh, zm = m.groups()
    offset = timedelta(hours=int(zh), minutes=int(zm))
    try:
        return datetime(
            int(year),
            month,
            int(day),
            int(hh),
            int(mm),
            int(ss),
            tzinfo=timezone(-offset if sign == "-" else offset),
        )
    except ValueError as exc:
        raise ImapProtocolError(f"bad INTERNALDATE: {value[:60]!r}") from exc
