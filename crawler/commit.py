"""The asyncio side of the commit protocol: writer thread, group commit, in-order acknowledgements.

For each fetched URL (see :mod:`crawler.warc` for why this order makes SIGKILL safe):

1. links found in the page are already added to the frontier; one frontier commit covers every
   page that finished in the same event-loop tick (group commit) before their jobs go to the
   writer thread;
2. the writer thread appends the WARC records, the index lines and the ``pages.jsonl`` line;
3. back on the loop, in write order, the URLs are marked done (or failed) in the frontier, many
   per statement, and ``pages_checkpoint`` (the pages.jsonl offset up to which every line is
   marked) advances; it is saved in the frontier about once a second.

At start-up, lines after the saved checkpoint are loaded: their URLs may still be queued in the
frontier (the crash came between the line and the mark), and are applied when leased again
instead of being fetched twice (:meth:`CommitPipeline.take_committed`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawler.core.flow import FetchResult
from crawler.core.frontier import Frontier, FrontierItem
from crawler.core.urls import fingerprint
from crawler.pages import CHECKPOINT_KEY, committed_after
from crawler.shared import complete_all
from crawler.warc import ArchiveJob, ArchiveThread, ArchiveWriter, RepairReport, WrittenPage

__all__ = ["CHECKPOINT_EVERY", "CHECKPOINT_KEY", "CommitPipeline"]

CHECKPOINT_EVERY = 1.0  # seconds between pages checkpoints saved in the frontier


@dataclass
class _Token:
    item: FrontierItem
    ok: bool
    future: asyncio.Future[WrittenPage]


class CommitPipeline:
    """Owns the writer thread; every method but :meth:`open`/:meth:`close` is loop-only."""

    def __init__(self, frontier: Frontier, writer: ArchiveWriter) -> None:
        self.frontier = frontier
        self._writer = writer
        self._thread = ArchiveThread(writer, self._on_written_threadsafe)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._to_submit: list[tuple[_Token, ArchiveJob]] = []
        self._acks: list[tuple[_Token, WrittenPage]] = []
        self._links_dirty = False
        self._checkpoint = 0
        self._checkpoint_saved = 0
        self._saved_at = 0.0
        self._committed: dict[bytes, bool] = {}  # lines after the checkpoint: fp -> ok
        self.error: BaseException | None = None  # set when the writer failed (disk full...)

    async def open(self) -> RepairReport:
        """Start the writer thread (it repairs what a crash left) and load the checkpoint."""
        self._loop = asyncio.get_running_loop()
        report = await asyncio.wrap_future(self._thread.start())
        self._load_checkpoint(self._writer.out / "pages.jsonl")
        return report

    def _load_checkpoint(self, pages: Path) -> None:
        loaded = committed_after(self.frontier, pages)
        if loaded is not None:
            self._checkpoint = self._checkpoint_saved = loaded[0]
            self._committed.update(loaded[1])

    def take_committed(self, item: FrontierItem) -> bool:
        """True when ``item`` was archived before a crash; it is then marked, not fetched."""
        ok = self._committed.pop(fingerprint(item.url), None)
        if ok is None:
            return False
        (self.frontier.complete if ok else self.frontier.fail)(item.url)
        return True

    def links_added(self) -> None:
        """New links went into the frontier: commit them before the next pages line."""
        self._links_dirty = True

    async def write(
        self, item: FrontierItem, ok: bool, hops: tuple[FetchResult, ...], row: dict[str, Any]
    ) -> WrittenPage:
        """Archive one URL; returns once its line is written and the URL marked in the frontier."""
        assert self._loop is not None
        fut: asyncio.Future[WrittenPage] = self._loop.create_future()
        if not self._to_submit:
            self._loop.call_soon(self._submit_jobs)
        self._to_submit.append((_Token(item, ok, fut), ArchiveJob(hops, row)))
        # shielded: on Ctrl-C the write still completes and is acknowledged in order
        return await asyncio.shield(fut)

    def _submit_jobs(self) -> None:
        jobs, self._to_submit = self._to_submit, []
        flush = getattr(self.frontier, "flush", None)
        if flush is not None and self._links_dirty:
            flush()
            self._links_dirty = False
        for token, job in jobs:
            self._thread.submit(token, job)

    def _on_written_threadsafe(self, token: object, result: WrittenPage | BaseException) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._on_written, token, result)

    def _on_written(self, token: object, result: WrittenPage | BaseException) -> None:
        assert isinstance(token, _Token) and self._loop is not None
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
        done = [t.item.url for t, _ in acks if t.ok]
        complete_all(self.frontier, done)
        for token, _ in acks:
            if not token.ok:
                self.frontier.fail(token.item.url)
        self._checkpoint = acks[-1][1].pages_offset
        for token, result in acks:
            if not token.future.done():
                token.future.set_result(result)

    def save_checkpoint(self, force: bool = False) -> None:
        """Save how far pages.jsonl is marked in the frontier (at most once a second)."""
        set_meta = getattr(self.frontier, "set_meta", None)
        if set_meta is None or self._checkpoint == self._checkpoint_saved:
            return
        if self._committed:
            # lines from before the crash not yet applied (their URL was not leased again yet):
            # moving the checkpoint past them would forget them and fetch their URLs twice
            return
        now = time.monotonic()
        if force or now - self._saved_at >= CHECKPOINT_EVERY:
            set_meta(CHECKPOINT_KEY, str(self._checkpoint))
            self._checkpoint_saved = self._checkpoint
            self._saved_at = now

    async def close(self) -> None:
        """Write what is queued, close the files, apply the last acknowledgements."""
        if self._to_submit:
            self._submit_jobs()
        await asyncio.to_thread(self._thread.close)
        # the writer's callbacks ran before to_thread's own; their batch may still be queued
        await asyncio.sleep(0)
        self._apply_acks()
        self.save_checkpoint(force=True)
