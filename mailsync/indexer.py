"""Parsing stored messages for the search index (no asyncio here: the gevent mode imports it).

:func:`parse_doc` (in :mod:`mailsync.stored_parse`, re-exported here) is what every backup mode
that indexes runs on each message it has just stored (in the process pool in the asyncio mode,
inline in the blocking ones); :func:`index_entry` is ``mailsync index``'s pool function.
"""

from __future__ import annotations

from foundation.errors import MailError
from mailsync.core.parser import parse_internaldate
from mailsync.search_index import IndexEntry, MissingMessage
from mailsync.stored_parse import READ_CAP, failed, parse_doc

__all__ = [
    "READ_CAP",
    "failed",
    "index_entry",
    "internaldate_stamp",
    "parse_doc",
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
