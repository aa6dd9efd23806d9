"""Pure Maildir naming: which file name and which sub-folder a message gets.

A message's base name is ``<uidvalidity>.<uid>.<host>,S=<size>`` -- built from the server's
identity of the message, not from the clock or the PID, so a re-run (or a crash and resume) maps
the same message to the same file: writes are idempotent. Flags travel in the info part
``:2,<letters>`` (https://cr.yp.to/proto/maildir.html): D draft, F flagged, P passed, R replied
(\\Answered), S seen, T trashed (\\Deleted), in ASCII order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MaildirName",
    "flags_to_info",
    "info_to_flags",
    "message_filename",
    "parse_filename",
    "subdir_for",
]

_FLAG_LETTER = {
    "\\DRAFT": "D",
    "\\FLAGGED": "F",
    "$FORWARDED": "P",
    "\\ANSWERED": "R",
    "\\SEEN": "S",
    "\\DELETED": "T",
}
_LETTER_FLAG = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_NAME = re.compile(r"(\d+)\.(\d+)\.([A-Za-z0-9_-]+),S=(\d+)(?::2,([A-Za-z]*))?")


def flags_to_info(flags: Iterable[str]) -> str:
    """IMAP flags -> sorted Maildir info letters; keywords and \\Recent have no letter."""
    return "".join(sorted({_FLAG_LETTER[f.upper()] for f in flags if f.upper() in _FLAG_LETTER}))


def info_to_flags(info: str) -> frozenset[str]:
    """Maildir info letters (with or without the ``2,`` prefix) -> IMAP flags."""
    if info.startswith("2,"):
        info = info[2:]
    return frozenset(_LETTER_FLAG[c] for c in info if c in _LETTER_FLAG)


def subdir_for(flags: Iterable[str]) -> Literal["cur", "new"]:
    """``new`` for a message with no Maildir-visible flag (unseen, untouched), else ``cur``."""
    return "cur" if flags_to_info(flags) else "new"


def message_filename(
    uidvalidity: int, uid: int, size: int, flags: Iterable[str], host: str = "mailsync"
) -> str:
    """``"<uidvalidity>.<uid>.<host>,S=<size>:2,<info>"``; ``host`` is made file-name safe."""
    if uidvalidity < 0 or uid < 0 or size < 0:
        raise ValueError("uidvalidity, uid and size must be >= 0")
    safe_host = _HOST_UNSAFE.sub("_", host) or "mailsync"
    return f"{uidvalidity}.{uid}.{safe_host},S={size}:2,{flags_to_info(flags)}"


@dataclass(frozen=True, slots=True)
class MaildirName:
    uidvalidity: int
    uid: int
    host: str
    size: int
    info: str


def parse_filename(name: str) -> MaildirName | None:
    """Read back a name made by :func:`message_filename`; None for foreign files."""
    m = _NAME.fullmatch(name)
    if m is None:
        return None
    return MaildirName(int(m[1]), int(m[2]), m[3], int(m[4]), m[5] or "")
