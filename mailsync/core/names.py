"""Decoded IMAP folder names -> safe relative paths that keep the hierarchy.

Each level of the name (split on the server's delimiter) becomes one path segment. Unsafe
characters are escaped, never dropped, so the mapping is injective (two different names never
share a path) and stable (the same name always gives the same path):

* ``%`` itself -> ``%25``; ``/`` and ``\\`` -> ``%2F`` / ``%5C``; control characters (C0, DEL,
  C1) -> ``%XX``; Windows-forbidden ``< > : " | ? *`` -> ``%XX``; a lone surrogate -> ``%uXXXX``;
* a leading ``.`` (hidden files, ``.`` and ``..``), a trailing ``.`` or space (Windows strips
  them) -> ``%2E`` / ``%20``;
* Windows device names (``CON``, ``nul.txt``, ``COM1``...) and Maildir's own ``cur``/``new``/
  ``tmp`` (a child folder must not land inside its parent's Maildir) get their first letter
  escaped: ``cur`` -> ``%63ur``;
* an empty level (``a//b``, a trailing delimiter, the empty name) -> ``%``;
* a segment over 200 UTF-8 bytes is cut and ends in ``%~`` + 16 hex digits of its SHA-256.

No segment ever starts with ``.``: the archive's own files live in :data:`INTERNAL_DIR`
(``.fetchlab``) and ``.spill`` beside the folders, where no server folder can reach them.

Every ``%`` the mapping writes is followed by two hex digits, ``u``, ``~`` or nothing (the
empty level) -- and a literal ``%`` in a name is always escaped -- which is why no two names
collide. Letter case is kept: on a case-insensitive file system ``Foo`` and ``foo`` still meet.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

__all__ = ["INTERNAL_DIR", "MAX_SEGMENT_BYTES", "safe_relpath", "safe_segment"]

# the archive's own folder (state DB, lock): a leading dot, which no mapped segment has
INTERNAL_DIR = ".fetchlab"
MAX_SEGMENT_BYTES = 200  # below NAME_MAX (255) on every common file system
_HASH_CHARS = 16

_UNSAFE = re.compile(r'[%/\\\x00-\x1f\x7f-\x9f<>:"|?*]|[\ud800-\udfff]')
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CUR", "NEW", "TMP"]
    + [f"COM{i}" for i in range(10)]
    + [f"LPT{i}" for i in range(10)]
    + ["COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"]
)


def _escape_char(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"%u{code:04X}" if code >= 0xD800 else f"%{code:02X}"


def _hex(c: str) -> str:
    return f"%{ord(c):02X}"


def _truncate(segment: str) -> str:
    raw = segment.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_SEGMENT_BYTES:
        return segment
    digest = hashlib.sha256(raw).hexdigest()[:_HASH_CHARS]
    keep = MAX_SEGMENT_BYTES - len(digest) - 2
    head = raw[:keep].decode("utf-8", "ignore")  # never cut a character in half
    # A cut may leave a trailing dot or space, or half an escape: neither matters, the
    # "%~" suffix makes the segment unique and non-empty.
    return f"{head}%~{digest}"


def safe_segment(level: str) -> str:
    """One level of a folder name as a safe, non-empty file name."""
    if not level:
        return "%"
    out = _UNSAFE.sub(_escape_char, level)
    if out[0] == ".":
        out = "%2E" + out[1:]
    if out[-1] in ". ":
        out = out[:-1] + _hex(out[-1])
    if out.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        out = _hex(out[0]) + out[1:]
    return _truncate(out)


def safe_relpath(decoded_name: str, delimiter: str | None) -> PurePosixPath:
    """Map a decoded folder name to a relative path (one segment per hierarchy level)."""
    levels = decoded_name.split(delimiter) if delimiter else [decoded_name]
    return PurePosixPath(*(safe_segment(level) for level in levels))
