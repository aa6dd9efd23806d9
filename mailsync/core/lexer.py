"""IMAP response framing and tokenising: bytes in, lines + literals + nested values out.

The :class:`Framer` cuts an unbounded byte stream into whole server responses. A response is a
line, or a line that ends in a literal marker ``{n}`` / ``~{n}`` (literal8) followed by exactly
``n`` bytes and more line. Only line bytes are ever searched (``bytes.find``); literal bytes are
sliced out of the chunk they arrive in (pieces joined once when a literal spans chunks), or
streamed to a :class:`LiteralSink` above the spill threshold, so a 1 GB message is never scanned
and never held in memory. A status response, tagged response or continuation ends in free text,
where a trailing ``{5}`` is just characters, so those lines never announce a literal.

:func:`tokenize` turns a framed response into Python values with one C-level regex pass per line:
``(`` ``)`` nest tuples, numbers (no leading zero, <= 20 digits) become ``int``, ``NIL`` becomes
``None``, atoms and quoted strings become ``str`` (UTF-8 with ``surrogateescape``, so
``s.encode("utf-8", "surrogateescape")`` gives back the wire bytes), literals stay ``bytes`` (or the
sink's object). Atoms may carry bracketed sections with spaces: ``BODY[HEADER.FIELDS (FROM)]<0>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from foundation.errors import ImapProtocolError

__all__ = [
    "DEFAULT_MAX_LINE",
    "DEFAULT_SPILL_THRESHOLD",
    "Framer",
    "LiteralSink",
    "RawResponse",
    "excerpt",
    "protocol_error",
    "tokenize",
]

DEFAULT_SPILL_THRESHOLD = 8 * 1024 * 1024
# A line (not a literal) longer than this is refused rather than buffered without end; the largest
# legitimate lines are SEARCH / ESEARCH answers, a few MB for a million UIDs.
DEFAULT_MAX_LINE = 64 * 1024 * 1024

# A framed response: [line, literal, line, literal, ..., line]; literal markers are stripped.
RawResponse = list[object]

_LITERAL_TAIL = re.compile(rb"(\d{1,19})\+?\}")
# One token per match: "(", ")", a quoted string, an atom (with [section] groups) or one junk byte.
_TOKENS = re.compile(
    rb' *(\(|\)|"(?:[^"\\\r\n]|\\[^\r\n])*"|(?:[^\x00-\x20()"\[\]{}\x7f]|\[[^\]\r\n]*\])+|[^ ])'
)
_JUNK = frozenset(b"[]{}")
_UNESCAPE = re.compile(rb"\\(.)", re.S)


class LiteralSink(Protocol):
    """Receives a large literal in pieces; ``finish`` returns the value stored in the response."""

    def write(self, data: bytes) -> None: ...

    def finish(self) -> object: ...


def excerpt(data: bytes | bytearray | memoryview, limit: int = 80) -> str:
    """A short, printable piece of offending bytes for error messages."""
    raw = bytes(data[:limit])
    return repr(raw) + ("..." if len(data) > limit else "")


def protocol_error(why: str, data: bytes | bytearray | memoryview = b"") -> ImapProtocolError:
    return ImapProtocolError(f"{why}: {excerpt(data)}" if data else why)


class Framer:
    """Incremental framing; any chunking of the stream yields the same responses."""

    __slots__ = (
        "_chunks",
        "_factory",
        "_max_line",
        "_need",
        "_parts",
        "_sink",
        "_spill",
        "_tail",
        "_tail_len",
    )

    def __init__(
        self,
        literal_factory: Callable[[int], LiteralSink] | None = None,
        spill_threshold: int = DEFAULT_SPILL_THRESHOLD,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self._factory = literal_factory
        self._spill = spill_threshold
        self._max_line = max_line
        self._tail: list[bytes] = []  # pieces of a line whose LF has not arrived yet
        self._tail_len = 0
        self._parts: RawResponse = []
        self._need = 0  # literal bytes still to come
        self._chunks: list[bytes] = []
        self._sink: LiteralSink | None = None

    def pending(self) -> bool:
        return bool(self._tail or self._parts or self._need)

    def feed(self, data: bytes) -> list[RawResponse]:
        done: list[RawResponse] = []
        pos = 0
        if self._need:
            pos = self._literal_more(data, 0)
            if self._need:
                return done
        elif self._tail:
            i = data.find(b"\n")
            if i < 0:
                self._add_tail(data)
                return done
            self._tail.append(data[:i])
            line = b"".join(self._tail)
            self._tail.clear()
            self._tail_len = 0
            pos = self._line(line, data, i + 1, done)
            if self._need:
                return done
        find = data.find
        while True:
            i = find(b"\n", pos)
            if i < 0:
                break
            pos = self._line(data[pos:i], data, i + 1, done)
            if self._need:
                return done
        if pos < len(data):
            self._add_tail(data[pos:] if pos else data)
        return done

    def _add_tail(self, piece: bytes) -> None:
        self._tail.append(piece)
        self._tail_len += len(piece)
        if self._tail_len > self._max_line:
            head = self._tail[0]
            raise protocol_error(f"line longer than {self._max_line} bytes", head)

    def _line(self, line: bytes, data: bytes, pos: int, done: list[RawResponse]) -> int:
        """Take one line (LF stripped); return where the caller resumes in ``data``."""
        if line[-1:] == b"\r":
            line = line[:-1]
        if line[-1:] == b"}":
            j = line.rfind(b"{")
            m = _LITERAL_TAIL.fullmatch(line, j + 1) if j >= 0 else None
            if m is not None and not (not self._parts and _is_text_response(line)):
                size = int(m.group(1))
                start = j - 1 if line[j - 1 : j] == b"~" else j
                self._parts.append(line[:start])
                end = pos + size
                if self._factory is None or size <= self._spill:
                    if end <= len(data):
                        self._parts.append(data[pos:end])
                        return end
                    self._chunks = []
                else:
                    self._sink = self._factory(size)
                self._need = size
                return self._literal_more(data, pos)
        if len(line) > self._max_line:
            raise protocol_error(f"line longer than {self._max_line} bytes", line)
        self._parts.append(line)
        done.append(self._parts)
        self._parts = []
        return pos

    def _literal_more(self, data: bytes, pos: int) -> int:
        """Consume up to the rest of the current literal from ``data[pos:]``; return the new
        position. Only the literal's own bytes are copied, never the rest of the chunk."""
        take = min(self._need, len(data) - pos)
        piece = data if pos == 0 and take == len(data) else data[pos : pos + take]
        if self._sink is not None:
            if piece:
                self._sink.write(piece)
        elif piece:
            self._chunks.append(piece)
        self._need -= take
        if not self._need:
            if self._sink is not None:
                value: object = self._sink.finish()
                self._sink = None
            else:
                chunks = self._chunks
                value = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self._chunks = []
            self._parts.append(value)
        return pos + take


_STATUS_WORDS = frozenset({b"OK", b"NO", b"BAD", b"BYE", b"PREAUTH"})


def _is_text_response(line: bytes) -> bool:
    """Status responses, tagged results and continuations end in free text (RFC 3501 ``text``),
    where ``{5}`` is just characters: such a line never announces a literal."""
    if line[:1] == b"+":
        return True
    if line[:2] != b"* ":
        return True  # tagged: always OK/NO/BAD + text
    return line[2:].split(b" ", 1)[0].upper() in _STATUS_WORDS


def _atom(tok: bytes) -> object:
    if tok.isdigit():
        if (tok[0] != 0x30 or len(tok) == 1) and len(tok) <= 20:
            return int(tok)
    elif len(tok) == 3 and tok.upper() == b"NIL":
        return None
    return tok.decode("utf-8", "surrogateescape")


def tokenize(parts: RawResponse, offset: int = 0) -> tuple[object, ...]:
    """Values of a framed response, starting at byte ``offset`` of its first line."""
    stack: list[list[object]] = []
    cur: list[object] = []
    last = len(parts) - 1
    findall = _TOKENS.findall
    for idx in range(0, last + 1, 2):
        line = parts[idx]
        assert isinstance(line, bytes)
        for tok in findall(line, offset if idx == 0 else 0):
            c = tok[0]
            if c == 0x28:  # (
                stack.append(cur)
                cur = []
            elif c == 0x29:  # )
                if not stack:
                    raise protocol_error("unbalanced ')'", line)
                done = tuple(cur)
                cur = stack.pop()
                cur.append(done)
            elif c == 0x22:  # "
                if len(tok) < 2 or tok[-1] != 0x22:
                    raise protocol_error("unterminated quoted string", line)
                body = tok[1:-1]
                if b"\\" in body:
                    body = _UNESCAPE.sub(rb"\1", body)
                cur.append(body.decode("utf-8", "surrogateescape"))
            elif c < 0x20 or c == 0x7F or (len(tok) == 1 and c in _JUNK):
                raise protocol_error("unexpected byte", line)
            else:
                cur.append(_atom(tok))
        if idx < last:
            cur.append(parts[idx + 1])
    if stack:
        raise protocol_error("unbalanced '('", parts[0] if isinstance(parts[0], bytes) else b"")
    return tuple(cur)
