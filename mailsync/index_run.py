"""``mailsync index``: index every message of an account's state DB that the search index lacks.

Parsing goes through the bounded process pool (:class:`foundation.offload.BatchOffload`, the
same offload a backup uses), writing in chunks of one transaction each: interrupted at any
point, a rerun indexes only the rest. A backup with ``index = true`` runs it at its end too, for
whatever the backup itself could not index (a crash between a batch's write and its index, an
archive from a version without the index); search, report and ``--query`` run it first when the
index lacks messages (``fetchlab.mail_index_cli.catch_up``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from foundation.offload import BatchOffload
from mailsync.indexer import index_entry
from mailsync.search_index import IndexEntry, MissingMessage, SearchIndex

__all__ = ["IndexRun", "index_archive"]

_INLINE_BELOW = 256


@dataclass
class IndexRun:
    """What :func:`index_archive` did."""

    missing: int = 0
    indexed: int = 0
    errors: int = 0  # messages indexed with a parse problem
    seconds: float = 0.0
    bytes: int = 0


async def index_archive(
    root: Path,
    *,
    workers: int = 2,
    batch: int = 128,
    commit_every: int = 512,
    on_progress: Callable[[IndexRun], None] | None = None,
) -> IndexRun:
    """Index every message of the archive at ``root`` that the index lacks (run it under the
    archive's lock). ``workers=0`` parses inline."""
    start = time.monotonic()
    run = IndexRun()
    index = await asyncio.to_thread(SearchIndex, root)
    # pages are read while the previous chunk is written: one connection, one thread at a time
    lock = threading.Lock()

    def page_after(last: MissingMessage | None) -> list[MissingMessage]:
        with lock:
            return index.missing(last, commit_every)

    def add(entries: list[IndexEntry]) -> int:
        with lock:
            return index.add(entries)

    pool: BatchOffload[tuple[str, MissingMessage], IndexEntry] | None = None
    # two chunks in flight: the pool parses the next one while this one's results are collected,
    # and each chunk's write (a thread) overlaps the parsing of the ones after it
    parsing: deque[tuple[list[MissingMessage], asyncio.Future[list[IndexEntry]]]] = deque()
    writes: list[asyncio.Task[int]] = []
    try:
        # the gaps are read a page at a time (one page ahead of the parser): memory does not
        # follow the archive's size
        page = await asyncio.to_thread(page_after, None)
        if not page:
            return run
        # a few messages (what a killed backup left) are parsed here: a pool costs ~0.5 s to start
        n = workers if len(page) > _INLINE_BELOW else 0
        pool = BatchOffload(index_entry, workers=n, batch_size=batch, max_pending=batch * 8)
        await pool.start()

        async def collect() -> None:
            chunk, parsed = parsing.popleft()
            entries = await parsed
            if writes:
                run.indexed += await writes.pop()
            writes.append(asyncio.create_task(asyncio.to_thread(add, entries)))
            run.errors += sum(e.doc.error is not None for e in entries)
            run.bytes += sum(m.size for m in chunk)
            if on_progress is not None:
                on_progress(run)

        base = str(root)
        while page:
            run.missing += len(page)
            parsing.append((page, asyncio.gather(*(pool.submit((base, m)) for m in page))))
            last = page[-1]
            page = await asyncio.to_thread(page_after, last) if len(page) == commit_every else []
            if len(parsing) == 2:
                await collect()
        while parsing:
            await collect()
        if writes:
            run.indexed += await writes.pop()
    finally:
        for _, parsed in parsing:  # a failed write: parsing further is pointless
            parsed.cancel()
        if parsing or writes:
            await asyncio.gather(*(p for _, p in parsing), *writes, return_exceptions=True)
        if pool is not None:
            await pool.aclose()
        await asyncio.to_thread(index.close)
        run.seconds = time.monotonic() - start
    return run
