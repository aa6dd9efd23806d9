"""``--mode threads``: a ThreadPoolExecutor of ``concurrency`` workers with blocking requests.

Each worker thread fetches with its own ``requests.Session`` (:class:`RequestsFetcher`), keeps
politeness through the shared slot table (:class:`drivers.crawl_blocking.BlockingEffects`) and
parses inline, under the GIL: that is the mode's honest cost. Finished work goes back to the
coordinator through a queue; only the coordinator thread touches the frontier and the archive."""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from crawler.core.frontier import FrontierItem
from crawler.core.urls import Scope
from crawler.settings import CrawlerSettings
from crawler.transports.requests_fetch import RequestsFetcher
from crawler.work import Work
from drivers.crawl_blocking import BlockingEffects
from foundation.limits import check_thread_count

__all__ = ["ThreadBackend"]


class ThreadBackend:
    def __init__(self, settings: CrawlerSettings, scope: Scope | None) -> None:
        self.capacity = check_thread_count(settings.concurrency)
        self._fetcher = RequestsFetcher(timeout=settings.timeout)
        self._effects = BlockingEffects(settings, scope, self._fetcher)
        self._done: queue.SimpleQueue[Future[Work]] = queue.SimpleQueue()
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.capacity, thread_name_prefix="crawl")

    def watch_waiting(self, note: Callable[[str, str, float], None]) -> None:
        self._effects.on_waiting = note

    def submit(self, item: FrontierItem) -> None:
        assert self._pool is not None
        self._pool.submit(self._effects.crawl, item).add_done_callback(self._done.put)

    def flush(self) -> None:
        """Nothing is buffered: ``submit`` hands the URL on at once."""

    def results(self, timeout: float) -> list[Work]:
        out: list[Work] = []
        try:
            fut = self._done.get(timeout=timeout)
        except queue.Empty:
            return out
        while True:
            out.append(fut.result())  # crawl() catches page faults; anything else is a bug
            try:
                fut = self._done.get_nowait()
            except queue.Empty:
                return out

    def close(self, abandon: bool) -> None:
        if abandon:
            self._fetcher.close()  # in-flight requests fail fast on closed sessions
        if self._pool is not None:
            self._pool.shutdown(wait=not abandon, cancel_futures=True)
        self._fetcher.close()
