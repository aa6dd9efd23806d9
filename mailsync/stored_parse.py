"""Parsing a stored message file for the search index: what a backup's (and ``mailsync index``'s)
parser worker runs on each message it is sent. The state's header fields are not read here: the
store reads them from the bytes as it writes the file (:mod:`mailsync.store`).

:func:`parse_doc` takes the file's path, not its bytes, so a batch crosses the process
boundary as a few hundred bytes of paths instead of megabytes of bodies; the worker reads the
file back from the page cache. This module imports only the pure MIME walk: a spawned worker
imports the module of the function it runs, and :mod:`mailsync.indexer` (which re-exports these)
also pulls in the search index and SQLite, ~8 MB more per worker for nothing.
"""

from __future__ import annotations

import os

from mailsync.core.mime import IndexDoc, extract

__all__ = ["READ_CAP", "failed", "parse_doc"]

READ_CAP = 16 * 1024 * 1024  # bytes of one message read for indexing (text and names come first)


def failed(problem: str) -> IndexDoc:
    """What a message that could not be read at all is indexed as."""
    return IndexDoc("", "", "", "", "", "", None, "", (), problem[:300])


def _read(path: str) -> bytes:
    # the size first: read(READ_CAP) would allocate the whole cap for every small message
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        return fh.read(min(size, READ_CAP) + 1)[:READ_CAP]


def parse_doc(path: str) -> IndexDoc:
    """The index document of the message file at ``path``; never raises (top level: it runs in
    the process pool)."""
    try:
        raw = _read(path)
    except OSError as exc:
        return failed(f"unreadable file: {exc.strerror or exc}")
    return extract(raw)
