"""Parsing stored messages for the state's header fields and the search index (no asyncio here:
the gevent mode imports it).

:func:`parse_stored` (in :mod:`mailsync.stored_parse`, re-exported here) is what every backup
mode runs on each message it has just stored (in the process pool in the asyncio mode, inline in
the blocking ones); :func:`index_entry` is ``mailsync index``'s pool function.
"""

from __future__ import annotations

from foundation.errors import MailError
from mailsync.core.parser import parse_internaldate
from mailsync.search_index import IndexEntry, MissingMessage
from mailsync.stored_parse import (
    READ_CAP,
    Parsed,
    failed,
    parse_doc,
    parse_headers_only,
    parse_stored,
)

__all__ = [
    "READ_CAP",
    "Parsed",
    "failed",
    "index_entry",
    "internaldate_stamp",
    "parse_doc",
    "parse_headers_only",
    "parse_stored",
]


def index_entry(task: tuple[str, MissingMessage]) -> IndexEntry:
    """``mailsync index``'s pool function: (archive root, message) -> the row to write, built
    whole in the worker so the parent only writes."""
    root, m = task
    return IndexEntry(
        m.folder,
        m.uidvalidity,
        m.uid,
        m.size,
        internaldate_stamp(m.internaldate),
        parse_doc(f"{root}/{m.path}"),
    )


def internaldate_stamp(internaldate: str | None) -> float | None:
    if not internaldate:
        return None
    try:
        return parse_internaldate(internaldate).timestamp()
    except (MailError, ValueError, OverflowError):
        return None
