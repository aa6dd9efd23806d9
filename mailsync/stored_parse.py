"""Parsing a stored message file: what a backup's parser worker runs on each message it is sent.

:func:`parse_stored` takes the file's path, not its bytes, so a batch crosses the process
boundary as a few hundred bytes of paths instead of megabytes of bodies; the worker reads the
file back from the page cache. This module imports only the two pure parsers: a spawned worker
imports the module of the function it runs, and :mod:`mailsync.indexer` (which re-exports these)
also pulls in the search index and SQLite, ~8 MB more per worker for nothing.
"""

from __future__ import annotations

import os

from mailsync.core.headers import MAX_HEADER_BYTES, HeaderInfo, parse_headers
from mailsync.core.mime import IndexDoc, extract

__all__ = ["READ_CAP", "Parsed", "failed", "parse_doc", "parse_headers_only", "parse_stored"]

READ_CAP = 16 * 1024 * 1024  # bytes of one message read for indexing (text and names come first)

# the state's header fields, and the index document (None: the backup does not index)
Parsed = tuple[HeaderInfo, IndexDoc | None]


def failed(problem: str) -> tuple[HeaderInfo, IndexDoc]:
    """What a message that could not be read at all is indexed as."""
    return (
        HeaderInfo(None, None, None, None, None, problem[:300]),
        IndexDoc("", "", "", "", "", "", None, "", (), problem[:300]),
    )


def _read(path: str) -> bytes:
    # the size first: read(READ_CAP) would allocate the whole cap for every small message
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        return fh.read(min(size, READ_CAP) + 1)[:READ_CAP]


def parse_stored(path: str) -> Parsed:
    """The header fields (state DB) and the index document of the message file at ``path``;
    never raises (top level: it runs in the process pool)."""
    try:
        raw = _read(path)
    except OSError as exc:
        return failed(f"unreadable file: {exc.strerror or exc}")
    return parse_headers(raw), extract(raw)


def parse_headers_only(path: str) -> Parsed:
    """The header fields alone (a backup with ``index = false``); never raises."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(MAX_HEADER_BYTES + 4)
    except OSError as exc:
        return failed(f"unreadable file: {exc.strerror or exc}")[0], None
    return parse_headers(head), None


def parse_doc(path: str) -> IndexDoc:
    """The index document alone (``mailsync index`` keeps the state's header fields)."""
    try:
        raw = _read(path)
    except OSError as exc:
        return failed(f"unreadable file: {exc.strerror or exc}")[1]
    return extract(raw)
