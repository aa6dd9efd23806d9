"""Build one message's bytes, of an exact size, from its plan (used by ``testbed.corpus``).

Bulk content is cut from two pools made once per seed (ASCII / UTF-8 text lines and base64
lines), so a 1 GB corpus costs little more than copying and hashing: random bytes and base64
encoding per message would cost ~10 s per GB. Every line ends in CRLF, except where a MALFORMED
kind deliberately breaks that.
"""

from __future__ import annotations

import base64
import random
import re
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from functools import lru_cache

__all__ = [
    "KINDS",
    "MALFORMED_KINDS",
    "BuiltMessage",
    "MessagePlan",
    "build_message",
    "served_form",
]

CRLF = b"\r\n"
# what the plan may ask for; "malformed-*" kinds are still accepted by APPEND
MALFORMED_KINDS = (
    "malformed-no-header-end",
    "malformed-bare-lf",
    "malformed-8bit-header",
    "malformed-broken-boundary",
)
KINDS = ("plain", "alternative", "attachment", *MALFORMED_KINDS)

_WORDS = [
    "the",
    "report",
    "meeting",
    "budget",
    "project",
    "review",
    "draft",
    "schedule",
    "invoice",
    "customer",
    "update",
    "server",
    "release",
    "backup",
    "quarter",
    "results",
    "team",
    "plan",
    "office",
    "travel",
    "contract",
    "design",
    "notes",
    "agenda",
    "minutes",
    "proposal",
    "question",
    "answer",
    "status",
    "deadline",
    "data",
    "mail",
    "archive",
    "folder",
    "sync",
    "network",
    "storage",
    "migration",
    "please",
    "find",
    "attached",
    "below",
    "thanks",
    "regards",
    "kind",
    "best",
    "call",
    "tomorrow",
    "monday",
    "friday",
    "week",
    "month",
    "year",
    "issue",
    "ticket",
    "change",
    "request",
    "approval",
    "feedback",
    "summary",
]
_WORDS_UTF8 = [
    "Grüße",
    "Bericht",
    "Entwürfe",
    "Übersicht",
    "Größe",
    "Straße",
    "über",
    "für",
    "Änderung",
    "Besprechung",
    "Отчёт",
    "Работа",
    "встреча",
    "бюджет",
    "проект",
    "письмо",
    "архив",
    "спасибо",
    "пятница",
    "неделя",
    "réunion",
    "café",
    "résumé",
    "naïve",
    "façade",
    "会議",
    "報告",
    "予定",
    "東京",
]
_PEOPLE = (
    ("Alice Example", "alice@example.org"),
    ("Bob Builder", "bob@example.com"),
    ("Jürgen Müller", "juergen@example.de"),
    ("Анна Иванова", "anna@example.ru"),
    ("Zoë Dupont", "zoe@example.fr"),
    ("Carol", "carol@example.net"),
    ("", "noreply@lists.example.org"),
    ("Dave O'Brien", "dave@example.ie"),
    ("山田 太郎", "taro@example.jp"),
)
_ATTACHMENTS = (
    ("application/pdf", "report.pdf"),
    ("image/jpeg", "photo.jpg"),
    ("application/octet-stream", "data.bin"),
    ("application/zip", "archive.zip"),
    ("image/png", "Übersicht 2024.png"),
)
_B64_LINE = 78  # 76 base64 characters + CRLF
_B64_POOL_LINES = 110_000  # ~8.6 MB: the largest single attachment
_TEXT_POOL_BYTES = 256 * 1024
_MAX_ATTACHMENT = _B64_POOL_LINES * _B64_LINE


@dataclass(frozen=True, slots=True)
class MessagePlan:
    """What to build: everything but the bytes, decided up front by the corpus plan."""

    index: int
    size: int  # exact length of the served form
    kind: str
    internaldate: datetime
    message_id: str
    folder: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    """``raw`` is what APPEND sends; ``served`` is what the server hands back as BODY[]."""

    raw: bytes
    served: bytes


def served_form(raw: bytes) -> bytes:
    """What Dovecot 2.3 serves for APPENDed bytes (measured): a lone LF becomes CRLF.

    A lone CR is kept. Note that imaplib's ``append()`` itself rewrites every lone CR and LF to
    CRLF before sending, so only raw APPENDs (``testbed.imap_load``) keep a lone CR.
    """
    return re.sub(rb"(?<!\r)\n", CRLF, raw)


@lru_cache(maxsize=4)
def _b64_pool(seed: int) -> bytes:
    raw = random.Random(f"b64:{seed}").randbytes(_B64_POOL_LINES * 57)
    return base64.encodebytes(raw).replace(b"\n", CRLF)


@lru_cache(maxsize=4)
def _text_pool(seed: int, utf8: bool) -> bytes:
    rng = random.Random(f"text:{seed}:{utf8}")
    words = _WORDS + _WORDS_UTF8 if utf8 else _WORDS
    lines: list[str] = []
    size = 0
    while size < _TEXT_POOL_BYTES:
        line = " ".join(rng.choices(words, k=rng.randint(6, 12)))
        if rng.random() < 0.1:
            line = ""  # paragraph break
        lines.append(line)
        size += len(line.encode()) + 2
    return "\r\n".join(lines).encode() + CRLF


def _text(rng: random.Random, seed: int, length: int, *, utf8: bool = False) -> bytes:
    """Exactly ``length`` bytes of CRLF-terminated text lines (valid UTF-8 when ``utf8``)."""
    if length <= 0:
        return b""
    if length < 2:
        return b" " * length
    pool = _text_pool(seed, utf8)
    out = bytearray()
    while len(out) < length - 2:
        # start on a line boundary; past the last one, wrap to the pool's start
        found = pool.find(CRLF, rng.randrange(len(pool)))
        start = found + 2 if found >= 0 else 0
        out += pool[start : start + (length - 2 - len(out))]
    body = bytes(out)
    if utf8:  # a cut may split a character: replace the broken tail by spaces
        text = body.decode("utf-8", "ignore").encode()
        body = text + b" " * (len(body) - len(text))
    if body.endswith(b"\r"):
        body = body[:-1] + b" "
    return body + CRLF


def _b64(rng: random.Random, seed: int, length: int) -> bytes:
    """Whole base64 lines (a valid encoding) of at most ``length`` bytes."""
    pool = _b64_pool(seed)
    lines = max(1, min(length, _MAX_ATTACHMENT) // _B64_LINE)
    start = rng.randrange(0, _B64_POOL_LINES - lines + 1) * _B64_LINE
    return pool[start : start + lines * _B64_LINE]


def _address(rng: random.Random) -> str:
    name, addr = rng.choice(_PEOPLE)
    return formataddr((name, addr), charset="utf-8") if name else addr


def _subject(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(2, 7))
    if rng.random() < 0.3:  # RFC 2047 encoded words
        words += rng.choices(_WORDS_UTF8, k=rng.randint(1, 3))
        text = " ".join(words).capitalize()
        return Header(text, "utf-8", header_name="Subject").encode(linesep="\r\n")
    return " ".join(words).capitalize()


def _headers(rng: random.Random, plan: MessagePlan, extra: list[str]) -> bytes:
    sent = plan.internaldate.timestamp() - rng.randint(0, 3600)
    date = datetime.fromtimestamp(sent, plan.internaldate.tzinfo)
    lines = [
        f"From: {_address(rng)}",
        f"To: {_address(rng)}",
        *([f"Cc: {_address(rng)}, {_address(rng)}"] if rng.random() < 0.3 else []),
        f"Date: {format_datetime(date)}",
        f"Subject: {_subject(rng)}",
        f"Message-ID: {plan.message_id}",
        *extra,
    ]
    return "\r\n".join(lines).encode() + CRLF


def _boundary(rng: random.Random) -> str:
    return f"----=_Part_{rng.getrandbits(48):012x}"


def _exact(
    head: bytes,
    parts: list[bytes],
    tail: bytes,
    filler_at: int,
    size: int,
    rng: random.Random,
    seed: int,
    utf8: bool,
) -> bytes:
    fixed = len(head) + sum(len(p) for p in parts) + len(tail)
    filler = _text(rng, seed, size - fixed, utf8=utf8)
    return head + b"".join(parts[:filler_at]) + filler + b"".join(parts[filler_at:]) + tail


def _plain(rng: random.Random, plan: MessagePlan, seed: int) -> bytes:
    utf8 = rng.random() < 0.4
    charset = "utf-8" if utf8 else "us-ascii"
    cte = "8bit" if utf8 else "7bit"
    head = (
        _headers(
            rng,
            plan,
            [
                "MIME-Version: 1.0",
                f"Content-Type: text/plain; charset={charset}",
                f"Content-Transfer-Encoding: {cte}",
            ],
        )
        + CRLF
    )
    return _exact(head, [], b"", 0, plan.size, rng, seed, utf8)


def _alternative(rng: random.Random, plan: MessagePlan, seed: int) -> bytes:
    b = _boundary(rng)
    head = (
        _headers(
            rng, plan, ["MIME-Version: 1.0", f'Content-Type: multipart/alternative; boundary="{b}"']
        )
        + CRLF
    )
    part1 = (
        f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode()
    html = (
        f"\r\n--{b}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        "<html><body><p>See the plain text part.</p></body></html>\r\n"
    ).encode()
    return _exact(head, [part1, html], f"--{b}--\r\n".encode(), 1, plan.size, rng, seed, True)


def _attachment(rng: random.Random, plan: MessagePlan, seed: int) -> bytes:
    b = _boundary(rng)
    head = (
        _headers(rng, plan, ["MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{b}"'])
        + CRLF
    )
    intro = (
        f"This is a multi-part message in MIME format.\r\n\r\n--{b}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    budget = plan.size - len(head) - len(intro) - 600
    count = rng.randint(1, 3) if budget > 30_000 else 1
    parts: list[bytes] = [intro]
    for _ in range(count):
        ctype, name = rng.choice(_ATTACHMENTS)
        disp = Header(name, "utf-8").encode() if not name.isascii() else name
        part_head = (
            f'\r\n--{b}\r\nContent-Type: {ctype}; name="{disp}"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment; filename="{disp}"\r\n\r\n'
        ).encode()
        share = int(budget * 0.9 / count) - len(part_head)
        parts += [part_head, _b64(rng, seed, share)]
    return _exact(head, parts, f"\r\n--{b}--\r\n".encode(), 1, plan.size, rng, seed, False)


def _malformed(rng: random.Random, plan: MessagePlan, seed: int) -> BuiltMessage:
    if plan.kind == "malformed-no-header-end":
        # headers only, the blank line that ends them never comes
        head = _headers(rng, plan, ["X-Malformed: no end of headers"])
        # whole 79-byte "X-Pad" lines, the remainder in one shorter line or in the first one
        full, rest = divmod(plan.size - len(head), 79)
        pad = [_text(rng, seed, 72)[:-2].replace(CRLF, b"  ") for _ in range(full)]
        lines = [b"X-Pad: " + text + CRLF for text in pad]
        if rest >= 9:
            lines.append(b"X-Pad: " + b"x" * (rest - 9) + CRLF)
        elif rest and lines:
            lines[0] = lines[0][:-2] + b"y" * rest + CRLF
        served = head + b"".join(lines)
        return BuiltMessage(raw=served, served=served)
    if plan.kind == "malformed-8bit-header":
        head = _headers(rng, plan, ["X-Malformed: raw 8-bit bytes in headers"])
        garbage = b"Subject2: Caf\xe9 \xff\xfe\x80 r\xe9sum\xe9 \xc3\x28\r\nX-Name: M\xfcller\r\n"
        served = _exact(head + garbage + CRLF, [], b"", 0, plan.size, rng, seed, False)
        return BuiltMessage(raw=served, served=served)
    if plan.kind == "malformed-broken-boundary":
        b = _boundary(rng)
        head = (
            _headers(
                rng, plan, ["MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{b}"']
            )
            + CRLF
        )
        # parts use a boundary that was never declared, and the closing one is missing
        part = f"--{b}X\r\nContent-Type: text/plain\r\n\r\n".encode()
        served = _exact(head, [part], b"", 1, plan.size, rng, seed, False)
        return BuiltMessage(raw=served, served=served)
    # malformed-bare-lf: lone LF line ends (served as CRLF) and one lone CR (served as is)
    head = _headers(rng, plan, ["X-Malformed: bare LF and CR line ends"]) + CRLF
    text = _exact(head, [], b"", 0, plan.size, rng, seed, False)[len(head) :]
    lines = text.split(CRLF)  # the last item is b"" (the text ends in CRLF)
    raw_ends = [b"\n" if i % 3 == 0 else CRLF for i in range(len(lines) - 1)]
    served_ends = [CRLF] * len(raw_ends)
    # "\r " keeps the size; a CR right before a line end would merge with it into CRLF
    for i in range(1, len(lines) - 2, 3):
        if lines[i + 1]:
            raw_ends[i] = served_ends[i] = b"\r "
            break
    raw = head + b"".join(a + b for a, b in zip(lines, raw_ends, strict=False))
    served = head + b"".join(a + b for a, b in zip(lines, served_ends, strict=False))
    return BuiltMessage(raw=raw, served=served)


def build_message(seed: int, plan: MessagePlan) -> BuiltMessage:
    """The bytes of one message, a pure function of (seed, plan)."""
    rng = random.Random(f"msg:{seed}:{plan.index}")
    if plan.kind in MALFORMED_KINDS:
        return _malformed(rng, plan, seed)
    builders = {"plain": _plain, "alternative": _alternative, "attachment": _attachment}
    data = builders[plan.kind](rng, plan, seed)
    return BuiltMessage(raw=data, served=data)
