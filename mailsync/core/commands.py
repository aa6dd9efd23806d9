"""IMAP command builders: bytes WITHOUT the tag and WITHOUT the final CRLF.

Plain builders return ``bytes``; the transport sends ``tag + b" " + cmd + b"\\r\\n"``.

Builders that carry user strings (LOGIN, STATUS, EXAMINE) return ``Parts``, a tuple of byte
strings: the transport sends ``tag SP parts[0] CRLF`` and, for every later part, waits for a ``+``
continuation and sends ``part CRLF``. A string that cannot be a quoted string (CR, LF, NUL, 8-bit
or very long) goes as a literal; with ``literal_plus=True`` (server announced ``LITERAL+`` or
``LITERAL-``) the non-synchronising ``{n+}`` form is used and the result is always ONE part.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "Parts",
    "astring",
    "authenticate_plain",
    "capability",
    "chunk_uids",
    "compress_deflate",
    "enable_condstore",
    "examine",
    "idle_done",
    "list_all",
    "list_status",
    "login",
    "logout",
    "noop",
    "plain_response",
    "quote",
    "select",
    "sequence_set",
    "starttls",
    "status",
    "uid_fetch_bodies",
    "uid_fetch_meta",
]

Parts = tuple[bytes, ...]

# RFC 3501 ATOM-CHAR: any CHAR except atom-specials; "]" is allowed in ASTRING-CHAR.
_ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
_QUOTABLE = re.compile(rb"[^\x00\r\n\x80-\xff]*")
_MAX_QUOTED = 1024  # longer strings go as literals: some servers cap quoted-string length


def _b(s: str | bytes) -> bytes:
    return s.encode("utf-8") if isinstance(s, str) else s


class _Lit:
    """A string that must travel as a literal."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def quote(s: str | bytes) -> bytes:
    """``"..."`` with ``\\`` and ``"`` escaped; raises ValueError when only a literal can carry it
    (CR, LF, NUL, 8-bit bytes, longer than 1 KB) -- use :func:`astring` via a builder then."""
    raw = _b(s)
    if len(raw) > _MAX_QUOTED or not _QUOTABLE.fullmatch(raw):
        raise ValueError("needs a literal")
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _astring(s: str | bytes) -> bytes | _Lit:
    raw = _b(s)
    if _ATOM.fullmatch(raw):
        return raw
    try:
        return quote(raw)
    except ValueError:
        return _Lit(raw)


def astring(s: str | bytes, *, literal_plus: bool = False) -> Parts:
    """An astring as parts: a bare atom, a quoted string, or a literal (``{n}`` splits parts)."""
    return _join([_astring(s)], literal_plus)


def _join(items: Sequence[bytes | _Lit], literal_plus: bool) -> Parts:
    parts: list[bytes] = []
    cur: list[bytes] = []
    for i, item in enumerate(items):
        if i:
            cur.append(b" ")
        if isinstance(item, _Lit):
            n = len(item.data)
            cur.append(b"{%d+}" % n if literal_plus else b"{%d}" % n)
            if literal_plus:
                cur.append(b"\r\n")
            else:
                parts.append(b"".join(cur))
                cur = []
            cur.append(item.data)
        else:
            cur.append(item)
    parts.append(b"".join(cur))
    return tuple(parts)


def sequence_set(uids: Iterable[int]) -> str:
    """Sorted, de-duplicated, compressed: ``[1, 2, 3, 5, 7, 8]`` -> ``"1:3,5,7:8"``."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("empty sequence set")
    if ordered[0] < 1:
        raise ValueError("UIDs start at 1")
    out: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid != prev + 1:
            out.append(str(start) if start == prev else f"{start}:{prev}")
            start = uid
        prev = uid
    out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out)


def chunk_uids(
    uids: Sequence[int],
    max_count: int,
    sizes: Mapping[int, int] | None = None,
    max_bytes: int | None = None,
) -> list[list[int]]:
    """Split ``uids`` (order kept) into batches of at most ``max_count`` UIDs and, when sizes are
    known, at most ``max_bytes`` bytes; a message larger than ``max_bytes`` travels alone."""
    if max_count < 1:
        raise ValueError("max_count must be >= 1")
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_bytes = 0
    for uid in uids:
        size = sizes.get(uid, 0) if sizes is not None else 0
        over_bytes = max_bytes is not None and cur and cur_bytes + size > max_bytes
        if len(cur) >= max_count or over_bytes:
            batches.append(cur)
            cur, cur_bytes = [], 0
        cur.append(uid)
        cur_bytes += size
    if cur:
        batches.append(cur)
    return batches


def _set_arg(uids: Iterable[int] | str) -> bytes:
    return (uids if isinstance(uids, str) else sequence_set(uids)).encode("ascii")


def capability() -> bytes:
    return b"CAPABILITY"


def noop() -> bytes:
    return b"NOOP"


def logout() -> bytes:
    return b"LOGOUT"


def starttls() -> bytes:
    return b"STARTTLS"


def enable_condstore() -> bytes:
    return b"ENABLE CONDSTORE"


def compress_deflate() -> bytes:
    return b"COMPRESS DEFLATE"


def idle_done() -> bytes:
    """The line that ends IDLE (sent without a tag)."""
    return b"DONE"


def list_all() -> bytes:
    return b'LIST "" "*"'


def list_status(*, condstore: bool = False) -> bytes:
    """Every folder with its STATUS in one command (LIST-STATUS, RFC 5819)."""
    return list_all() + b" RETURN (STATUS " + _status_items(condstore) + b")"


def login(user: str, password: str, *, literal_plus: bool = False) -> Parts:
    """``LOGIN user password``; odd passwords (quotes, 8-bit, CR/LF) go as literals."""
    return _join([b"LOGIN", _astring(user), _astring(password)], literal_plus)


def plain_response(user: str, password: str, authzid: str = "") -> bytes:
    """Base64 of the SASL PLAIN message ``authzid NUL user NUL password`` (RFC 4616)."""
    msg = b"\0".join((authzid.encode(), user.encode(), password.encode()))
    return base64.b64encode(msg)


def authenticate_plain(user: str, password: str, *, initial_response: bool = True) -> bytes:
    """``AUTHENTICATE PLAIN <b64>`` (SASL-IR, RFC 4959). Without SASL-IR pass
    ``initial_response=False``, wait for ``+`` and send :func:`plain_response` as a line."""
    if not initial_response:
        return b"AUTHENTICATE PLAIN"
    return b"AUTHENTICATE PLAIN " + plain_response(user, password)


def _mailbox(raw_name: bytes | str) -> bytes | _Lit:
    """Mailbox names are sent as received in LIST (``raw_name``); str is taken as UTF-8."""
    raw = _b(raw_name)
    if raw.upper() == b"INBOX":
        return b"INBOX"
    return _astring(raw)


def _status_items(condstore: bool) -> bytes:
    if condstore:
        return b"(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"
    return b"(MESSAGES UIDNEXT UIDVALIDITY)"


def status(raw_name: bytes | str, *, condstore: bool = False, literal_plus: bool = False) -> Parts:
    return _join([b"STATUS", _mailbox(raw_name), _status_items(condstore)], literal_plus)


def examine(raw_name: bytes | str, *, condstore: bool = False, literal_plus: bool = False) -> Parts:
    """Read-only open (RFC 3501 6.3.2); ``condstore`` adds ``(CONDSTORE)`` (RFC 7162)."""
    items: list[bytes | _Lit] = [b"EXAMINE", _mailbox(raw_name)]
    if condstore:
        items.append(b"(CONDSTORE)")
    return _join(items, literal_plus)


def select(raw_name: bytes | str, *, condstore: bool = False, literal_plus: bool = False) -> Parts:
    items: list[bytes | _Lit] = [b"SELECT", _mailbox(raw_name)]
    if condstore:
        items.append(b"(CONDSTORE)")
    return _join(items, literal_plus)


def uid_fetch_meta(
    uids: Iterable[int] | str, *, modseq: bool = False, changedsince: int | None = None
) -> bytes:
    """``UID FETCH set (UID RFC822.SIZE FLAGS INTERNALDATE [MODSEQ]) [(CHANGEDSINCE n)]``;
    ``uids`` may be a ready set such as ``"1:*"``."""
    items = (
        b"(UID RFC822.SIZE FLAGS INTERNALDATE MODSEQ)"
        if modseq or changedsince
        else (b"(UID RFC822.SIZE FLAGS INTERNALDATE)")
    )
    cmd = b"UID FETCH " + _set_arg(uids) + b" " + items
    if changedsince is not None:
        cmd += b" (CHANGEDSINCE %d)" % changedsince
    return cmd


def uid_fetch_bodies(uids: Iterable[int] | str) -> bytes:
    """``UID FETCH set (UID BODY.PEEK[] FLAGS INTERNALDATE)``: PEEK keeps \\Seen untouched."""
    return b"UID FETCH " + _set_arg(uids) + b" (UID BODY.PEEK[] FLAGS INTERNALDATE)"
