"""The incremental IMAP response parser: ``feed(bytes) -> list[Response]``.

Framing and tokens come from :mod:`mailsync.core.lexer`; this module reads the first words of each
response and builds the dataclasses of :mod:`mailsync.core.responses`. It does no I/O: large
literals go to the ``literal_factory`` the transport supplies.

After an :class:`~foundation.ImapProtocolError` the stream position is unknown, so the parser stays
broken (every later ``feed`` raises the same error) and the connection must be dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Literal

from foundation.errors import ImapProtocolError
from mailsync.core.lexer import (
    DEFAULT_MAX_LINE,
    DEFAULT_SPILL_THRESHOLD,
    Framer,
    LiteralSink,
    RawResponse,
    protocol_error,
    tokenize,
)
from mailsync.core.responses import (
    Capability,
    Continuation,
    FetchResp,
    ListResp,
    Response,
    StatusResp,
    Tagged,
    Untagged,
    capabilities_in,
    parse_internaldate,
)
from mailsync.core.utf7 import decode_mailbox_name

__all__ = [
    "Capability",
    "Continuation",
    "FetchResp",
    "ListResp",
    "LiteralSink",
    "Response",
    "ResponseParser",
    "StatusResp",
    "Tagged",
    "Untagged",
    "capabilities_in",
    "parse_internaldate",
]

_STATUS_KINDS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
_TAGGED_STATUS: dict[str, Literal["OK", "NO", "BAD"]] = {"OK": "OK", "NO": "NO", "BAD": "BAD"}
_KIND = re.compile(rb"[A-Za-z][A-Za-z0-9._-]*")
_TAG = re.compile(rb"[^\x00-\x20(){%*\"\\\]\x7f+]+")
_LIST_FLAGS = {
    f.upper(): f
    for f in [
        "\\Noselect",
        "\\Noinferiors",
        "\\Marked",
        "\\Unmarked",
        "\\HasChildren",
        "\\HasNoChildren",
        "\\NonExistent",
        "\\Subscribed",
        "\\Remote",
        "\\All",
        "\\Archive",
        "\\Drafts",
        "\\Flagged",
        "\\Junk",
        "\\Sent",
        "\\Trash",
        "\\Important",
    ]
}
_BODY_KEYS = frozenset({"BODY[]", "RFC822", "BINARY[]", "BODY.PEEK[]"})
# The shape of nearly every metadata line (``UID FETCH ... (UID RFC822.SIZE FLAGS INTERNALDATE
# MODSEQ)``), matched in one regex pass; anything else takes the general tokenizer path, which
# gives the same result (tested) only slower.
_FAST_ITEM = (
    rb"(?:UID (\d{1,20})|RFC822\.SIZE (\d{1,20})|FLAGS \(([^()\"{}\[\]\x00-\x1f\x7f]*)\)"
    rb'|INTERNALDATE "([^"\\\r\n]*)"|MODSEQ \((\d{1,20})\))'
)
_FAST_FETCH = re.compile(rb"\* (\d{1,20}) FETCH \((?:" + _FAST_ITEM + rb"(?: |(?=\))))+\)", re.I)
# A body response is three parts: head line, the literal, tail line.
_FAST_HEAD = re.compile(
    rb"\* (\d{1,20}) FETCH \((?:" + _FAST_ITEM + rb" )*(?:BODY\[\]|RFC822|BINARY\[\]) ", re.I
)
_FAST_TAIL = re.compile(rb"(?: " + _FAST_ITEM + rb")*\)", re.I)
# Errors a malformed response can cause inside the builders; all become ImapProtocolError.
_PARSE_ERRORS = (ValueError, IndexError, TypeError, KeyError, AttributeError, UnicodeError)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _resp_text(parts: RawResponse, at: int) -> tuple[str | None, tuple[object, ...], str]:
    """``[code args] text`` from byte ``at`` of the first line -> (code, code_args, text)."""
    if len(parts) != 1:
        raise protocol_error("literal inside response text", _first(parts))
    line = _first(parts)
    if line[at : at + 1] != b"[":
        return None, (), _text(line[at:])
    end = line.find(b"]", at)
    if end < 0:
        return None, (), _text(line[at:])
    code = line[at + 1 : end]
    text = line[end + 1 :].lstrip(b" ")
    sp = code.find(b" ")
    args: tuple[object, ...] = ()
    if sp > 0:
        try:
            args = tokenize([code], sp + 1)
        except ImapProtocolError:
            args = ()  # an odd code never hides the response itself
    return _text(code), args, _text(text)


def _first(parts: RawResponse) -> bytes:
    line = parts[0]
    assert isinstance(line, bytes)
    return line


def _word(line: bytes, at: int) -> tuple[bytes, int]:
    """The space-delimited word at ``at`` and where the next one starts."""
    sp = line.find(b" ", at)
    if sp < 0:
        return line[at:], len(line)
    return line[at:sp], sp + 1


def _raw(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, int):
        return str(value).encode()
    raise protocol_error("bad mailbox name", repr(value).encode())


def _mailbox(value: object) -> tuple[str, bytes]:
    raw = _raw(value)
    if raw.upper() == b"INBOX":
        return "INBOX", raw
    return decode_mailbox_name(raw), raw


def _fetch(seq: int, values: tuple[object, ...]) -> FetchResp:
    if len(values) != 1 or not isinstance(values[0], tuple) or len(values[0]) % 2:
        raise ValueError("FETCH needs one list of name/value pairs")
    items = values[0]
    uid = size = modseq = None
    flags: tuple[str, ...] | None = None
    date: str | None = None
    body: object = None
    other: dict[str, object] = {}
    for i in range(0, len(items), 2):
        key = items[i]
        value = items[i + 1]
        if not isinstance(key, str):
            raise ValueError("FETCH item name")
        key = key.upper()
        if key == "UID":
            uid = value if isinstance(value, int) else int(str(value))
        elif key == "FLAGS":
            if not isinstance(value, tuple):
                raise ValueError("FLAGS")
            flags = tuple("NIL" if f is None else str(f) for f in value)
        elif key == "RFC822.SIZE":
            size = value if isinstance(value, int) else int(str(value))
        elif key == "INTERNALDATE":
            if not isinstance(value, str):
                raise ValueError("INTERNALDATE")
            date = value
        elif key == "MODSEQ":
            if not isinstance(value, tuple) or len(value) != 1:
                raise ValueError("MODSEQ")
            modseq = int(str(value[0]))
        elif key in _BODY_KEYS or key.startswith(("BODY[]<", "BINARY[]<")):
            body = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        else:
            other[key] = value
    return FetchResp(seq, uid, flags, size, date, body, modseq, other)


def _list(values: tuple[object, ...]) -> ListResp:
    flags, delim, name = values[0], values[1], values[2]
    if isinstance(delim, bytes):  # a delimiter sent as a literal: legal, if odd
        delim = delim.decode("utf-8", "replace")
    if not isinstance(flags, tuple) or not (delim is None or isinstance(delim, str)):
        raise ValueError("LIST")
    canon = frozenset(_LIST_FLAGS.get(str(f).upper(), str(f)) for f in flags)
    decoded, raw = _mailbox(name)
    return ListResp(canon, delim, decoded, raw)


def _status(values: tuple[object, ...]) -> StatusResp:
    name, pairs = values[0], values[1]
    if not isinstance(pairs, tuple) or len(pairs) % 2:
        raise ValueError("STATUS")
    items = {str(pairs[i]).upper(): int(str(pairs[i + 1])) for i in range(0, len(pairs), 2)}
    decoded, raw = _mailbox(name)
    return StatusResp(decoded, raw, items)


def _untagged(parts: RawResponse) -> Response:
    line = _first(parts)
    word, at = _word(line, 2)
    number: int | None = None
    if word.isdigit():
        number = int(word)
        word, at = _word(line, at)
    if not _KIND.fullmatch(word):
        raise protocol_error("bad untagged response", line)
    kind = word.decode("ascii").upper()
    if kind in _STATUS_KINDS and number is None:
        code, args, text = _resp_text(parts, at)
        return Untagged(kind, None, code, args, text, ())
    if number is not None:
        if kind == "FETCH":
            return _fetch(number, tokenize(parts, at))
        if len(parts) == 1 and at >= len(line):
            return Untagged(kind, number, None, (), "", ())
    elif kind == "CAPABILITY":
        return Capability(frozenset(_text(line[at:]).upper().split()))
    elif kind in ("LIST", "LSUB", "XLIST"):
        return _list(tokenize(parts, at))
    elif kind == "STATUS":
        return _status(tokenize(parts, at))
    values = tokenize(parts, at)
    return Untagged(kind, number, None, (), _text(line[at:]), values)


# Shared by every fast-path FETCH: a folder listing keeps thousands of responses in flight
# (connections x pipeline_depth x listing_chunk), and one empty dict and one flags tuple each
# were ~4 MB of the 200,000-message backup's peak (tracemalloc, docs/benchmarks/memory.md).
# (a plain dict typed read-only: a mappingproxy does not pickle, and the processes modes send
# FETCH responses between processes)
_NO_OTHER: Mapping[str, object] = {}


@lru_cache(maxsize=1024)
def _flag_tuple(raw: bytes) -> tuple[str, ...]:
    return tuple(f.decode("utf-8", "surrogateescape") for f in raw.split())


def _fast_fetch(
    seq: bytes,
    g: tuple[bytes | None, ...],
    body: object = None,
    later: tuple[bytes | None, ...] = (),
) -> FetchResp:
    """Build from the groups (uid, size, flags, date, modseq) of the fast regexes; ``later``
    (items after a body literal) wins over ``g``, as in the general path."""
    if later:
        g = tuple(b if b is not None else a for a, b in zip(g, later, strict=True))
    uid, size, flags, date, modseq = g
    return FetchResp(
        int(seq),
        int(uid) if uid is not None else None,
        _flag_tuple(flags) if flags is not None else None,
        int(size) if size is not None else None,
        date.decode("utf-8", "surrogateescape") if date is not None else None,
        body,
        int(modseq) if modseq is not None else None,
        _NO_OTHER,
    )


def _parse(parts: RawResponse) -> Response:
    line = _first(parts)
    if line[:2] == b"* ":
        if len(parts) == 1:
            m = _FAST_FETCH.fullmatch(line)
            if m is not None:
                return _fast_fetch(m[1], m.groups()[1:])
        elif len(parts) == 3:
            m = _FAST_HEAD.fullmatch(line)
            last = parts[2]
            tail = _FAST_TAIL.fullmatch(last) if m and isinstance(last, bytes) else None
            if m is not None and tail is not None:
                return _fast_fetch(m[1], m.groups()[1:], parts[1], tail.groups())
        return _untagged(parts)
    if line[:1] == b"+":
        if len(parts) != 1:
            raise protocol_error("literal in continuation", line)
        return Continuation(_text(line[2:] if line[1:2] == b" " else line[1:]))
    tag, at = _word(line, 0)
    if not _TAG.fullmatch(tag):
        raise protocol_error("bad tag", line)
    word, at = _word(line, at)
    status = _TAGGED_STATUS.get(word.decode("ascii").upper())
    if status is None:
        raise protocol_error("tagged response without OK/NO/BAD", line)
    code, args, text = _resp_text(parts, at)
    return Tagged(tag.decode("ascii"), status, code, args, text)


class ResponseParser:
    """Feed it server bytes in chunks of any size; it returns each response once complete."""

    __slots__ = ("_error", "_framer")

    def __init__(
        self,
        literal_factory: Callable[[int], LiteralSink] | None = None,
        spill_threshold: int = DEFAULT_SPILL_THRESHOLD,
        *,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self._framer = Framer(literal_factory, spill_threshold, max_line)
        self._error: ImapProtocolError | None = None

    def pending(self) -> bool:
        """True while a partial response is buffered."""
        return self._framer.pending()

    def feed(self, data: bytes) -> list[Response]:
        if self._error is not None:
            raise self._error
        try:
            return [_parse(parts) for parts in self._framer.feed(data)]
        except ImapProtocolError as exc:
            self._error = exc
            raise
        except _PARSE_ERRORS as exc:
            self._error = ImapProtocolError(f"unreadable IMAP response ({exc})")
            raise self._error from exc
