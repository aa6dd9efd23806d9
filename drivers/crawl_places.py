"""A crawl worker process's count of each host's URLs running in it, and the queue of the URLs
the coordinator sent ahead (:class:`crawler.work.Queued`).

A URL sent with a limit starts when fewer than that many URLs of its host run in this worker;
one sent without (a pinned host: the coordinator's count is exact) starts at once but is
counted, so a host that was pinned and is now spread never runs more than its share here. A
place comes back when the URL's body is in (as the coordinator's :class:`~crawler.work.Fetched`).
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["HostPlaces"]


class HostPlaces:
    def __init__(self) -> None:
        self._running: dict[str, int] = {}
        self._waiting: dict[str, deque[tuple[int, asyncio.Future[None]]]] = {}

    def running(self, host: str) -> int:
        return self._running.get(host, 0)

    async def take(self, host: str, limit: int | None) -> None:
        """Wait for a place of ``host`` (none to wait for when ``limit`` is None)."""
        running = self._running.get(host, 0)
        if limit is None or (running < limit and host not in self._waiting):
            self._running[host] = running + 1
            return
        place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(host, deque()).append((limit, place))
        try:
            await place  # give_back counted this URL in before it set the result
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():  # counted in, then cancelled: hand it on
                self.give_back(host)
            raise

    def give_back(self, host: str) -> None:
        """One URL of ``host`` has its body in (or ended): start the next that waits."""
        n = self._running[host] - 1
        queue = self._waiting.get(host)
        while queue and n < queue[0][0]:
            _, place = queue.popleft()
            if not place.done():  # (a cancelled wait gives its turn on)
                n += 1
                place.set_result(None)
        if queue is not None and not queue:
            del self._waiting[host]
        if n:
            self._running[host] = n
        else:
            del self._running[host]
