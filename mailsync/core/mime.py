"""What the search index keeps of one message: pure, picklable, never raises.

:func:`extract` walks a message's MIME tree and returns an :class:`IndexDoc`: the header fields
(RFC 2047 words decoded, addresses split into names and addresses), the text of its text/plain
parts (text/html when an alternative has no plain part, tags stripped), attachment names and
types, and the Date as a timestamp. It is the CPU-heavy step of indexing and runs in the process
pool (a top-level function, bytes in, a small frozen dataclass out).

Why not ``email.message_from_bytes``: the stdlib's feed parser splits every line of every part,
base64 attachments included, and builds a Message per part; an archive is mostly attachment
bytes. Here a part's extent is found with ``bytes.find`` on its boundary, an attachment's payload
is never decoded (only its headers are read), and only text parts are transfer-decoded (binascii)
and charset-decoded, up to :data:`TEXT_CAP` characters per message. Header values still go
through the stdlib's own RFC 2047 and address parsers (``email.header``, ``email.utils``).
Measured on the bench corpus: see docs/mailsync.md ("Index").

A malformed message gives whatever could be read, plus a short ``error``: a missing end of the
header block (the whole message is headers), a multipart whose boundary never comes (its body is
indexed as text), undecodable bytes (replaced).
"""

from __future__ import annotations

import binascii
import codecs
import html
import itertools
import re
from dataclasses import dataclass
from email.header import decode_header
from email.utils import getaddresses, mktime_tz, parsedate_tz
from functools import lru_cache

__all__ = ["TEXT_CAP", "IndexDoc", "extract"]

TEXT_CAP = 16_000  # characters of body text kept per message: enough to find it by its words
_FIELD_CAP = 4_000  # characters kept per header field
_MAX_PARTS = 100
_MAX_DEPTH = 12
_ENCODED_TEXT_CAP = TEXT_CAP * 4  # encoded bytes of one text part decoded at most

_BLANK = re.compile(rb"\r?\n\r?\n")
_PARAM = re.compile(
    r';\s*([A-Za-z0-9!#$%&\'+.^_`{|}~*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)', re.DOTALL
)
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class IndexDoc:
    """The searchable fields of one message (strings are never None: empty when absent)."""

    message_id: str
    subject: str
    from_: str  # "Name <addr>, ..." as decoded
    from_addr: str  # the first sender address, lower case
    to: str
    cc: str
    date: float | None  # the Date header as a UTC timestamp
    body: str  # text of the text parts, at most TEXT_CAP characters
    attachments: tuple[tuple[str, str], ...]  # (file name, content type)
    error: str | None = None

    @property
    def addresses(self) -> str:
        """Every address of the sender and recipients, for the report's domain counts."""
        return ", ".join(x for x in (self.from_, self.to, self.cc) if x)


def _text_of(raw: bytes) -> str:
    """Header bytes as text: UTF-8 when it is, else Latin-1 (every byte maps)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _headers(head: bytes) -> dict[str, str]:
    """The first value of each field, unfolded (a later duplicate is ignored)."""
    out: dict[str, str] = {}
    name: str | None = None
    value: list[str] = []
    for line in head.split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                value.append(_text_of(line))
            continue
        if name is not None and name not in out:
            out[name] = " ".join(v.strip() for v in value)
        name = None
        i = line.find(b":")
        if i <= 0 or line.startswith(b"From "):
            continue
        name = line[:i].strip().lower().decode("latin-1")
        value = [_text_of(line[i + 1 :])]
    if name is not None and name not in out:
        out[name] = " ".join(v.strip() for v in value)
    return out


@lru_cache(maxsize=4096)
def _decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded (as ``email.header`` reads them), spaces collapsed."""
    if "=?" not in value:
        return " ".join(value.split())[:_FIELD_CAP]
    try:
        parts = []
        for chunk, charset in decode_header(value):
            if isinstance(chunk, bytes):
                parts.append(_decode(chunk, charset or "ascii"))
            else:
                parts.append(chunk)
        return " ".join("".join(parts).split())[:_FIELD_CAP]
    except Exception:
        return " ".join(value.split())[:_FIELD_CAP]


@lru_cache(maxsize=4096)
def _addresses(value: str) -> tuple[tuple[str, str], ...]:
    pairs = getaddresses([value])
    return tuple((_decode_words(n), a.strip().lower()) for n, a in pairs if n or a)


def _show(pairs: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{n} <{a}>" if n and a else n or a for n, a in pairs)[:_FIELD_CAP]


@lru_cache(maxsize=256)
def _codec(charset: str) -> str:
    try:
        codec = codecs.lookup(charset.strip().strip('"').lower() or "ascii").name
    except LookupError:
        return "utf-8"
    return "utf-8" if codec == "ascii" else codec  # 8-bit under a us-ascii label: mostly UTF-8


def _decode(data: bytes, charset: str) -> str:
    codec = _codec(charset)
    try:
        return data.decode(codec, "replace")
    except Exception:
        return data.decode("utf-8", "replace")


def _params(value: str) -> tuple[str, dict[str, str]]:
    """A Content-Type / Content-Disposition value: (lower-case main value, parameters) with
    RFC 2231 (``name*=utf-8''...``, continuations) and RFC 2047 names decoded."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    pieces: dict[str, list[tuple[int, bool, str]]] = {}
    for m in _PARAM.finditer(";" + rest):
        key, raw = m.group(1).lower(), m.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        extended = key.endswith("*")
        key = key.rstrip("*")
        base, star, num = key.partition("*")
        if star and num.isdigit():
            pieces.setdefault(base, []).append((int(num), extended, raw))
        else:
            pieces.setdefault(key, []).append((0, extended, raw))
    for key, parts in pieces.items():
        parts.sort(key=lambda p: p[0])
        charset = "utf-8"
        text: list[str] = []
        for i, (_, extended, raw) in enumerate(parts):
            if extended:
                if i == 0 and raw.count("'") >= 2:
                    charset, _, raw = raw.split("'", 2)
                text.append(_decode(_unquote_pct(raw), charset or "utf-8"))
            else:
                text.append(raw)
        params[key] = _decode_words("".join(text))
    return main.strip().lower(), params


def _unquote_pct(text: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%" and _is_hex(text[i + 1 : i + 3]):
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            out += c.encode("utf-8", "replace")
            i += 1
    return bytes(out)


def _is_hex(s: str) -> bool:
    return len(s) == 2 and all(c in "0123456789abcdefABCDEF" for c in s)


def _split_head(raw: bytes) -> tuple[bytes, bytes, bool]:
    """(header block, body, found the blank line that ends the headers)."""
    if raw.startswith((b"\r\n", b"\n")):
        return b"", raw[2 if raw.startswith(b"\r\n") else 1 :], True
    m = _BLANK.search(raw)
    if m is None:
        return raw, b"", False
    return raw[: m.start()], raw[m.end() :], True


def _html_text(text: str) -> str:
    return html.unescape(_TAGS.sub(" ", text))


def _transfer_decode(payload: bytes, cte: str) -> bytes:
    cte = cte.strip().lower()
    if cte == "base64":
        try:
            return binascii.a2b_base64(payload)
        except binascii.Error:
            # a cut or broken encoding: decode the whole 4-character groups that are there
            clean = re.sub(rb"[^A-Za-z0-9+/]", b"", payload)
            return binascii.a2b_base64(clean[: len(clean) // 4 * 4] or b"")
    if cte == "quoted-printable":
        return binascii.a2b_qp(payload)
    return payload


def _parts(body: bytes, boundary: str) -> list[bytes] | None:
    """The parts of a multipart body (None when its boundary never occurs)."""
    delim = b"--" + boundary.encode("latin-1", "replace")
    starts: list[tuple[int, int]] = []  # (line start, content start)
    pos = 0
    closed = False
    while len(starts) <= _MAX_PARTS:
        i = body.find(delim, pos)
        if i < 0:
            break
        pos = i + len(delim)
        if i > 0 and body[i - 1 : i] != b"\n":
            continue  # not at a line start
        line_end = body.find(b"\n", pos)
        line_end = len(body) if line_end < 0 else line_end + 1
        tail = body[pos:line_end].strip()
        if tail.startswith(b"--"):
            starts.append((i, -1))
            closed = True
            break
        if tail:
            continue  # a longer boundary that starts with this one
        starts.append((i, line_end))
        pos = line_end
    if not starts:
        return None
    parts: list[bytes] = []
    for (_, begin), (end, _) in itertools.pairwise(starts):
        if begin >= 0:
            parts.append(_strip_eol(body[begin:end]))
    last_begin = starts[-1][1]
    if not closed and last_begin >= 0:
        parts.append(body[last_begin:])  # the closing delimiter never came: up to the end
    return parts


def _strip_eol(part: bytes) -> bytes:
    """The line end before a delimiter belongs to the delimiter (RFC 2046)."""
    if part.endswith(b"\r\n"):
        return part[:-2]
    return part[:-1] if part.endswith(b"\n") else part


class _Walk:
    """One message's walk: the text gathered so far, attachments, problems."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.size = 0
        self.attachments: list[tuple[str, str]] = []
        self.problems: list[str] = []
        self.parts = 0

    def add_text(self, text: str) -> None:
        room = TEXT_CAP - self.size
        if room <= 0:
            return
        # no whitespace folding here: the FTS5 tokenizer skips it anyway (show folds it)
        text = text[:room].strip()
        if text and not text.isspace():
            self.text.append(text)
            self.size += len(text) + 1

    def entity(self, headers: dict[str, str], body: bytes, depth: int) -> None:
        self.parts += 1
        if self.parts > _MAX_PARTS or depth > _MAX_DEPTH:
            if "too many parts" not in self.problems:
                self.problems.append("too many parts")
            return
        ctype, cparams = _params(headers.get("content-type", "text/plain"))
        if "/" not in ctype:
            ctype = "text/plain"
        disp, dparams = _params(headers.get("content-disposition", ""))
        filename = dparams.get("filename") or cparams.get("name") or ""
        if ctype.startswith("multipart/"):
            self.multipart(ctype, cparams.get("boundary", ""), body, depth)
            return
        if ctype == "message/rfc822" and disp != "attachment":
            head, inner, _ = _split_head(body)
            sub = _headers(head)
            self.add_text(_decode_words(sub.get("subject", "")))
            self.entity(sub, inner, depth + 1)
            return
        if disp == "attachment" or filename or not ctype.startswith("text/"):
            self.attachments.append((filename, ctype))
            return
        if self.size >= TEXT_CAP:
            return
        payload = _transfer_decode(
            body[:_ENCODED_TEXT_CAP], headers.get("content-transfer-encoding", "")
        )
        text = _decode(payload, cparams.get("charset", "utf-8"))
        self.add_text(_html_text(text) if ctype == "text/html" else text)

    def multipart(self, ctype: str, boundary: str, body: bytes, depth: int) -> None:
        parts = _parts(body, boundary) if boundary else None
        if parts is None:
            self.problems.append(f"{ctype}: boundary {boundary[:40]!r} not found")
            self.add_text(_decode(body[:_ENCODED_TEXT_CAP], "utf-8"))
            return
        entities = []
        for part in parts:
            head, inner, _ = _split_head(part)
            entities.append((_headers(head), inner))
        if ctype == "multipart/alternative":
            # one rendering of the same text: the plain one when there is one
            plain = [e for e in entities if _is_plain(e[0])]
            if plain:
                entities = plain[:1] + [e for e in entities if not _is_text(e[0])]
        for sub_headers, inner in entities:
            self.entity(sub_headers, inner, depth + 1)


def _is_text(headers: dict[str, str]) -> bool:
    return headers.get("content-type", "text/plain").strip().lower().startswith("text/")


def _is_plain(headers: dict[str, str]) -> bool:
    return headers.get("content-type", "text/plain").strip().lower().startswith("text/plain")


def _date(value: str) -> float | None:
    if not value:
        return None
    try:
        parsed = parsedate_tz(value)
        if parsed is None:
            return None
        return float(mktime_tz(parsed))
    except (ValueError, OverflowError, TypeError, IndexError):
        return None


def extract(raw: bytes) -> IndexDoc:
    """The searchable fields of ``raw`` (a whole message); never raises."""
    try:
        return _extract(raw)
    except Exception as exc:  # a case the walk did not foresee: index what the headers give
        try:
            head, _, _ = _split_head(raw)
            h = _headers(head)
            return IndexDoc(
                message_id=h.get("message-id", "").strip()[:_FIELD_CAP],
                subject=_decode_words(h.get("subject", "")),
                from_="",
                from_addr="",
                to="",
                cc="",
                date=_date(h.get("date", "")),
                body="",
                attachments=(),
                error=f"unreadable: {exc!r}"[:300],
            )
        except Exception:
            return IndexDoc("", "", "", "", "", "", None, "", (), f"unreadable: {exc!r}"[:300])


def _extract(raw: bytes) -> IndexDoc:
    head, body, complete = _split_head(raw)
    walk = _Walk()
    if not complete:
        walk.problems.append("no end of the header block")
    h = _headers(head)
    senders = _addresses(h.get("from", "")) if "from" in h else ()
    walk.entity(h, body, 0)
    date_value = h.get("date", "")
    date = _date(date_value)
    if date_value and date is None:
        walk.problems.append(f"Date: unparseable {date_value[:60]!r}")
    return IndexDoc(
        message_id=h.get("message-id", "").strip()[:_FIELD_CAP],
        subject=_decode_words(h.get("subject", "")),
        from_=_show(senders),
        from_addr=next((a for _, a in senders if a), ""),
        to=_show(_addresses(h["to"])) if "to" in h else "",
        cc=_show(_addresses(h["cc"])) if "cc" in h else "",
        date=date,
        body=" ".join(walk.text),
        attachments=tuple(walk.attachments),
        error="; ".join(walk.problems)[:300] or None,
    )
