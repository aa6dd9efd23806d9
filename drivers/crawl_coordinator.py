"""The coordinator of the threads, gevent, sequential and processes crawl modes.

One coordinator (the main thread, or the main greenlet) is the only writer of the shared state:
it leases URLs from the frontier, hands them to a :class:`Backend` (threads, greenlets, the
sequential loop, or worker processes) while keeping ``concurrency`` and ``per_host``, and commits
each :class:`~drivers.crawl_blocking.Work` that comes back exactly as the asyncio engine does: new
links added and flushed, the WARC records and pages.jsonl line written by the engine's own
:class:`~crawler.warc.ArchiveWriter`, and only then the URL marked done. The output folder is
therefore the same as the asyncio mode's, byte layout and all, and a run of any mode that stops
at any point can be resumed by any other mode (the ``pages_checkpoint`` meta is kept by the same
code: :class:`~crawler.core.checkpoint.PagesCheckpoint`).

A backend whose workers write the records themselves (``writes_records``: the processes mode)
returns :class:`~drivers.crawl_blocking.ArchivedWork` instead; the coordinator then only writes the
pages.jsonl line (:class:`~crawler.pages_commit.PagesCommitter`), in the order each worker wrote,
and asks the backend how many URLs of a host may be in flight (``host_limit``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from crawler.core.checkpoint import PagesCheckpoint
from crawler.core.frontier import Frontier, FrontierItem, NewURL
from crawler.core.robots import RobotsRules
from crawler.core.urls import Scope
from crawler.page_steps import (
    LinkFilter,
    complete_all,
    count_page,
    count_written,
    follows_links,
    sitemap_links,
    sitemap_seeds,
)
from crawler.pages import CHECKPOINT_KEY, page_row, resume_checkpoint, save_checkpoint
from crawler.pages_commit import PagesCommitter
from crawler.settings import CrawlerSettings
from crawler.stats import CrawlStats
from crawler.warc import ArchiveJob, ArchiveWriter
from crawler.work import ArchivedWork, Work

__all__ = ["CHECKPOINT_KEY", "STOP_GRACE", "Abandoned", "Backend", "Coordinator", "RunOutcome"]

STOP_GRACE = 1.0  # seconds in-flight URLs get to finish after Ctrl-C / SIGTERM (as in the engine)


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


@dataclass
class _Flags:
    stopping: bool = False
    hard: bool = False


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
        self.s = settings
        self.frontier = frontier
        self.backend = backend
        self.scope = scope
        self.stats = stats or CrawlStats()
        self._on_tick = on_tick
        self._flags = _Flags()
        self._ready: dict[str, deque[FrontierItem]] = {}
        self._buffered = 0
        self._host_inflight: dict[str, int] = {}
        self._inflight = 0
        self._dispatched = 0
        self._checkpoint = PagesCheckpoint()
        self._counted_at = 0.0
        self._sitemap_hosts: set[str] = set()
        self._links = LinkFilter(scope)
        self._writer: ArchiveWriter | None = None
        self._committer: PagesCommitter | None = None
        self._host_limit: Callable[[str], int] | None = getattr(backend, "host_limit", None)

    def stop(self) -> None:
        """First call: finish in-flight URLs, lease no more. Second: abandon them."""
        if self._flags.stopping:
            self._flags.hard = True
        self._flags.stopping = True

    # ------------------------------------------------------------------------------------- run
    def run(self) -> RunOutcome:
        writer: ArchiveWriter | PagesCommitter
        if getattr(self.backend, "writes_records", False):
            writer = self._committer = PagesCommitter(
                self.s.out, max_file_bytes=self.s.warc_max_bytes, gzip_level=self.s.warc_gzip_level
            )
        else:
            writer = self._writer = ArchiveWriter(
                self.s.out, max_file_bytes=self.s.warc_max_bytes, gzip_level=self.s.warc_gzip_level
            )
        report = writer.open()
        repaired = {
            "pages_truncated": report.pages_truncated,
            "warc_truncated": report.warc_truncated,
            "files_removed": list(report.files_removed),
        }
        try:
            self._load_checkpoint()
            self.frontier.release_leases()
            counts = self.frontier.counts()
            self.stats.previous = counts.done + counts.failed
            self.backend.start()
            try:
                self._loop()
            finally:
                self.backend.close(abandon=self._flags.hard)
        finally:
            writer.close()
            self.frontier.release_leases()
            self._save_checkpoint(force=True)
        return RunOutcome(self.stats, interrupted=self._flags.stopping, repaired=repaired)

    def _loop(self) -> None:
        stop_at: float | None = None
        while True:
            try:
                if self._flags.stopping and stop_at is None:
                    stop_at = time.monotonic() + STOP_GRACE
                if stop_at is not None and (self._flags.hard or time.monotonic() > stop_at):
                    self._flags.hard = True
                    return
                if not self._flags.stopping:
                    self._fill()
                    self._start_ready()
                if self._inflight == 0 and (self._flags.stopping or not self._buffered):
                    nra = None if self._flags.stopping else self.frontier.next_ready_at()
                    left = self._limit_left()
                    if nra is None or (left is not None and left <= 0):
                        return
                    time.sleep(min(max(nra - time.time(), 0.0), 1.0))
                    continue
                works = self.backend.results(0.25)
                if self._committer is not None:
                    self._commit_archived([w for w in works if isinstance(w, ArchivedWork)])
                    self._committer.flush()
                else:
                    for work in works:
                        assert isinstance(work, Work)
                        self._commit(work)
                if time.monotonic() - self._counted_at > 0.25:
                    self.stats.queued = self.frontier.counts().queued + self._buffered
                    self._counted_at = time.monotonic()
                self._save_checkpoint()
                if self._on_tick is not None:
                    self._on_tick()
            except Abandoned as exc:
                for item in exc.items:
                    self._forget(item)
                self.stop()
            except KeyboardInterrupt:
                self.stop()

    # ---------------------------------------------------------------------------- dispatching
    def _limit_left(self) -> int | None:
        if self.s.max_pages is None:
            return None
        return self.s.max_pages - self.stats.previous - self._dispatched

    def _fill(self) -> None:
        cap = max(2 * self.backend.capacity, 64)
        want = cap - self._buffered
        left = self._limit_left()
        if left is not None:
            want = min(want, left - self._buffered)
        if want <= 0 or (self._buffered and want < min(64, cap // 4)):
            return
        for item in self.frontier.lease(want, time.time()):
            if self._checkpoint.take(self.frontier, item.url):
                # committed to pages.jsonl before a crash: marked now, not fetched twice
                self.stats.skipped += 1
                continue
            self._ready.setdefault(item.host, deque()).append(item)
            self._buffered += 1

    def _start_ready(self) -> None:
        for host in list(self._ready):
            queue = self._ready[host]
            limit = self.s.per_host
            if self._host_limit is not None:
                limit = min(limit, self._host_limit(host))
            while (
                queue
                and self._inflight < self.backend.capacity
                and self._host_inflight.get(host, 0) < limit
            ):
                item = queue.popleft()
                self._buffered -= 1
                self._dispatched += 1
                self._inflight += 1
                self._host_inflight[host] = self._host_inflight.get(host, 0) + 1
                self.stats.in_flight = self._inflight
                self.backend.submit(item)
            if not queue:
                del self._ready[host]
            if self._inflight >= self.backend.capacity:
                return

    # -------------------------------------------------------------------------------- commit
    def _forget(self, item: FrontierItem) -> None:
        self._inflight -= 1
        self.stats.in_flight = self._inflight
        n = self._host_inflight.get(item.host, 1) - 1
        if n:
            self._host_inflight[item.host] = n
        else:
            self._host_inflight.pop(item.host, None)

    def _commit(self, work: Work) -> None:
        item, outcome = work.item, work.outcome
        self._forget(item)
        for host, rules in work.robots:
            self._seed_sitemaps(host, item.url, rules)
        self.stats.retries += outcome.retries
        if outcome.retry_later is not None and (
            self._flags.stopping or item.attempts < self.s.retries
        ):
            if not self._flags.stopping:  # when stopping, the lease is simply released
                self.frontier.retry(item.url, time.time() + outcome.retry_later)
            self.stats.skipped += 1
            return
        parsed = work.parsed
        row, error_class = page_row(item, outcome, parsed)
        final = outcome.final
        if follows_links(self.s, outcome, parsed):
            assert parsed is not None and final is not None
            self._add_links(item, parsed.links, sitemap_links(self.s, final))
        # links added above must be durable before the line that says this page is archived
        flush = getattr(self.frontier, "flush", None)
        if flush is not None:
            flush()
        assert self._writer is not None
        self._checkpoint.begin()
        written = self._writer.write(ArchiveJob(outcome.hops, row))
        ok = error_class is None
        (self.frontier.complete if ok else self.frontier.fail)(item.url)
        self._checkpoint.marked(written.pages_offset)
        count_written(self.stats, item.url, row, outcome.hops, written.row)

    def _commit_archived(self, works: list[ArchivedWork]) -> None:
        """Commit URLs whose records the workers wrote: the links of the whole batch in one
        frontier commit, then each line in arrival order (each worker's write order), then the
        marks. Every result is committed, even when stopping: skipping one would leave records
        in the middle of its worker's file that no line names."""
        kept: list[ArchivedWork] = []
        for work in works:
            item = work.item
            self._forget(item)
            for host, rules in work.robots:
                self._seed_sitemaps(host, item.url, rules)
            self.stats.retries += work.retries
            if work.row is None:  # the worker archived nothing: try the URL again later
                if not self._flags.stopping:
                    assert work.retry_later is not None
                    self.frontier.retry(item.url, time.time() + work.retry_later)
                self.stats.skipped += 1
                continue
            self._add_links(item, work.links, work.sitemap)
            kept.append(work)
        if not kept:
            return
        flush = getattr(self.frontier, "flush", None)
        if flush is not None:
            flush()  # links durable before the lines that say their pages are archived
        assert self._committer is not None
        done: list[str] = []
        end = 0
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
        # Only now are the lines up to ``end`` all marked. The checkpoint used to move with each
        # line and was saved without the engine's guard, which let it pass unmarked lines in two
        # ways, each fetching (and archiving) a URL twice after the next crash: a Ctrl-C
        # (KeyboardInterrupt) or an error between the lines and the marks left the URLs leased,
        # queued again at the end of the run, with the checkpoint (saved at exit) past their
        # lines; and after a crash, lines whose URL waited to be leased again were passed once
        # any new line was written (the restart leases at most 2 x capacity URLs at a time,
        # behind retried URLs and sitemap seeds, so they could wait for a while). begin() and
        # marked() bracket this batch so that an interruption freezes the checkpoint instead.
        self._checkpoint.marked(end)

    def _add_links(self, item: FrontierItem, links: tuple[str, ...], sitemap: bool) -> None:
        # as the engine: a sitemap's URLs count as seeds (its depth), a page's one level deeper
        depth = item.depth if sitemap else item.depth + 1
        if not links or (self.s.max_depth is not None and depth > self.s.max_depth):
            return
        new = [NewURL(link, depth, item.url) for link in self._links(links)]
        if new:
            self.frontier.add(new)

    def _seed_sitemaps(self, host: str, url: str, rules: RobotsRules) -> None:
        if not (self.s.sitemaps and self.s.follow) or host in self._sitemap_hosts:
            return
        self._sitemap_hosts.add(host)
        found = sitemap_seeds(url, rules, self.scope)
        if found:
            self.frontier.add(found)

    # ---------------------------------------------------------------------------- checkpoint
    def _load_checkpoint(self) -> None:
        # after the writer's repair, before the leases are released
        self._checkpoint = resume_checkpoint(self.frontier, self.s.out / "pages.jsonl")

    def _save_checkpoint(self, force: bool = False) -> None:
        # safe however the run ends: the checkpoint only ever covers marked lines
        save_checkpoint(self.frontier, self._checkpoint, force=force)
