"""Performs a crawl flow's effects on one event loop: the asyncio engine and every worker
process of the processes mode drive their flows through this one class.

Each effect maps onto an asyncio primitive: a fetch waits for its host's politeness slot (a
future per waiting fetch, woken when a fetch of that host ends), a robots.txt lookup either
fetches the file (the first caller per host, :class:`crawler.core.scheduler.RobotsBook`) or
awaits that caller's verdict, a sleep is ``asyncio.sleep`` (a 429/503 pause also pauses the
host's slot). For a host shared by several worker processes, verdicts fetched by another worker
can be installed and a pause reported (``on_backoff``) and taken from the others.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from crawler.core.flow import (
    FetchEffect,
    FetchResult,
    Outcome,
    RobotsEffect,
    SleepEffect,
    host_of,
    robots_flow,
    url_flow,
)
from crawler.core.frontier import FrontierItem
from crawler.core.politeness import SlotTable
from crawler.core.robots import RobotsRules
from crawler.core.scheduler import RobotsBook, slot_wait
from crawler.core.urls import Scope
from crawler.page_steps import flow_config
from crawler.parse import ParsedPage
from crawler.redis_hosts import RedisHosts
from crawler.settings import CrawlerSettings
from crawler.work import Work, parse_outcome
from foundation.errors import FetchError

if TYPE_CHECKING:
    from crawler.transports.aiohttp_fetch import AiohttpFetcher

__all__ = ["AsyncEffects"]

Fresh = list[tuple[str, RobotsRules]]


class AsyncEffects:
    """Drives flows on one event loop: slot table, robots verdicts, aiohttp fetches."""

    def __init__(
        self,
        settings: CrawlerSettings,
        scope: Scope | None,
        fetcher: AiohttpFetcher,
        rand: Callable[[], float] = random.random,
        *,
        on_backoff: Callable[[str, float], None] | None = None,
        on_slot_free: Callable[[], None] | None = None,
        shared: RedisHosts | None = None,
    ) -> None:
        self.settings = settings
        # a Redis job: the job-wide host slot and robots.txt verdict come first (redis_hosts)
        self.shared = shared
        self.flow = flow_config(settings, scope)
        self.fetcher = fetcher
        self.slots = SlotTable(settings.per_host, settings.delay)
        self.robots = RobotsBook(
            settings.robots_retry, user_agent=settings.user_agent, on_delay=self.slots.set_delay
        )
        self._rand = rand
        self._on_backoff = on_backoff  # (host, wall-clock end): told to the other workers
        self._on_slot_free = on_slot_free
        self._slot_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._verdicts: dict[str, asyncio.Future[RobotsRules]] = {}
        self._robots_records: list[FetchResult] = []
        # (host, why, wall-clock end): a host's URLs wait (robots.txt retries), for the display
        self.on_waiting: Callable[[str, str, float], None] | None = None

    # ---------------------------------------------------------------------- from other workers
    def backoff(self, host: str, until: float) -> None:
        """Pause ``host`` until wall-clock ``until`` (another worker got a 429/503 from it)."""
        self.slots.set_backoff(host, time.monotonic() + max(0.0, until - time.time()))
        self._wake(host)

    def install_robots(self, host: str, rules: RobotsRules) -> None:
        """Take a verdict another worker fetched (the coordinator ships it with a spread host)."""
        if not self.robots.known(host):
            self.robots.install(host, rules)

    # ------------------------------------------------------------------------------- flows
    async def outcome(self, item: FrontierItem, fresh: Fresh | None = None) -> Outcome:
        """Fetch one URL (robots, redirects, retries); verdicts fetched go to ``fresh``."""
        got = await self.drive(url_flow(item.url, self.flow, self._rand), fresh)
        assert isinstance(got, Outcome)
        return got

    async def crawl(
        self, item: FrontierItem, on_fetched: Callable[[FrontierItem], None] | None = None
    ) -> Work:
        """Fetch and parse (inline) one URL: a worker process's whole job for it.
        ``on_fetched(item)`` is told when the fetching ends, before the parse."""
        fresh: Fresh = []
        outcome = await self.outcome(item, fresh)
        if on_fetched is not None:
            on_fetched(item)
            await asyncio.sleep(0)  # what on_fetched queued leaves before the parse starts
        try:
            parsed = parse_outcome(self.settings, outcome)
        except Exception as exc:  # parse_page never raises; a bug must not kill the worker
            parsed = ParsedPage(error=f"{type(exc).__name__}: {exc}")
        return Work(item, outcome, parsed, tuple(fresh), self.take_robots_records())

    def take_robots_records(self) -> tuple[FetchResult, ...]:
        """The robots.txt responses fetched since the last call, to archive once each."""
        taken, self._robots_records = tuple(self._robots_records), []
        return taken

    async def drive(self, gen: Generator[Any, object, Any], fresh: Fresh | None) -> Any:
        value: object = None
        while True:
            try:
                effect = gen.send(value)
            except StopIteration as stop:
                return stop.value
            if isinstance(effect, FetchEffect):
                value = await self._fetch(effect)
                if effect.purpose == "robots" and isinstance(value, FetchResult):
                    self._robots_records.append(value)
            elif isinstance(effect, RobotsEffect):
                value = await self._robots_for(effect.url, fresh)
            elif isinstance(effect, SleepEffect):
                if effect.waiting is not None and self.on_waiting is not None:
                    self.on_waiting(*effect.waiting, time.time() + effect.seconds)
                if effect.host is not None:
                    self.slots.set_backoff(effect.host, time.monotonic() + effect.seconds)
                    if self._on_backoff is not None:
                        self._on_backoff(effect.host, time.time() + effect.seconds)
                    if self.shared is not None:
                        await self.shared.pause(effect.host, effect.seconds)
                await asyncio.sleep(effect.seconds)
                value = None
            else:  # pragma: no cover - the flow yields only the effects above
                raise TypeError(f"unknown effect {effect!r}")

    # ----------------------------------------------------------------------------- effects
    async def _fetch(self, effect: FetchEffect) -> FetchResult | FetchError:
        host = effect.host
        loop = asyncio.get_running_loop()
        while True:
            now = time.monotonic()
            if self.slots.can_start(host, now):
                self.slots.start(host, now)
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._slot_waiters.setdefault(host, []).append(waiter)
            await asyncio.wait([waiter], timeout=slot_wait(self.slots.wait_time(host, now)))
        token: str | None = None
        try:
            if self.shared is not None:
                token = await self.shared.acquire(host, self.slots.slot(host).delay)
            return await self.fetcher.fetch(effect.request)
        except FetchError as exc:
            return exc
        finally:
            if token is not None:
                assert self.shared is not None
                await self.shared.release(token)
            self.slots.finish(host, time.monotonic())
            self._wake(host)

    def _wake(self, host: str) -> None:
        for waiter in self._slot_waiters.pop(host, ()):
            if not waiter.done():
                waiter.set_result(None)
        if self._on_slot_free is not None:
            self._on_slot_free()

    async def _robots_for(self, url: str, fresh: Fresh | None) -> RobotsRules:
        host = host_of(url)
        while True:
            rules = self.robots.lookup(host, time.time())
            if rules is not None:
                return rules
            if self.robots.claim(host):
                break
            # another flow fetches it: its verdict (or, if it failed, a new claim) comes next
            pending = self._verdicts.get(host)
            if pending is not None:
                await asyncio.wait([pending])
        verdict: asyncio.Future[RobotsRules] = asyncio.get_running_loop().create_future()
        self._verdicts[host] = verdict
        try:
            got = await self._fetch_robots(url, host, fresh)
        except BaseException:
            self.robots.release(host)
            verdict.cancel()
            raise
        finally:
            del self._verdicts[host]
        self.robots.store(host, got)
        if fresh is not None:
            fresh.append((host, got))
        verdict.set_result(got)
        return got

    async def _fetch_robots(self, url: str, host: str, fresh: Fresh | None) -> RobotsRules:
        """Fetch the verdict, or, in a Redis job, take the one another worker fetched (at most
        one worker fetches a host's robots.txt at a time; the others wait for its verdict)."""
        shared = self.shared
        while shared is not None:
            rules = await shared.robots(host)
            if rules is not None and not rules.is_stale(time.time(), retry=self.robots.retry):
                return rules
            token = await shared.claim_robots(host)
            if token is None:
                await asyncio.sleep(0.05)
                continue
            try:
                got = await self.drive(robots_flow(url, self.flow, time.time(), self._rand), fresh)
                assert isinstance(got, RobotsRules)
                await shared.store_robots(host, got, token)
            finally:
                await shared.unclaim_robots(token)
            return got
        got = await self.drive(robots_flow(url, self.flow, time.time(), self._rand), fresh)
        assert isinstance(got, RobotsRules)
        return got
