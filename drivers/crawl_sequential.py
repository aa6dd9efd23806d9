"""``--mode sequential``: one URL at a time, in the coordinator's own thread: the baseline.

The same flow, transport (blocking requests) and archive as the other blocking modes; nothing
runs concurrently, so every millisecond of latency is paid in full.

Ctrl-C / SIGTERM: the handler (:func:`drivers.dispatch.run_crawl`) stops the coordinator and
calls :meth:`InlineBackend.interrupt`, which ends the fetch under way by shutting its socket
down and ends a flow's wait (a backoff, a retry) within :data:`SLEEP_STEP`; the URL is then
given up (:class:`~drivers.crawl_coordinator.Abandoned`), not recorded. Until 2026-12 the handler
raised KeyboardInterrupt wherever the thread was; in 1 stop of 76 (a probe) that landed inside
urllib3's pool lock and left it held, and the next fetch (or the pool's close) waited forever.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from crawler.core.flow import FetchRequest, FetchResult
from crawler.core.frontier import FrontierItem
from crawler.core.urls import Scope
from crawler.settings import CrawlerSettings
from crawler.transports.requests_fetch import RequestsFetcher
from crawler.work import Work
from drivers.crawl_blocking import BlockingEffects
from drivers.crawl_coordinator import Abandoned
from foundation.errors import FetchError

__all__ = ["SLEEP_STEP", "InlineBackend"]

SLEEP_STEP = 0.05  # seconds: how late a flow's wait sees a stop


class _Stopped(Exception):
    """The run is stopping: raised out of the flow, its URL is given up."""


class _StoppableFetcher(RequestsFetcher):
    """Fetches nothing more once :meth:`InlineBackend.interrupt` was called."""

    stopping = False

    def fetch(self, request: FetchRequest) -> FetchResult:
        if self.stopping:
            raise _Stopped
        try:
            result = super().fetch(request)
        except FetchError:
            if self.stopping:
                raise _Stopped from None
            raise
        if self.stopping:  # its answer may have been cut short by the interruption
            raise _Stopped
        return result


class InlineBackend:
    capacity = 1

    def __init__(self, settings: CrawlerSettings, scope: Scope | None) -> None:
        self._fetcher = _StoppableFetcher(timeout=settings.timeout)
        self._effects = BlockingEffects(settings, scope, self._fetcher)
        self._effects.sleep = self._sleep
        self._queue: deque[FrontierItem] = deque()

    def start(self) -> None:
        pass

    def watch_waiting(self, note: Callable[[str, str, float], None]) -> None:
        self._effects.on_waiting = note

    def submit(self, item: FrontierItem) -> None:
        self._queue.append(item)

    def flush(self) -> None:
        """Nothing to send: the queued URLs are crawled in :meth:`results`."""

    def interrupt(self) -> None:
        """Give up the URL under way (called from a signal handler in this same thread, so it
        only sets a flag and shuts a socket down: no lock is taken)."""
        self._fetcher.stopping = True
        self._fetcher.interrupt()

    def results(self, timeout: float) -> list[Work]:
        # the work happens here, when the coordinator asks for it
        if not self._queue:
            return []
        item = self._queue.popleft()
        try:
            return [self._effects.crawl(item)]
        except (_Stopped, KeyboardInterrupt):
            raise Abandoned([item]) from None

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self._fetcher.stopping:
                raise _Stopped
            time.sleep(min(left, SLEEP_STEP))

    def close(self, abandon: bool) -> None:
        self._queue.clear()
        self._fetcher.close()
