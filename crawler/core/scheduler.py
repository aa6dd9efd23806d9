"""The crawl's decisions, made once for every mode: which URL starts next and when, what a
finished URL becomes, which links and sitemaps enter the frontier, and robots.txt once per host.

A driver (the asyncio engine; the coordinator of the threads, gevent, sequential and processes
modes) owns the I/O: it leases from the frontier, runs each URL's flow, writes the archive. It
asks :class:`CrawlScheduler` everything else, always in the same loop::

    want = sched.lease_want(mono)            # 0: do not lease now
    items = frontier.lease(want, wall)
    sched.leased(items, len(items) < want, mono)
    for item in sched.start(mono, ...):      # within the global and per-host limits
        run(item)
    ...                                      # a URL's fetching ends: sched.fetched(item)
    plan = sched.finish(item, retry_later, wall)   # Retry / Release / Commit
    frontier.add(sched.links(item, links, from_sitemap))
    ...                                      # its archive line is written: sched.done(item)
    sched.end_or_wait(frontier.next_ready_at(), wall)   # None: go on; a float: idle, wait

:class:`RobotsBook` is the per-host robots.txt memory every effect driver shares the rules of:
one caller fetches a host's file, the others wait for its verdict (each driver maps "wait" onto
its own primitive: a future, a condition, a greenlet). Pure: times come in as arguments.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from crawler.core.frontier import FrontierItem, NewURL
from crawler.core.robots import TEMPORARY_TTL, RobotsRules
from crawler.core.urls import Scope, exact_url
from foundation.errors import InvalidURLError

__all__ = [
    "DRY_RECHECK",
    "MIN_TABLE",
    "ROBOTS_CACHE",
    "SEEN_CACHE",
    "Commit",
    "CrawlScheduler",
    "LinkFilter",
    "Plan",
    "Release",
    "Retry",
    "RobotsBook",
    "SchedulerConfig",
    "link_depth",
    "retries_later",
    "sitemap_seeds",
    "slot_wait",
]

ROBOTS_CACHE = 10_000  # hosts whose robots.txt verdict stays in memory
# links per generation of a duplicate-link cache: at most 5/8 of a 131,072-slot table (1 MiB)
SEEN_CACHE = 80_000
MIN_TABLE = 1024  # slots of a new generation's table (a power of two)
# After a lease came back short (nothing ready), lease again only once URLs were added or this
# many seconds passed (for not-before times): a lease is three SQL statements, and asking on every
# wake-up cost about 0.1 ms per page in list mode, where the whole list is leased at once.
DRY_RECHECK = 0.25
MAX_IDLE_WAIT = 1.0  # seconds an idle driver sleeps before it asks the frontier again
MAX_BUSY_WAIT = 0.25  # seconds a busy driver waits for a result before it looks around


@dataclass(frozen=True)
class SchedulerConfig:
    """The settings the decisions depend on (built from CrawlerSettings outside the core)."""

    per_host: int = 8
    max_pages: int | None = None
    retries: int = 3
    robots_retry: float = TEMPORARY_TTL
    max_depth: int | None = None
    follow: bool = False
    sitemaps: bool = True
    delay: float = 0.0
    user_agent: str = "*"
    # URLs leased and not yet started at most (None: 2 x capacity, at least 64); a frontier
    # shared with other workers leases only what it can start soon
    lease_batch: int | None = None


# ---------------------------------------------------------------------------- what a URL becomes
@dataclass(frozen=True)
class Retry:
    """Put the URL back in the queue, not to be leased before ``not_before`` (wall clock)."""

    not_before: float


@dataclass(frozen=True)
class Release:
    """Stopping: neither archive nor reschedule; the lease is released at the end of the run."""


@dataclass(frozen=True)
class Commit:
    """Archive the outcome (success or a final failure) and mark the URL."""


Plan = Retry | Release | Commit


def retries_later(item: FrontierItem, retry_later: float | None, retries: int) -> bool:
    """True when an outcome that asks to be tried later (robots.txt unreachable) is retried
    rather than archived as a failure: the URL has tries left."""
    return retry_later is not None and item.attempts < retries


def link_depth(item: FrontierItem, from_sitemap: bool, max_depth: int | None) -> int | None:
    """The depth of the links found at ``item`` (a sitemap's URLs count as seeds: the
    sitemap's own depth), or None when they are past ``max_depth``. Checked before any memory
    of links met: a link first met too deep must still be taken when a shallower page (or a
    sitemap) lists it later."""
    depth = item.depth if from_sitemap else item.depth + 1
    return None if max_depth is not None and depth > max_depth else depth


def slot_wait(wait: float) -> float:
    """How long a fetch waiting for a host's slot sleeps before it looks again: woken earlier
    when a fetch of the host ends, and never blind for more than a second."""
    return 1.0 if wait == float("inf") else min(max(wait, 0.001), 1.0)


# ----------------------------------------------------------------------------------- robots
class RobotsBook:
    """robots.txt verdicts per host (least recently used out) and who is fetching one now.

    ``lookup`` -> a fresh verdict, or None; then ``claim`` -> True: fetch it and ``store`` (or
    ``release`` on failure); False: another caller is fetching it, wait and look up again.
    A verdict with a Crawl-delay for ``user_agent`` is passed on to ``on_delay(host, seconds)``
    (the driver's politeness slot table) as it is stored.
    """

    def __init__(
        self,
        retry: float = TEMPORARY_TTL,
        size: int = ROBOTS_CACHE,
        *,
        user_agent: str = "*",
        on_delay: Callable[[str, float], None] | None = None,
    ) -> None:
        self.retry = retry
        self.size = size
        self._user_agent = user_agent
        self._on_delay = on_delay
        self._rules: OrderedDict[str, RobotsRules] = OrderedDict()
        self._busy: set[str] = set()

    def lookup(self, host: str, now: float) -> RobotsRules | None:
        rules = self._rules.get(host)
        if rules is None or rules.is_stale(now, retry=self.retry):
            return None
        self._rules.move_to_end(host)
        return rules

    def claim(self, host: str) -> bool:
        if host in self._busy:
            return False
        self._busy.add(host)
        return True

    def store(self, host: str, rules: RobotsRules) -> None:
        self._busy.discard(host)
        self.install(host, rules)

    def install(self, host: str, rules: RobotsRules) -> None:
        """Take a verdict fetched elsewhere (another worker process)."""
        self._rules[host] = rules
        self._rules.move_to_end(host)
        if len(self._rules) > self.size:
            self._rules.popitem(last=False)
        delay = rules.crawl_delay(self._user_agent)
        if delay and self._on_delay is not None:
            self._on_delay(host, delay)

    def release(self, host: str) -> None:
        self._busy.discard(host)

    def known(self, host: str) -> bool:
        return host in self._rules


# ----------------------------------------------------------------------------------- links
class LinkFilter:
    """A memory of the links already met, plus the scope: only new in-scope links are returned.

    Most links of a site were met before: this skips the scope check and the frontier's SQL for
    them (the exact string is the key: its hash is cached, no digest to compute; measured: 40%
    of the coordinator's CPU without it). Two generations of ``size`` links keep memory bounded
    and recent links known.

    The keys are the links' str hashes, not the links (an int is ~70 bytes against ~180 for a
    link). Two links with one 64-bit hash (odds ~1e-9 at 200,000 members) would skip only this
    cache: the frontier's fingerprint still decides, but the second link would not be offered to
    it, so the cost of a collision is one unfollowed link.

    Each generation is an open-addressing hash table (linear probing, at most 5/8 full) in an
    ``array('q')``: 13-16 bytes a key. In a set they cost ~130 (the table, grown 4x, plus an int
    object): 2.7 MiB in each of the three processes of a 20,000-page crawl (tracemalloc,
    2026-12-07). Sorted arrays (8 bytes a key, searched with ``bisect``) were tried first: the
    binary searches cost ~0.45 us a link, 19 us a page of the test site against 6.5 here
    (20,000 pages, 41 links each, 2026-12-07), and a worker meets every link of every page.
    """

    def __init__(self, scope: Scope | None, size: int = SEEN_CACHE) -> None:
        self.scope = scope
        self.size = size
        self._old: array[int] | None = None  # the previous generation
        self._new_table(MIN_TABLE)

    def _new_table(self, slots: int) -> None:
        self._table = array("q", bytes(8 * slots))  # 0: an empty slot
        self._mask = slots - 1
        self._count = 0
        self._limit = slots * 5 // 8

    def __call__(self, links: Iterable[str]) -> tuple[str, ...]:
        table, mask, old, scope = self._table, self._mask, self._old, self.scope
        out = []
        for link in links:
            key = hash(link) or 1  # (a str hash is never -1; 0 marks an empty slot)
            i = key & mask
            k = table[i]
            while k:
                if k == key:
                    break
                i = (i + 1) & mask
                k = table[i]
            else:  # not in this generation
                if old is not None and _holds(old, key):
                    continue
                table[i] = key
                self._count += 1
                if scope is None or scope.allows(link):
                    out.append(link)
                if self._count >= self._limit:
                    self._grow()
                    table, mask = self._table, self._mask
        if self._count >= self.size:  # between calls: a link is never sent twice in one call
            self._old = self._table
            self._new_table(MIN_TABLE)
        return tuple(out)

    def _grow(self) -> None:
        keys, count = self._table, self._count
        self._new_table(2 * len(keys))
        table, mask = self._table, self._mask
        for key in keys:
            if key:
                i = key & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = key
        self._count = count


def _holds(table: array[int], key: int) -> bool:
    mask = len(table) - 1
    i = key & mask
    k = table[i]
    while k:
        if k == key:
            return True
        i = (i + 1) & mask
        k = table[i]
    return False


def sitemap_seeds(url: str, rules: RobotsRules, scope: Scope | None) -> list[NewURL]:
    """The in-scope sitemaps of ``url``'s host (robots.txt's and /sitemap.xml), as seeds."""
    found: list[NewURL] = []
    for raw in (*rules.sitemaps(), "/sitemap.xml"):
        try:
            sm = exact_url(raw, base=url)
        except InvalidURLError:
            continue
        if scope is None or scope.allows(sm):
            found.append(NewURL(sm, 0, None))
    return found


# -------------------------------------------------------------------------------- scheduler
class CrawlScheduler:
    """Which leased URL starts next within the limits, and what each finished URL becomes.

    Counts two kinds of places: a URL holds a *host* place while its flow runs (robots,
    redirects, retries: :meth:`fetched` frees it) and a *global* place until its line is
    written (:meth:`done` frees it), so slow parsing or writing slows fetching down instead of
    growing memory. The per-host request limit itself is the politeness slot table's, in the
    effect drivers; this one keeps a host from taking all the global places.
    """

    def __init__(
        self, cfg: SchedulerConfig, scope: Scope | None = None, *, previous: int = 0
    ) -> None:
        self.cfg = cfg
        self.scope = scope
        self.previous = previous  # URLs finished by earlier runs (max_pages counts them)
        self.stopping = False
        self._ready: dict[str, deque[FrontierItem]] = {}
        self.buffered = 0  # leased, not started
        self.in_flight = 0  # started, line not yet written
        self._host_running: dict[str, int] = {}
        self._dispatched = 0
        self._dry_until = 0.0  # monotonic time before which the frontier has nothing ready
        self._links = LinkFilter(scope)
        self._sitemap_hosts: set[str] = set()
        self._paced: set[str] = set()  # hosts with a Crawl-delay: one start per wake-up

    # -------------------------------------------------------------------------- dispatching
    def limit_left(self) -> int | None:
        """URLs this run may still start (None: no ``max_pages``)."""
        if self.cfg.max_pages is None:
            return None
        return self.cfg.max_pages - self.previous - self._dispatched

    def lease_want(self, mono: float, capacity: int) -> int:
        """How many URLs to lease now: 0 when stopping, when the buffer is full enough, or when
        the frontier was dry a moment ago. Leases come in batches (one SQL transaction each)."""
        if self.stopping or mono < self._dry_until:
            return 0
        cap = max(2 * capacity, 64) if self.cfg.lease_batch is None else self.cfg.lease_batch
        want = cap - self.buffered
        left = self.limit_left()
        if left is not None:
            want = min(want, left - self.buffered)
        if want <= 0 or (self.buffered and want < min(64, cap // 4)):
            return 0
        return want

    def leased(self, items: Iterable[FrontierItem], short: bool, mono: float) -> None:
        """Take what a lease returned (minus any the driver marked instead of fetching);
        ``short``: it returned fewer than asked, the frontier has nothing more ready now."""
        for item in items:
            self._ready.setdefault(item.host, deque()).append(item)
            self.buffered += 1
        self.dry(short, mono)

    def dry(self, dry: bool, mono: float) -> None:
        """A lease came back short (True), or URLs were added or rescheduled (False)."""
        self._dry_until = mono + DRY_RECHECK if dry else 0.0

    def start(
        self,
        capacity: int,
        *,
        can_start: Callable[[str], bool] | None = None,
        host_limit: Callable[[str], int] | None = None,
    ) -> list[FrontierItem]:
        """The leased URLs to start now, at most ``capacity`` in flight in total and ``per_host``
        per host, or ``host_limit(host)``: a backend that caps each host's requests itself may
        hold more of its URLs (the processes mode queues them at its workers).
        ``can_start(host)``: the host's politeness slot is free now (drivers that see the slot
        table pass it: a URL then never waits for its host while holding a place); a host with
        a delay gets one start per call."""
        if self.stopping:
            return []
        out: list[FrontierItem] = []
        pacing = self.cfg.delay > 0
        for host in list(self._ready):
            queue = self._ready[host]
            limit = self.cfg.per_host if host_limit is None else host_limit(host)
            while (
                queue
                and self.in_flight < capacity
                and self._host_running.get(host, 0) < limit
                and (can_start is None or can_start(host))
            ):
                item = queue.popleft()
                self.buffered -= 1
                self._dispatched += 1
                self.in_flight += 1
                self._host_running[host] = self._host_running.get(host, 0) + 1
                out.append(item)
                if can_start is not None and (pacing or host in self._paced):
                    # more would only queue up, holding global places, until the delay lets
                    # them through one by one
                    break
            if not queue:
                del self._ready[host]
            if self.in_flight >= capacity:
                break
        return out

    def fetched(self, item: FrontierItem) -> None:
        """The URL's flow ended: its host place is free (called once per started URL)."""
        n = self._host_running.get(item.host, 1) - 1
        if n > 0:
            self._host_running[item.host] = n
        else:
            self._host_running.pop(item.host, None)

    def done(self, item: FrontierItem) -> None:
        """The URL is archived, rescheduled or released: its global place is free."""
        self.in_flight -= 1

    def waiting_hosts(self, limit: int = 1000) -> list[str]:
        """Hosts with leased URLs waiting to start (the first ``limit``)."""
        return list(self._ready)[:limit]

    # ------------------------------------------------------------------------------ finishing
    def finish(self, item: FrontierItem, retry_later: float | None, wall: float) -> Plan:
        """What a finished URL becomes. ``retry_later``: the flow could not fetch the host's
        robots.txt and asks to be tried later; the retry waits at least until that verdict may
        be asked for again (``robots_retry``), in every mode alike."""
        if retry_later is not None and (self.stopping or item.attempts < self.cfg.retries):
            if self.stopping:
                return Release()
            self.dry(False, 0.0)
            return Retry(wall + max(retry_later, self.cfg.robots_retry))
        return Commit()

    def links(self, item: FrontierItem, links: Iterable[str], from_sitemap: bool) -> list[NewURL]:
        """The new in-scope links of a page for the frontier: a sitemap's URLs count as seeds
        (the sitemap's depth), a page's links one level deeper."""
        depth = link_depth(item, from_sitemap, self.cfg.max_depth)
        if depth is None:
            return []
        new = [NewURL(link, depth, item.url) for link in self._links(links)]
        if new:
            self.dry(False, 0.0)
        return new

    def forget_links(self) -> None:
        """Forget the links met so far: each is offered to the frontier again when met again."""
        self._links = LinkFilter(self.scope, self._links.size)

    def robots_learned(self, host: str, url: str, rules: RobotsRules) -> list[NewURL]:
        """A host's robots.txt verdict came in: note a Crawl-delay (pacing) and return the
        host's sitemaps as seeds, once per host, when following with sitemaps on."""
        if rules.crawl_delay(self.cfg.user_agent):
            self._paced.add(host)
        if not (self.cfg.sitemaps and self.cfg.follow) or host in self._sitemap_hosts:
            return []
        self._sitemap_hosts.add(host)
        found = sitemap_seeds(url, rules, self.scope)
        if found:
            self.dry(False, 0.0)
        return found

    # --------------------------------------------------------------------------------- timing
    def stop(self) -> None:
        """Lease and start no more; in-flight URLs finish."""
        self.stopping = True

    @property
    def idle(self) -> bool:
        """Nothing in flight, and nothing leased waiting to start (or stopping)."""
        return self.in_flight == 0 and (self.stopping or not self.buffered)

    def end_or_wait(self, next_ready_at: float | None, wall: float) -> float | None:
        """For an idle driver: None when the crawl is over (nothing queued, the page limit
        reached, or stopping); else how long to sleep before leasing again."""
        left = self.limit_left()
        if self.stopping or next_ready_at is None or (left is not None and left <= 0):
            return None
        wait = min(max(next_ready_at - wall, 0.0), MAX_IDLE_WAIT)
        if wait <= 0:
            self.dry(False, 0.0)  # a URL is ready now: lease it without waiting
        return wait

    def wake_in(self, host_wait: Callable[[str], float] | None = None) -> float:
        """How long a busy driver may wait for a result before it looks again: until the
        earliest waiting host's slot frees (``host_wait(host)``: seconds, inf while only a
        finish can free it), at most :data:`MAX_BUSY_WAIT`."""
        if host_wait is None:
            return MAX_BUSY_WAIT
        waits = [host_wait(h) for h in self.waiting_hosts()]
        finite = [max(w, 0.001) for w in waits if w != float("inf")]
        return min([MAX_BUSY_WAIT, *finite])
