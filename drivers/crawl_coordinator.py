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

from crawler.core.checkpoint import PagesCheckpoint
from crawler.core.frontier import Frontier, FrontierItem, NewURL
from crawler.core.robots import RobotsRules
from crawler.core.scheduler import Commit, CrawlScheduler, Plan, Retry
from crawler.core.urls import Scope
from crawler.page_steps import (
    complete_all,
    count_page,
    count_written,
    follows_links,
    scheduler_config,
    sitemap_links,
)
from crawler.pages import CHECKPOINT_KEY, page_row, resume_checkpoint, save_checkpoint
from crawler.pages_commit import PagesCommitter
from crawler.settings import CrawlerSettings
from crawler.stats import CrawlStats
from crawler.warc import ArchiveJob, ArchiveWriter
from crawler.work import ArchivedWork, Work

__all__ = ["CHECKPOINT_KEY", "STOP_GRACE", "Abandoned", "Backend", "Coordinator", "RunOutcome"]

STOP_GRACE = 15.0  # seconds in-flight URLs get to finish after Ctrl-C (as in the engine)


class Abandoned(Exception):
    """Raised by a backend that gave up ``items`` (Ctrl-C while the sequential mode was fetching
    one): they are no longer in flight; their leases are released at the end of the run."""

    def __init__(self, items: list[FrontierItem]) -> None:
        super().__init__(f"{len(items)} item(s) abandoned")
        self.items = items


class Backend(Protocol):
    """Where URLs are fetched and parsed. ``submit`` never blocks; ``results`` waits up to
    ``timeout`` for at least one finished :class:`Work` and returns every one that is ready."""

    capacity: int

    def start(self) -> None: ...
    def submit(self, item: FrontierItem) -> None: ...
    def results(self, timeout: float) -> list[Work] | list[ArchivedWork]: ...
    def close(self, abandon: bool) -> None: ...


@dataclass
class RunOutcome:
    """What :class:`drivers.crawl_asyncio.EngineResult` holds (the dispatcher converts it)."""

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
        self.sched = CrawlScheduler(scheduler_config(settings), scope)
        self._on_tick = on_tick
        self._hard = False
        self._checkpoint = PagesCheckpoint()
        self._counted_at = 0.0
        self._writer: ArchiveWriter | None = None
        self._committer: PagesCommitter | None = None
        self._host_limit: Callable[[str], int] | None = getattr(backend, "host_limit", None)

    def stop(self) -> None:
        """First call: finish in-flight URLs, lease no more. Second: abandon them."""
        if self.sched.stopping:
            self._hard = True
        self.sched.stop()

    # ------------------------------------------------------------------------------------- run
    def run(self) -> RunOutcome:
        s = self.settings
        writer: ArchiveWriter | PagesCommitter
        size, level = s.warc_max_bytes, s.warc_gzip_level
        if getattr(self.backend, "writes_records", False):
            writer = self._committer = PagesCommitter(s.out, max_file_bytes=size, gzip_level=level)
        else:
            writer = self._writer = ArchiveWriter(s.out, max_file_bytes=size, gzip_level=level)
        report = writer.open()
        repaired = {
            "pages_truncated": report.pages_truncated,
            "warc_truncated": report.warc_truncated,
            "files_removed": list(report.files_removed),
        }
        try:
            # after the writer's repair, before the leases are released
            self._checkpoint = resume_checkpoint(self.frontier, s.out / "pages.jsonl")
            self.frontier.release_leases()
            counts = self.frontier.counts()
            self.stats.previous = self.sched.previous = counts.done + counts.failed
            self.backend.start()
            try:
                self._loop()
            finally:
                self.backend.close(abandon=self._hard)
        finally:
            writer.close()
            self.frontier.release_leases()
            # safe however the run ends: the checkpoint only ever covers marked lines
            save_checkpoint(self.frontier, self._checkpoint, force=True)
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
                mono = time.monotonic()
                want = sched.lease_want(mono, capacity)
                if want:
                    items = self.frontier.lease(want, time.time())
                    fresh = [i for i in items if not self._already_committed(i)]
                    sched.leased(fresh, len(items) < want, mono)
                for item in sched.start(capacity, host_limit=self._host_limit):
                    self.backend.submit(item)
                self.stats.in_flight = sched.in_flight
                if sched.idle:
                    wait = sched.end_or_wait(self.frontier.next_ready_at(), time.time())
                    if wait is None:
                        return
                    time.sleep(wait)
                    continue
                self._commit_all(self.backend.results(sched.wake_in()))
                if time.monotonic() - self._counted_at > 0.25:
                    self.stats.queued = self.frontier.counts().queued + sched.buffered
                    self._counted_at = time.monotonic()
                save_checkpoint(self.frontier, self._checkpoint)
                if self._on_tick is not None:
                    self._on_tick()
            except Abandoned as exc:
                for item in exc.items:
                    sched.fetched(item)
                    sched.done(item)
                self.stop()
            except KeyboardInterrupt:
                self.stop()

    def _already_committed(self, item: FrontierItem) -> bool:
        if self._checkpoint.take(self.frontier, item.url):
            # committed to pages.jsonl before a crash: marked now, not fetched twice
            self.stats.skipped += 1
            return True
        return False

    # -------------------------------------------------------------------------------- commit
    def _commit_all(self, works: list[Work] | list[ArchivedWork]) -> None:
        if self._committer is not None:
            self._commit_archived([w for w in works if isinstance(w, ArchivedWork)])
            self._committer.flush()
            return
        for work in works:
            assert isinstance(work, Work)
            self._commit(work)

    def _plan(
        self,
        item: FrontierItem,
        retries: int,
        retry_later: float | None,
        robots: tuple[tuple[str, RobotsRules], ...],
    ) -> Plan:
        """The scheduler's verdict on a URL that came back; a retry is queued here."""
        self.sched.fetched(item)
        self.sched.done(item)
        for host, rules in robots:
            self._add(self.sched.robots_learned(host, item.url, rules))
        self.stats.retries += retries
        plan = self.sched.finish(item, retry_later, time.time())
        if isinstance(plan, Retry):
            self.frontier.retry(item.url, plan.not_before)
        if not isinstance(plan, Commit):  # when stopping, the lease is simply released
            self.stats.skipped += 1
        return plan

    def _commit(self, work: Work) -> None:
        item, outcome, parsed = work.item, work.outcome, work.parsed
        plan = self._plan(item, outcome.retries, outcome.retry_later, work.robots)
        if not isinstance(plan, Commit):
            return
        row, error_class = page_row(item, outcome, parsed)
        final = outcome.final
        if follows_links(self.settings, outcome, parsed):
            assert parsed is not None and final is not None
            self._add(self.sched.links(item, parsed.links, sitemap_links(self.settings, final)))
        self._flush_links()  # durable before the line that says this page is archived
        assert self._writer is not None
        self._checkpoint.begin()
        written = self._writer.write(ArchiveJob(outcome.hops, row))
        (self.frontier.complete if error_class is None else self.frontier.fail)(item.url)
        self._checkpoint.marked(written.pages_offset)
        count_written(self.stats, item.url, row, outcome.hops, written.row)

    def _commit_archived(self, works: list[ArchivedWork]) -> None:
        """Commit URLs whose records the workers wrote: the links of the whole batch in one
        frontier commit, then each line in arrival order (each worker's write order), then the
        marks. Every archived result is committed, even when stopping: skipping one would leave
        records in the middle of its worker's file that no line names."""
        kept: list[ArchivedWork] = []
        for work in works:
            item = work.item
            # the worker archived nothing when the URL is to be tried again (row None)
            later = work.retry_later if work.row is None else None
            self._plan(item, work.retries, later, work.robots)
            if work.row is None:
                continue
            self._add(self.sched.links(item, work.links, work.sitemap))
            kept.append(work)
        if not kept:
            return
        self._flush_links()
        assert self._committer is not None
        done: list[str] = []
        end = 0
        # begin()/marked() bracket the batch: an interruption between the lines and the marks
        # freezes the checkpoint instead of letting it pass unmarked lines
        self._checkpoint.begin()
        for work in kept:
            row = work.row
            assert row is not None
            end = self._committer.commit(row)
            if row["error_class"] is None:
                done.append(work.item.url)
            else:
                self.frontier.fail(work.item.url)
            self._committer.add_digests(work.worker, work.digests)
            count_page(
                self.stats,
                work.item.url,
                row,
                body_bytes=work.body_bytes,
                responses=work.responses,
                revisit=bool(row.get("revisit")),
            )
        complete_all(self.frontier, done)
        self._checkpoint.marked(end)

    def _add(self, new: list[NewURL]) -> None:
        if new:
            self.frontier.add(new)

    def _flush_links(self) -> None:
        flush = getattr(self.frontier, "flush", None)
        if flush is not None:
            flush()
