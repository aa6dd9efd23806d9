"""``--mode asyncio``: one event loop; a task per URL, started as the scheduler says.

The decisions (which URL starts next within ``concurrency`` and ``per_host``, when, what a
finished URL becomes, which links enter the frontier) are :class:`crawler.core.scheduler.
CrawlScheduler`'s; effects run through :class:`drivers.crawl_async_effects.AsyncEffects`;
parsing goes to a bounded, batched process pool (:class:`foundation.offload.BatchOffload`) and
writing, on the loop, to :class:`crawler.commit.CommitPipeline` (links committed, then
records and the pages.jsonl line, then the URL marked done, which makes a SIGKILL at any instant
safe). A task keeps its global place until its page is committed, so when parsing or writing lag,
fetching slows down: memory stays flat however fast the network is.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from crawler.commit import CHECKPOINT_KEY, CommitPipeline
from crawler.core.flow import Outcome
from crawler.core.frontier import Frontier, FrontierItem
from crawler.core.robots import RobotsRules
from crawler.core.scheduler import Commit
from crawler.core.urls import Scope
from crawler.ledger import CrawlLedger
from crawler.page_steps import count_written, parse_input, wants_parse
from crawler.pages import page_row
from crawler.parse import ParsedPage, ParseInput, parse_any
from crawler.redis_hosts import RedisHosts
from crawler.settings import CrawlerSettings
from crawler.stats import CrawlStats
from crawler.warc import ArchiveWriter
from drivers.crawl_async_effects import AsyncEffects
from drivers.crawl_run import EngineResult
from foundation.offload import BatchOffload
from foundation.runtime import raise_nofile_limit

if TYPE_CHECKING:
    from crawler.transports.aiohttp_fetch import AiohttpFetcher

__all__ = [
    "CHECKPOINT_KEY",
    "Engine",
    "EngineResult",
    "shared_hosts",
]

STOP_GRACE = 1.0  # seconds in-flight work gets to finish after Ctrl-C / SIGTERM (then: back to
# the frontier): the command must stop within 2 s, a service manager may not wait longer


class Engine:
    """One crawl run over ``frontier`` into ``out``. Create and run inside an event loop."""

    def __init__(
        self,
        settings: CrawlerSettings,
        frontier: Frontier,
        *,
        scope: Scope | None = None,
        stats: CrawlStats | None = None,
        parse_fn: Callable[[ParseInput], ParsedPage] = parse_any,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.frontier = frontier
        self.stats = stats or CrawlStats()
        self.ledger = CrawlLedger(settings, frontier, scope, self.stats, on_links=self._links_added)
        self.sched = self.ledger.sched
        self._scope = scope
        self._parse_fn = parse_fn
        self._rand = rand
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._pending = asyncio.Semaphore(settings.max_pending_parse)
        self._fatal: BaseException | None = None
        self._commit: CommitPipeline | None = None
        self._effects: AsyncEffects | None = None
        self._offload: BatchOffload[ParseInput, ParsedPage] | None = None

    def stop(self) -> None:
        """Graceful stop (first Ctrl-C): no new URLs; in-flight ones finish. Second: hard stop."""
        if self.sched.stopping:
            for task in self._tasks:
                task.cancel()
        self.sched.stop()
        self._wake.set()

    async def run(self) -> EngineResult:
        # the GIL's default switch interval (5 ms), not SWITCH_INTERVAL: with the archive
        # written on the loop, the parse pool's threads are all that share the GIL, and forced
        # switches every 1 ms cost more than they saved (20,000-page site, interleaved, 4 runs
        # each: 0.744 -> 0.690 CPU ms a page, 2,027 -> 2,114 pages/s; 2026-12-07)
        s = self.settings
        raise_nofile_limit(s.concurrency + 512)
        writer = ArchiveWriter(
            s.out,
            max_file_bytes=s.warc_max_bytes,
            gzip_level=s.warc_gzip_level,
            sync_in_thread=True,  # written on the loop (crawler.commit): no fsync there
        )
        self._commit = CommitPipeline(self.frontier, writer)
        report = await self._commit.open()
        repaired = self.ledger.begin(report, self._commit.checkpoint)
        # imported here: a processes-mode coordinator imports this module and fetches nothing
        from crawler.transports.aiohttp_fetch import AiohttpFetcher

        fetcher = AiohttpFetcher(concurrency=s.concurrency, per_host=s.per_host, timeout=s.timeout)
        self._effects = AsyncEffects(
            s, self._scope, fetcher, self._rand, on_slot_free=self._wake.set, shared=shared_hosts(s)
        )
        self._effects.on_waiting = self.stats.note_waiting
        self._offload = BatchOffload(
            self._parse_fn,
            workers=s.parse_workers,
            batch_size=s.parse_batch,
            max_pending=s.max_pending_parse,
        )
        # workers start while the first fetches run (a page's parse waits for them anyway)
        warmup = asyncio.create_task(self._offload.start())
        try:
            await self._dispatch()
        finally:
            with contextlib.suppress(Exception):
                await warmup
            await self._shutdown(fetcher)
        if self._fatal is not None:
            raise self._fatal
        return EngineResult(self.stats, interrupted=self.sched.stopping, repaired=repaired)

    async def _shutdown(self, fetcher: AiohttpFetcher) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._offload is not None:
            await self._offload.aclose()
        await fetcher.aclose()
        if self._effects is not None and self._effects.shared is not None:
            await self._effects.shared.aclose()
        assert self._commit is not None
        await self._commit.close()
        self.frontier.release_leases()

    async def _dispatch(self) -> None:
        sched, commit = self.sched, self._commit
        assert commit is not None
        while not sched.stopping:  # in-flight URLs get STOP_GRACE to finish (_shutdown)
            self.ledger.lease(self.settings.concurrency)
            for item in sched.start(self.settings.concurrency, can_start=self._slot_free):
                task = asyncio.create_task(self._crawl(item))
                self._tasks.add(task)
                task.add_done_callback(self._task_done)
            self.ledger.tick()
            commit.save_checkpoint()
            timeout = self.ledger.end_or_wait() if sched.idle else sched.wake_in(self._slot_wait)
            if timeout is None:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _slot_free(self, host: str) -> bool:
        assert self._effects is not None
        return self._effects.slots.can_start(host, time.monotonic())

    def _slot_wait(self, host: str) -> float:
        assert self._effects is not None
        return self._effects.slots.wait_time(host, time.monotonic())

    def _links_added(self) -> None:
        # no wake-up here: the page's task ends soon and wakes the dispatcher; one per page
        # made the loop tick more often and the group commits smaller (cProfile: +14% SQL)
        assert self._commit is not None
        self._commit.links_added()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            # a bug, not a page fault: stop the crawl and let run() re-raise it
            self._fatal = exc
            self.stop()

    async def _crawl(self, item: FrontierItem) -> None:
        assert self._effects is not None
        fresh: list[tuple[str, RobotsRules]] = []
        try:
            try:
                outcome = await self._effects.outcome(item, fresh)
            finally:
                self.sched.fetched(item)
            plan = self.ledger.settle(item, outcome.retries, outcome.retry_later, fresh)
            if isinstance(plan, Commit):
                self.stats.held += 1
                self.stats.max_held = max(self.stats.max_held, self.stats.held)
                try:
                    async with self._pending:
                        await self._finish(item, outcome)
                finally:
                    self.stats.held -= 1
        finally:
            self.sched.done(item)

    async def _finish(self, item: FrontierItem, outcome: Outcome) -> None:
        s, final, stats = self.settings, outcome.final, self.stats
        stats.pending += 1
        stats.max_pending = max(stats.max_pending, stats.pending)
        try:
            parsed: ParsedPage | None = None
            if final is not None and 200 <= final.status < 300 and wants_parse(s, final):
                assert self._offload is not None
                try:
                    parsed = await self._offload.submit(parse_input(s, final))
                except Exception as exc:  # a parser process crashed (the pool is replaced)
                    parsed = ParsedPage(error=f"{type(exc).__name__}: {exc}")
                self.ledger.page_links(item, outcome, parsed)
            row, error_class = page_row(item, outcome, parsed)
            assert self._commit is not None
            assert self._effects is not None
            robots = self._effects.take_robots_records()
            written = await self._commit.write(item, error_class is None, outcome.hops, row, robots)
            count_written(stats, item.url, row, outcome.hops, written.row)
        finally:
            stats.pending -= 1


def shared_hosts(settings: CrawlerSettings) -> RedisHosts | None:
    """The job-wide host slots and robots verdicts of a Redis job (None for a local crawl)."""
    if not settings.shared:
        return None
    assert settings.job is not None
    return RedisHosts(settings.frontier, settings.job, per_host=settings.per_host)
