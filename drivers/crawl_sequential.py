"""``--mode sequential``: one URL at a time, in the coordinator's own thread: the baseline.

The same flow, transport (blocking requests) and archive as the other blocking modes; nothing
runs concurrently, so every millisecond of latency is paid in full.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from crawler.core.frontier import FrontierItem
from crawler.core.urls import Scope
from crawler.settings import CrawlerSettings
from crawler.transports.requests_fetch import RequestsFetcher
from crawler.work import Work
from drivers.crawl_blocking import BlockingEffects
from drivers.crawl_coordinator import Abandoned

__all__ = ["InlineBackend"]


class InlineBackend:
    capacity = 1

    def __init__(self, settings: CrawlerSettings, scope: Scope | None) -> None:
        self._fetcher = RequestsFetcher(timeout=settings.timeout)
        self._effects = BlockingEffects(settings, scope, self._fetcher)
        self._queue: deque[FrontierItem] = deque()

    def start(self) -> None:
        pass

    def watch_waiting(self, note: Callable[[str, str, float], None]) -> None:
        self._effects.on_waiting = note

    def submit(self, item: FrontierItem) -> None:
        self._queue.append(item)

    def flush(self) -> None:
        """Nothing to send: the queued URLs are crawled in :meth:`results`."""

    def results(self, timeout: float) -> list[Work]:
        # the work happens here, when the coordinator asks for it
        if not self._queue:
            return []
        item = self._queue.popleft()
        try:
            return [self._effects.crawl(item)]
        except KeyboardInterrupt:
            raise Abandoned([item]) from None

    def close(self, abandon: bool) -> None:
        self._queue.clear()
        self._fetcher.close()
