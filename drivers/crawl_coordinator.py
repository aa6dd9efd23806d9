"""The coordinator of the threads, gevent, sequential and processes crawl modes.

One coordinator (the main thread, or the main greenlet) is the only writer of the shared state.
The decisions are :class:`crawler.core.scheduler.CrawlScheduler`'s, as in the asyncio engine;
the coordinator maps them onto a :class:`Backend` (threads, greenlets, the sequential loop, or
worker processes): it leases URLs, hands the scheduler's picks to the backend, and commits each
:class:`~crawler.work.Work` that comes back exactly as the engine does: new links added and
flushed, the WARC records and pages.jsonl line written by the same
:class:`~crawler.warc.ArchiveWriter`, and only then the URL marked done. The output folder is
therefore the same as the asyncio mode's, and a run of any mode that stops at any point can be
resumed by any other mode (the ``pages_checkpoint`` is kept by the same
:class:`~crawler.core.checkpoint.PagesCheckpoint`).

A backend whose workers write the records themselves (``writes_records``: the processes mode)
returns :class:`~crawler.work.ArchivedWork` instead; the coordinator then only writes the
pages.jsonl line (:class:`~crawler.pages_commit.PagesCommitter`), in the order each worker wrote,
and asks the backend how many URLs of a host may be in flight (``host_limit``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from crawler.core.flow import FetchResult
from crawler.core.frontier import Frontier, FrontierItem
from crawler.core.scheduler import Commit
from crawler.core.urls import Scope
from crawler.ledger import CrawlLedger
from crawler.page_steps import (
    count_written,
)
from crawler.pages import CHECKPOINT_KEY, page_row, resume_checkpoint, save_checkpoint
from crawler.pages_commit import PagesCommitter
from crawler.settings import CrawlerSettings
from crawler.stats import CrawlStats
from crawler.warc import ArchiveJob, ArchiveWriter
from crawler.work import ArchivedWork, Fetched, Work

__all__ = ["CHECKPOINT_KEY", "STOP_GRACE", "Abandoned", "Backend", "Coordinator", "RunOutcome"]

STOP_GRACE = 1.0  # seconds in-flight URLs get to finish after Ctrl-C / SIGTERM (as in the engine)


class Abandoned(Exception):
    """Raised by a backend that gave up ``items`` (Ctrl-C while the sequential mode was fetching
    one): they are no longer in flight; their leases are released at the end of the run."""

    def __init__(self, items: list[FrontierItem]) -> None:
        super().__init__(f"{len(items)} item(s) abandoned")
        self.items = items


class Backend(Protocol):
    """Where URLs are fetched and parsed. ``submit`` never blocks; ``flush`` sends what
    ``submit`` buffered (``results`` does too); ``results`` waits up to ``timeout`` for at
    least one finished :class:`Work` and returns every one that is ready; a backend may tell
    a URL's fetching ended before its work (:class:`Fetched`)."""

    capacity: int

    def start(self) -> None: ...
    def submit(self, item: FrontierItem) -> None: ...
    def flush(self) -> None: ...
    def results(self, timeout: float) -> list[Work] | list[ArchivedWork | Fetched]: ...
    def close(self, abandon: bool) -> None: ...


@dataclass
class RunOutcome:
    """What :class:`drivers.crawl_run.EngineResult` holds (the dispatcher converts it)."""

    stats: CrawlStats
    interrupted: bool = False
    repaired: dict[str, Any] = field(default_factory=dict)


class Coordinator:
    def __init__(
        self,
        settings: CrawlerSettings,
        frontier: Frontier,
        backend: Backend,
        *,
        scope: Scope | None = None,
        stats: CrawlStats | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.frontier = frontier
        self.backend = backend
        self.stats = stats or CrawlStats()
        self.ledger = CrawlLedger(
            settings, frontier, scope, self.stats, on_forget=getattr(backend, "forget_links", None)
        )
        self.sched = self.ledger.sched
        self._on_tick = on_tick
        self._hard = False
        self._writer: ArchiveWriter | None = None
        self._committer: PagesCommitter | None = None
        self._robots_held: list[FetchResult] = []  # robots.txt responses not archived yet
        self._freed: set[str] = set()  # URLs in flight whose host place came back early
        self._host_limit: Callable[[str], int] | None = getattr(backend, "host_limit", None)
        watch = getattr(backend, "watch_waiting", None)
        if watch is not None:
            watch(self.stats.note_waiting)  # hosts waiting for robots.txt retries, shown live

    def stop(self) -> None:
        """First call: finish in-flight URLs, lease no more. Second: abandon them."""
        if self.sched.stopping:
            self._hard = True
        self.sched.stop()

    def run(self) -> RunOutcome:
        s = self.settings
        writer: ArchiveWriter | PagesCommitter
        size, level = s.warc_max_bytes, s.warc_gzip_level
        if getattr(self.backend, "writes_records", False):
            writer = self._committer = PagesCommitter(s.out, max_file_bytes=size, gzip_level=level)
        else:
            writer = self._writer = ArchiveWriter(s.out, max_file_bytes=size, gzip_level=level)
        report = writer.open()
        try:
            # after the writer's repair, before the leases are released
            checkpoint = resume_checkpoint(self.frontier, s.out / "pages.jsonl")
            repaired = self.ledger.begin(report, checkpoint)
            self.backend.start()
            try:
                self._loop()
            finally:
                self.backend.close(abandon=self._hard)
        finally:
            writer.close()
            self.frontier.release_leases()
            # safe however the run ends: the checkpoint only ever covers marked lines
            save_checkpoint(self.frontier, self.ledger.checkpoint, force=True)
        return RunOutcome(self.stats, interrupted=self.sched.stopping, repaired=repaired)

    def _loop(self) -> None:
        sched, capacity = self.sched, self.backend.capacity
        stop_at: float | None = None
        while True:
            try:
                if sched.stopping:
                    stop_at = stop_at or time.monotonic() + STOP_GRACE
                    if self._hard or time.monotonic() > stop_at:
                        self._hard = True
                        return
                self.ledger.lease(capacity)
                self._start(capacity)
                self.ledger.tick()
                if sched.idle:
                    wait = self.ledger.end_or_wait()
                    if wait is None:
                        return
                    time.sleep(wait)
                    continue
                works = self.backend.results(sched.wake_in())
                if self._committer is not None:
                    freed = False
                    for fetched in works:
                        if isinstance(fetched, Fetched):
                            sched.fetched(fetched.item)
                            self._freed.add(fetched.item.url)
                            freed = True
                    if freed:
                        # the freed host places are handed out before this batch's commit
                        # (frontier SQL, pages lines): at the default per_host a host's
                        # places, not the CPU, set the pace, and each waited for the commit
                        self._start(capacity)
                        self.backend.flush()
                    self._commit_archived([w for w in works if isinstance(w, ArchivedWork)])
                else:
                    for work in works:
                        assert isinstance(work, Work)
                        self._commit(work)
                save_checkpoint(self.frontier, self.ledger.checkpoint)
                if self._on_tick is not None:
                    self._on_tick()
            except Abandoned as exc:
                for item in exc.items:
                    self._host_free(item)
                    sched.done(item)
                self.stop()
            except KeyboardInterrupt:
                self.stop()

    def _start(self, capacity: int) -> None:
        """Hand the backend the leased URLs the scheduler lets start now."""
        for item in self.sched.start(capacity, host_limit=self._host_limit):
            self.backend.submit(item)

    def _settle(self, item: FrontierItem, retries: int, later: float | None, robots: Any) -> bool:
        """True when the URL that came back is to be archived now."""
        self._host_free(item)
        self.sched.done(item)
        return isinstance(self.ledger.settle(item, retries, later, robots), Commit)

    def _host_free(self, item: FrontierItem) -> None:
        """The URL's host place is free: once, whether told early (Fetched) or with its work."""
        if item.url in self._freed:
            self._freed.discard(item.url)
        else:
            self.sched.fetched(item)

    def _commit(self, work: Work) -> None:
        item, outcome, parsed = work.item, work.outcome, work.parsed
        self._robots_held.extend(work.robots_records)  # archived with the next line written
        if not self._settle(item, outcome.retries, outcome.retry_later, work.robots):
            return
        self.ledger.page_links(item, outcome, parsed)
        self._flush_links()  # durable before the line that says this page is archived
        row, error_class = page_row(item, outcome, parsed)
        assert self._writer is not None
        checkpoint = self.ledger.checkpoint
        checkpoint.begin()
        written = self._writer.write(ArchiveJob(outcome.hops, row, tuple(self._robots_held)))
        self._robots_held.clear()
        (self.frontier.complete if error_class is None else self.frontier.fail)(item.url)
        checkpoint.marked(written.pages_offset)
        count_written(self.stats, item.url, row, outcome.hops, written.row)

    def _commit_archived(self, works: list[ArchivedWork]) -> None:
        """Commit URLs whose records the workers wrote: the links of the whole batch in one
        frontier commit, then each line in arrival order (each worker's write order), then the
        marks. Every archived result is committed, even when stopping: skipping one would leave
        records in the middle of its worker's file that no line names."""
        kept: list[ArchivedWork] = []
        for work in works:
            # the worker archived nothing (row None) when the URL is to be tried again
            later = work.retry_later if work.row is None else None
            self._settle(work.item, work.retries, later, work.robots)
            if work.row is not None:
                self.ledger.add(self.sched.links(work.item, work.links, work.sitemap))
                kept.append(work)
        assert self._committer is not None
        if kept:
            self._flush_links()
            # begin()/marked() bracket the batch: an interruption between the lines and the
            # marks freezes the checkpoint instead of letting it pass unmarked lines
            self.ledger.checkpoint.begin()
            end = self._committer.commit_batch(kept, self.frontier, self.stats)
            self.ledger.checkpoint.marked(end)
        self._committer.flush()

    def _flush_links(self) -> None:
        flush = getattr(self.frontier, "flush", None)
        if flush is not None:
            flush()
