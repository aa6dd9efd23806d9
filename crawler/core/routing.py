"""Which worker process fetches a URL, so that per-host politeness stays exact across workers.

The processes mode's coordinator keeps every host under ``host_limit(host)`` URLs in flight in
total (the scheduler): ``per_host``, or more for a host whose URLs are sent ahead, which its
workers then cap at their shares. What this decides:

- A host starts *pinned* to worker ``crc32(host) % P``: its robots.txt is fetched once, there.
  When its verdict comes back with no Crawl-delay (and ``delay`` is 0 and ``per_host >= P``) the
  host is *spread*: each URL goes to the least-loaded worker that has room in its share of the
  host's slots (worker k gets ``per_host // P``, plus one for k < ``per_host % P``), and the
  verdict is shipped to a worker before its first URL of that host, so robots.txt is fetched
  once (per expiry); with ``robots`` off a host is spread from its first URL. A worker holds at
  most its share of the host's requests, so its connection pool never opens more than that
  share. While pinned, the host gets only the pinned worker's share, for the same reason (so
  does a host whose robots.txt gave only a temporary verdict, until a lasting one comes).
- A host with a delay (``delay`` or a robots.txt Crawl-delay) stays pinned: one worker's slot
  table spaces its requests exactly, and a delay already caps the host far below one worker's
  speed. So does every host when ``per_host < P``.
- A spread host's URLs are also sent *ahead*: worker k is sent up to ``(1 + AHEAD)`` times its
  share and runs at most its share at once (the route's ``limit``), starting the next as soon
  as one has its body in. The scheduler's count for the host (``host_limit``) covers those
  queued at the workers; the workers' caps keep the requests in flight at ``per_host``. Only
  while the crawl's ``capacity`` (its ``concurrency``) holds that extra for every host in
  flight: a URL queued at a worker holds one of those places, and with many hosts they are
  better spent running URLs of more hosts. Without it each place waited for the worker's
  report to reach the coordinator and a new URL to come back (a 4.8 ms cycle at the default
  ``per_host`` 8 on a one-host site, of which the fetch was a fraction). Pinned hosts are not
  sent ahead: their worker counts their URLs but does not cap them (the coordinator's count is
  exact), and a host with a delay gains nothing.
- A 429/503 pause of a spread host is forwarded to all of its workers.

Pure: the backend maps each decision onto its pipes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from crawler.core.robots import RobotsRules
from crawler.core.scheduler import ROBOTS_CACHE

__all__ = ["AHEAD", "HostRouter", "Route", "host_shares"]

# a spread host's URLs queued at a worker, per place of its share there (2: the same time as 1 on
# the 20,000-page site, interleaved probe runs)
AHEAD = 1


def host_shares(per_host: int, workers: int) -> list[int]:
    """Each worker's share of one spread host's ``per_host`` slots (they sum to ``per_host``)."""
    return [per_host // workers + (k < per_host % workers) for k in range(workers)]


@dataclass(frozen=True)
class Route:
    """Send the URL to ``worker``; ship it ``robots`` first when set; ``limit``: the worker
    runs at most that many URLs of the host at once (a spread host's share), the rest wait
    there (None: it runs the URL at once)."""

    worker: int
    robots: RobotsRules | None = None
    limit: int | None = None


class HostRouter:
    def __init__(
        self,
        workers: int,
        *,
        per_host: int,
        delay: float,
        robots: bool,
        user_agent: str,
        capacity: int,
    ) -> None:
        self.workers = workers
        self._per_host = per_host
        self._capacity = capacity
        self._shares = host_shares(per_host, workers)
        self._can_spread = workers > 1 and delay == 0 and per_host >= workers
        self._robots = robots
        self._ua = user_agent
        self._spread: dict[str, RobotsRules | None] = {}  # host -> verdict to ship
        self._pinned: dict[str, None] = {}  # hosts with a Crawl-delay: one worker's for good
        self._shipped: list[set[str]] = [set() for _ in range(workers)]
        self._load = [0] * workers
        self._host_load: dict[str, list[int]] = {}

    def pin(self, host: str) -> int:
        return zlib.crc32(host.encode()) % self.workers

    def host_limit(self, host: str) -> int:
        """How many URLs of ``host`` may be in flight across all workers now."""
        if host in self._spread:
            return self._per_host * (1 + AHEAD) if self._ahead(host) else self._per_host
        if host in self._pinned or not self._can_spread:
            return self._per_host
        if not self._robots:
            return self._per_host
        return self._shares[self.pin(host)]  # pinned until its robots.txt verdict is known

    def route(self, host: str) -> Route:
        """Where the next URL of ``host`` goes (counted in flight until :meth:`returned`)."""
        if self._can_spread and not self._robots and host not in self._spread:
            self._spread[host] = None
        loads = self._host_load.setdefault(host, [0] * self.workers)
        ship = limit = None
        if host in self._spread:
            room = 1 + AHEAD if self._ahead(host) else 1
            # a URL started while its host was sent ahead (then more hosts came in flight) takes
            # the room left in the shares sent ahead
            free = self._room(loads, room) or self._room(loads, 1 + AHEAD)
            # the scheduler keeps the host under its host_limit, so some worker has room
            k = min(free, key=self._load.__getitem__) if free else self.pin(host)
            rules = self._spread[host]
            if rules is not None and host not in self._shipped[k]:
                self._shipped[k].add(host)
                ship = rules
            limit = self._shares[k]
        else:
            k = self.pin(host)
        loads[k] += 1
        self._load[k] += 1
        return Route(k, ship, limit)

    def _room(self, loads: list[int], shares: int) -> list[int]:
        """The workers holding fewer of a host's URLs than ``shares`` times their share."""
        return [k for k in range(self.workers) if loads[k] < self._shares[k] * shares]

    def _ahead(self, host: str) -> bool:
        """Whether ``host`` (spread) is sent ahead now: the crawl's capacity holds the extra
        places of every host in flight, ``host`` included."""
        hosts = len(self._host_load) + (host not in self._host_load)
        return hosts * self._per_host * (1 + AHEAD) <= self._capacity

    def returned(self, worker: int, host: str) -> None:
        """A URL of ``host`` routed to ``worker`` came back."""
        self._load[worker] -= 1
        loads = self._host_load[host]
        loads[worker] -= 1
        if not any(loads):
            del self._host_load[host]

    def pause_to(self, host: str) -> range:
        """The workers a pause of ``host`` must reach (none: a pinned host lives in one worker,
        which knows already)."""
        return range(self.workers) if host in self._spread else range(0)

    def learn(self, host: str, rules: RobotsRules) -> None:
        """A worker fetched ``host``'s verdict: spread the host, or pin it for good."""
        if not self._can_spread or host in self._spread or host in self._pinned:
            return
        if rules.crawl_delay(self._ua):
            self._pinned[host] = None
        elif not rules.temporary:  # a verdict that expires soon is not worth shipping
            self._spread[host] = rules
            self._shipped[self.pin(host)].add(host)
        # bounded like the workers' robots caches: a host forgotten here goes back to its
        # pinned worker (which knows its verdict), the polite side of the choice
        for known in (self._spread, self._pinned):
            if len(known) > ROBOTS_CACHE:
                old = next(iter(known))
                del known[old]
                for shipped in self._shipped:
                    shipped.discard(old)
