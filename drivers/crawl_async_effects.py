"""The effects driver of a ``processes`` worker: one asyncio loop, its slot table, its robots
cache, its aiohttp session (:mod:`drivers.crawl_processes` runs one per worker process).

It drives the same flows as the engine (:func:`crawler.core.flow.url_flow`), with two additions
for a host shared by several workers: verdicts fetched by another worker can be installed
(:meth:`AsyncEffects.install_robots`), and a 429/503 pause is reported (``on_backoff``) and
taken from the others (:meth:`AsyncEffects.backoff`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Generator
from typing import Any

from crawler.core.flow import (
    FetchEffect,
    FetchResult,
    Outcome,
    RobotsEffect,
    SleepEffect,
    robots_flow,
    url_flow,
)
from crawler.core.frontier import FrontierItem
from crawler.core.parse import ParsedPage
from crawler.core.politeness import SlotTable
from crawler.core.robots import RobotsRules
from crawler.core.urls import Scope, host_key
from crawler.page_steps import (
    ROBOTS_CACHE,
    cached_robots,
    flow_config,
    remember_robots,
    slot_wait,
)
from crawler.settings import CrawlerSettings
from crawler.transports.aiohttp_fetch import AiohttpFetcher
from crawler.work import Work, parse_outcome
from foundation.errors import FetchError

__all__ = ["AsyncEffects"]


class AsyncEffects:
    """Drives flows on one event loop: slot table, robots cache, aiohttp fetches."""

    def __init__(
        self,
        settings: CrawlerSettings,
        scope: Scope | None,
        fetcher: AiohttpFetcher,
        rand: Callable[[], float] = random.random,
        on_backoff: Callable[[str, float], None] | None = None,
    ) -> None:
        self.s = settings
        self._on_backoff = on_backoff  # (host, wall-clock end): told to the other workers
        self.flow = flow_config(settings, scope)
        self.fetcher = fetcher
        self._rand = rand
        self.slots = SlotTable(settings.per_host, settings.delay)
        self._changed = asyncio.Event()
        self._robots: OrderedDict[str, RobotsRules] = OrderedDict()
        self._pending: dict[str, asyncio.Future[RobotsRules]] = {}

    def backoff(self, host: str, until: float) -> None:
        """Pause ``host`` until wall-clock ``until`` (another worker got a 429/503 from it)."""
        self.slots.set_backoff(host, time.monotonic() + max(0.0, until - time.time()))
        self._notify()

    def install_robots(self, host: str, rules: RobotsRules) -> None:
        """Take a verdict another worker fetched (the coordinator ships it with a spread host)."""
        if host not in self._robots:
            self._robots[host] = rules
            if len(self._robots) > ROBOTS_CACHE:
                self._robots.popitem(last=False)

    async def crawl(self, item: FrontierItem) -> Work:
        fresh: list[tuple[str, RobotsRules]] = []
        outcome = await self.drive(url_flow(item.url, self.flow, self._rand), fresh)
        assert isinstance(outcome, Outcome)
        try:
            parsed = parse_outcome(self.s, outcome)
        except Exception as exc:  # parse_page never raises; a bug must not kill the worker
            parsed = ParsedPage(error=f"{type(exc).__name__}: {exc}")
        return Work(item, outcome, parsed, tuple(fresh))

    async def drive(
        self, gen: Generator[Any, object, Any], fresh: list[tuple[str, RobotsRules]]
    ) -> Any:
        value: object = None
        while True:
            try:
                effect = gen.send(value)
            except StopIteration as stop:
                return stop.value
            if isinstance(effect, FetchEffect):
                value = await self._fetch(effect)
            elif isinstance(effect, RobotsEffect):
                value = await self._robots_for(effect.url, fresh)
            elif isinstance(effect, SleepEffect):
                if effect.host is not None:
                    self.slots.set_backoff(effect.host, time.monotonic() + effect.seconds)
                    if self._on_backoff is not None:
                        self._on_backoff(effect.host, time.time() + effect.seconds)
                await asyncio.sleep(effect.seconds)
                value = None
            else:  # pragma: no cover - the flow yields only the effects above
                raise TypeError(f"unknown effect {effect!r}")

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _fetch(self, effect: FetchEffect) -> FetchResult | FetchError:
        host = effect.host
        while True:
            now = time.monotonic()
            if self.slots.can_start(host, now):
                self.slots.start(host, now)
                break
            wait = self.slots.wait_time(host, now)
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), slot_wait(wait))
        try:
            return await self.fetcher.fetch(effect.request)
        except FetchError as exc:
            return exc
        finally:
            self.slots.finish(host, time.monotonic())
            self._notify()

    async def _robots_for(self, url: str, fresh: list[tuple[str, RobotsRules]]) -> RobotsRules:
        host = host_key(url)
        rules = cached_robots(self._robots, host, time.time(), self.s.robots_retry)
        if rules is not None:
            return rules
        pending = self._pending.get(host)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[RobotsRules] = asyncio.get_running_loop().create_future()
        self._pending[host] = fut
        try:
            got = await self.drive(robots_flow(url, self.flow, time.time()), fresh)
        except BaseException:
            fut.cancel()
            raise
        finally:
            del self._pending[host]
        assert isinstance(got, RobotsRules)
        remember_robots(self._robots, self.slots, host, got, self.s.user_agent)
        fresh.append((host, got))
        fut.set_result(got)
        return got
