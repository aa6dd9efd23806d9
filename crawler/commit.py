"""The asyncio side of the commit protocol: archive writes, group commit, in-order acknowledgements.

For each fetched URL (see :mod:`crawler.warc` for why this order makes SIGKILL safe):

1. links found in the page are already added to the frontier; one frontier commit covers every
   page that finished in the same event-loop tick (group commit) before their jobs are written;
2. the writer appends the WARC records, the index lines and the ``pages.jsonl`` line, on the
   loop's thread (as a processes-mode worker does): in a thread of its own it cost ~1.7x its
   CPU, every GIL hand-over between it and the loop being a futex wake-up and a context switch
   (20,000-page site, 2026-12-07: writer thread 0.28 ms a page against 0.16 alone);
3. back on the loop, in write order, the URLs are marked done (or failed) in the frontier, many
   per statement, and ``pages_checkpoint`` (the pages.jsonl offset up to which every line is
   marked) advances; it is saved in the frontier about once a second.

At start-up, lines after the saved checkpoint are applied to the frontier
(:func:`crawler.pages.resume_checkpoint`): URLs the crashed run had marked stay as they are,
URLs it still held are marked at once, and URLs queued again are marked instead of fetched when
leased (:meth:`CommitPipeline.take_committed`). The bookkeeping is
:class:`crawler.core.checkpoint.PagesCheckpoint`, shared with the other modes' coordinator.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from typing import Any

from crawler.core.checkpoint import PagesCheckpoint
from crawler.core.flow import FetchResult
from crawler.core.frontier import Frontier, FrontierItem
from crawler.page_steps import complete_all
from crawler.pages import CHECKPOINT_EVERY, CHECKPOINT_KEY, resume_checkpoint, save_checkpoint
from crawler.warc import ArchiveJob, ArchiveWriter, RepairReport, WrittenPage
from foundation.errors import StorageError

__all__ = ["CHECKPOINT_EVERY", "CHECKPOINT_KEY", "CommitPipeline"]


@dataclass
class _Token:
    item: FrontierItem
    ok: bool
    future: asyncio.Future[WrittenPage]


class CommitPipeline:
    """Owns the archive writer; loop-only."""

    def __init__(self, frontier: Frontier, writer: ArchiveWriter) -> None:
        self.frontier = frontier
        self._writer = writer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._to_submit: list[tuple[_Token, ArchiveJob]] = []
        self._acks: list[tuple[_Token, WrittenPage]] = []
        self._links_dirty = False
        self.checkpoint = PagesCheckpoint(every=CHECKPOINT_EVERY)
        self.error: BaseException | None = None  # set when the writer failed (disk full...)

    async def open(self) -> RepairReport:
        """Open the archive (repairing what a crash left) and load the checkpoint."""
        self._loop = asyncio.get_running_loop()
        # on the loop's thread, where the writer's SQLite connection is used: nothing else runs
        # before the archive is open
        report = self._writer.open()
        # after the repair (complete lines only), before the engine releases the leases
        self.checkpoint = resume_checkpoint(self.frontier, self._writer.out / "pages.jsonl")
        return report

    def take_committed(self, item: FrontierItem) -> bool:
        """True when ``item`` was archived before a crash; it is then marked, not fetched."""
        return self.checkpoint.take(self.frontier, item.url)

    def links_added(self) -> None:
        """New links went into the frontier: commit them before the next pages line."""
        self._links_dirty = True

    async def write(
        self,
        item: FrontierItem,
        ok: bool,
        hops: tuple[FetchResult, ...],
        row: dict[str, Any],
        robots: tuple[FetchResult, ...] = (),
    ) -> WrittenPage:
        """Archive one URL (after ``robots``, the robots.txt fetches not archived yet); returns
        once its line is written and the URL marked in the frontier."""
        assert self._loop is not None
        fut: asyncio.Future[WrittenPage] = self._loop.create_future()
        if not self._to_submit:
            self._loop.call_soon(self._submit_jobs)
        self._to_submit.append((_Token(item, ok, fut), ArchiveJob(hops, row, robots)))
        # shielded: on Ctrl-C the write still completes and is acknowledged in order
        return await asyncio.shield(fut)

    def _submit_jobs(self) -> None:
        jobs, self._to_submit = self._to_submit, []
        flush = getattr(self.frontier, "flush", None)
        if flush is not None and self._links_dirty:
            flush()
            self._links_dirty = False
        for token, job in jobs:
            result: WrittenPage | BaseException
            try:
                result = self._writer.write(job)
            except (OSError, sqlite3.Error) as exc:
                result = StorageError(f"cannot write the archive: {exc}")
            except Exception as exc:  # a bug: this URL fails and the engine stops, as for a disk
                result = exc
            self._on_written(token, result)

    def _on_written(self, token: _Token, result: WrittenPage | BaseException) -> None:
        assert self._loop is not None
        if isinstance(result, BaseException):
            self.error = result
            if not token.future.done():
                token.future.set_exception(result)
            return
        if not self._acks:
            self._loop.call_soon(self._apply_acks)
        self._acks.append((token, result))

    def _apply_acks(self) -> None:
        acks, self._acks = self._acks, []
        if not acks:
            return
        self.checkpoint.begin()
        done = [t.item.url for t, _ in acks if t.ok]
        complete_all(self.frontier, done)
        for token, _ in acks:
            if not token.ok:
                self.frontier.fail(token.item.url)
        # acknowledgements come in write order: every line up to the last one is marked now
        self.checkpoint.marked(acks[-1][1].pages_offset)
        for token, result in acks:
            if not token.future.done():
                token.future.set_result(result)

    def save_checkpoint(self, force: bool = False) -> None:
        """Save how far pages.jsonl is marked in the frontier (at most once a second)."""
        save_checkpoint(self.frontier, self.checkpoint, force=force)

    async def close(self) -> None:
        """Write what is queued, close the files, apply the last acknowledgements."""
        if self._to_submit:
            self._submit_jobs()
        self._writer.close()
        self._apply_acks()
        self.save_checkpoint(force=True)
