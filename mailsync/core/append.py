"""APPEND and what goes with it (CREATE, SELECT, APPENDUID), as command bytes and parsed answers:
no I/O.

- :func:`append` builds one ``APPEND`` of one message, or a MULTIAPPEND (RFC 3502) of several
  into one folder: each message with its flags and INTERNALDATE. With ``literal_plus`` (the
  server has LITERAL+ or, for messages under 4 KB, LITERAL-) the literals are non-synchronising
  and the whole command is one byte string, so many can be pipelined in one write; otherwise each
  literal waits for the server's ``+`` (the transports handle those parts).
- :func:`appenduid` reads ``[APPENDUID uidvalidity uid-set]`` (UIDPLUS, RFC 4315).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailsync.core.commands import Parts, _join, _Lit, _mailbox
from mailsync.core.responses import Tagged
from mailsync.core.utf7 import encode_mutf7

__all__ = [
    "AppendMessage",
    "append",
    "append_flags",
    "appenduid",
    "create",
    "mailbox_wire_name",
    "select",
    "uid_set_members",
]

# RFC 3501: \Recent is the server's; APPEND must not try to set it
_NOT_APPENDABLE = frozenset({"\\RECENT"})
LITERAL_MINUS_MAX = 4096  # RFC 7888: LITERAL- allows the non-synchronising form up to 4 KB


@dataclass(frozen=True)
class AppendMessage:
    """One message to APPEND: bytes, flags as archived, INTERNALDATE as the server sent it."""

    body: bytes
    flags: tuple[str, ...]
    internaldate: str | None


def mailbox_wire_name(name: str) -> bytes:
    """A decoded folder name (``/`` between levels, as archived) in its modified UTF-7 form."""
    return b"INBOX" if name.upper() == "INBOX" else encode_mutf7(name)


def append_flags(flags: Sequence[str]) -> bytes:
    """``(\\Seen $Label1)``: the flags a client may set, in their order."""
    ok = [f for f in flags if f.upper() not in _NOT_APPENDABLE and f]
    return b"(" + " ".join(ok).encode("utf-8") + b")"


def append(
    name: str, messages: Sequence[AppendMessage], *, literal_plus: bool, literal_minus: bool = False
) -> Parts:
    """``APPEND mailbox (flags) "date" {n}`` + message, repeated for a MULTIAPPEND."""
    if not messages:
        raise ValueError("APPEND needs at least one message")
    items: list[bytes | _Lit] = [b"APPEND", _mailbox(mailbox_wire_name(name))]
    for msg in messages:
        items.append(append_flags(msg.flags))
        if msg.internaldate:
            # INTERNALDATE comes from the server's own quoted date-time: no quote or CR in it
            items.append(b'"' + msg.internaldate.strip().encode("ascii") + b'"')
        items.append(_Lit(msg.body))
    small = all(len(m.body) <= LITERAL_MINUS_MAX for m in messages)
    return _join(items, literal_plus or (literal_minus and small))


def create(name: str) -> Parts:
    """``CREATE mailbox`` (an existing one answers NO [ALREADYEXISTS]: fine)."""
    return _join([b"CREATE", _mailbox(mailbox_wire_name(name))], False)


def select(name: str) -> Parts:
    """``SELECT mailbox``: its ``[UIDVALIDITY n]`` scopes the UIDs found by a look-up."""
    return _join([b"SELECT", _mailbox(mailbox_wire_name(name))], False)


def uid_set_members(text: str) -> list[int]:
    """``"4:6,9"`` -> ``[4, 5, 6, 9]`` (a range may run downwards: ``6:4``)."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        a, b = int(lo), int(hi or lo)
        out += range(min(a, b), max(a, b) + 1)
    return out


def appenduid(tagged: Tagged) -> tuple[int, list[int]] | None:
    """``[APPENDUID 38505 3955:3957]`` -> ``(38505, [3955, 3956, 3957])``; None without one."""
    if tagged.status != "OK" or tagged.code_name != "APPENDUID" or not tagged.code:
        return None
    words = tagged.code.split()
    if len(words) != 3:
        return None
    try:
        return int(words[1]), uid_set_members(words[2])
    except ValueError:
        return None
