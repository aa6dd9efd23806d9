"""``mailsync index``: index every message of an account's state DB that the search index lacks.

Parsing goes through the bounded process pool (:class:`foundation.offload.BatchOffload`, the
same offload a backup uses), writing in chunks of one transaction each: interrupted at any
point, a rerun indexes only the rest. A backup runs it at its end too, for whatever the backup
itself could not index (a crash between a batch's write and its index, an archive from a version
without the index).
"""

from __future__ import annotations

import asyncio
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
    pool: BatchOffload[tuple[str, MissingMessage], IndexEntry] | None = None
    # two chunks in flight: the pool parses the next one while this one's results are collected,
    # and each chunk's write (a thread) overlaps the parsing of the ones after it
    parsing: deque[tuple[list[MissingMessage], asyncio.Future[list[IndexEntry]]]] = deque()
    writes: list[asyncio.Task[int]] = []
    try:
        todo = await asyncio.to_thread(index.missing)
        run.missing = len(todo)
        if not todo:
            return run
        # a few messages (what a killed backup left) are parsed here: a pool costs ~0.5 s to start
        n = workers if len(todo) > _INLINE_BELOW else 0
        pool = BatchOffload(index_entry, workers=n, batch_size=batch, max_pending=batch * 8)
        await pool.start()

        async def collect() -> None:
            chunk, parsed = parsing.popleft()
            entries = await parsed
            if writes:
                run.indexed += await writes.pop()
            writes.append(asyncio.create_task(asyncio.to_thread(index.add, entries)))
            run.errors += sum(e.doc.error is not None for e in entries)
            run.bytes += sum(m.size for m in chunk)
            if on_progress is not None:
                on_progress(run)

        for first in range(0, len(todo), commit_every):
            chunk = todo[first : first + commit_every]
            base = str(root)
            parsing.append((chunk, asyncio.gather(*(pool.submit((base, m)) for m in chunk))))
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
