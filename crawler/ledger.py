"""A crawl run's ledger: the bookkeeping around the scheduler, the same for every mode's driver.

:class:`CrawlLedger` joins the pure :class:`~crawler.core.scheduler.CrawlScheduler` to the frontier,
the pages checkpoint and the counters: it leases (skipping URLs a crashed run already committed),
settles each URL that comes back (robots verdicts learned, retries queued, counted), adds links
and sitemaps, and says when the run is over. A driver only maps this onto its primitive (tasks
and events, threads and queues, greenlets, worker processes) and writes the archive. No clock is
kept here beyond reading it; no asyncio, threading or transport import.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from crawler.core.checkpoint import PagesCheckpoint
from crawler.core.flow import Outcome
from crawler.core.frontier import Frontier, FrontierItem, NewURL
from crawler.core.robots import RobotsRules
from crawler.core.scheduler import Commit, CrawlScheduler, Plan, Retry
from crawler.core.urls import Scope
from crawler.page_steps import follows_links, scheduler_config, sitemap_links
from crawler.parse import ParsedPage
from crawler.settings import CrawlerSettings
from crawler.stats import CrawlStats
from crawler.warc import RepairReport

__all__ = ["COUNTS_EVERY", "CrawlLedger"]

COUNTS_EVERY = 0.25  # seconds between the frontier counts shown as "queued"


class CrawlLedger:
    """The frontier-facing half of a driver; ``on_links`` is called after links were added."""

    def __init__(
        self,
        settings: CrawlerSettings,
        frontier: Frontier,
        scope: Scope | None,
        stats: CrawlStats,
        *,
        on_links: Callable[[], None] | None = None,
        on_forget: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.frontier = frontier
        self.stats = stats
        self.sched = CrawlScheduler(scheduler_config(settings), scope)
        self.checkpoint = PagesCheckpoint()
        self._on_links = on_links
        self._on_forget = on_forget  # the driver's other link memories (processes-mode workers)
        self._counted_at = float("-inf")
        self._epoch = 0

    def begin(self, report: RepairReport, checkpoint: PagesCheckpoint) -> dict[str, Any]:
        """After the archive's repair and the checkpoint's resume: release the crashed run's
        leases, count what earlier runs finished; returns the repair summary."""
        self.checkpoint = checkpoint
        self.frontier.release_leases()
        counts = self.frontier.counts()
        self.stats.previous = self.sched.previous = counts.done + counts.failed
        return {
            "pages_truncated": report.pages_truncated,
            "warc_truncated": report.warc_truncated,
            "files_removed": list(report.files_removed),
        }

    def lease(self, capacity: int) -> None:
        """Lease a batch when the scheduler wants one."""
        mono = time.monotonic()
        want = self.sched.lease_want(mono, capacity)
        if not want:
            return
        items = self.frontier.lease(want, time.time())
        fresh = [item for item in items if not self._committed_before(item)]
        self.sched.leased(fresh, len(items) < want, mono)

    def _committed_before(self, item: FrontierItem) -> bool:
        if self.checkpoint.take(self.frontier, item.url):
            # committed to pages.jsonl before a crash: marked now, not fetched twice
            self.stats.skipped += 1
            return True
        return False

    def settle(
        self,
        item: FrontierItem,
        retries: int,
        retry_later: float | None,
        robots: tuple[tuple[str, RobotsRules], ...] | list[tuple[str, RobotsRules]],
    ) -> Plan:
        """What a URL whose flow ended becomes; a retry is queued here, verdicts fetched on the
        way are learned (a host's sitemaps seeded once)."""
        for host, rules in robots:
            self.add(self.sched.robots_learned(host, item.url, rules))
            if rules.cause is not None:  # refused, unknown, TLS: shown live and summed up
                self.stats.note_unreachable(host, ": ".join(rules.cause))
        self.stats.retries += retries
        plan = self.sched.finish(item, retry_later, time.time())
        if isinstance(plan, Retry):
            self.frontier.retry(item.url, plan.not_before)
        if not isinstance(plan, Commit):  # when stopping, the lease is simply released
            self.stats.skipped += 1
        return plan

    def page_links(self, item: FrontierItem, outcome: Outcome, parsed: ParsedPage | None) -> None:
        """Add the links of a parsed page, when they are followed."""
        final = outcome.final
        if (
            final is not None
            and parsed is not None
            and follows_links(self.settings, outcome, parsed)
        ):
            self.add(self.sched.links(item, parsed.links, sitemap_links(self.settings, final)))

    def add(self, new: list[NewURL]) -> None:
        if new:
            self.frontier.add(new)
            if self._on_links is not None:
                self._on_links()

    def end_or_wait(self) -> float | None:
        """For an idle driver: None when the crawl is over, else seconds to wait."""
        return self.sched.end_or_wait(self.frontier.next_ready_at(), time.time())

    def tick(self) -> None:
        """Refresh the live counters (the frontier count at most every COUNTS_EVERY)."""
        self.stats.in_flight = self.sched.in_flight
        epoch = int(getattr(self.frontier, "epoch", 0))
        if epoch != self._epoch:
            # the shared frontier's server restarted and may have lost links added in its last
            # second: links met again must reach it again (dedup there keeps them once)
            self._epoch = epoch
            self.sched.forget_links()
            if self._on_forget is not None:
                self._on_forget()
        now = time.monotonic()
        if now - self._counted_at > COUNTS_EVERY:
            self.stats.queued = self.frontier.counts().queued + self.sched.buffered
            self._counted_at = now
