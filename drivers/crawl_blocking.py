"""Performs a crawl flow's effects with blocking calls: the threads, gevent and sequential modes.

Each effect maps onto a blocking primitive shared by every worker of the process: a fetch waits
on one condition for its host's politeness slot (woken when a fetch ends), a robots.txt lookup
either fetches the file (the first worker per host, :class:`crawler.core.scheduler.RobotsBook`)
or waits on the condition for that worker's verdict, a sleep is ``time.sleep``. With gevent's
patching the lock and condition are greenlet-aware, so the same code serves threads and
greenlets. The decisions around the flows are the coordinator's scheduler's.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
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
from crawler.settings import CrawlerSettings
from crawler.work import Work, parse_outcome
from foundation.errors import FetchError

if TYPE_CHECKING:  # the processes mode's workers never import requests
    from crawler.transports.requests_fetch import RequestsFetcher

__all__ = ["HANDLED_EFFECTS", "BlockingEffects"]

# every effect of crawler.core.flow the drivers perform (a unit test compares it with the flow)
HANDLED_EFFECTS = (FetchEffect, RobotsEffect, SleepEffect)


class BlockingEffects:
    """Drives flows with blocking calls; one instance serves every worker of the process."""

    def __init__(
        self,
        settings: CrawlerSettings,
        scope: Scope | None,
        fetcher: RequestsFetcher,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.flow = flow_config(settings, scope)
        self.fetcher = fetcher
        self._rand = rand
        self.slots = SlotTable(settings.per_host, settings.delay)
        self.robots = RobotsBook(
            settings.robots_retry, user_agent=settings.user_agent, on_delay=self.slots.set_delay
        )
        self._cond = threading.Condition()
        self._fresh = threading.local()  # robots verdicts this worker fetched for its item
        self._robots_records: deque[FetchResult] = deque()
        # (host, why, wall-clock end): a host's URLs wait (robots.txt retries), for the display
        self.on_waiting: Callable[[str, str, float], None] | None = None
        # a flow's waits (backoffs, retries); the sequential mode's ends early on Ctrl-C
        self.sleep: Callable[[float], None] = time.sleep

    def crawl(self, item: FrontierItem) -> Work:
        """Fetch (with robots, redirects, retries) and parse one URL."""
        self._fresh.robots = []
        outcome = self.drive(url_flow(item.url, self.flow, self._rand))
        assert isinstance(outcome, Outcome)
        try:
            parsed = parse_outcome(self.settings, outcome)
        except Exception as exc:  # parse_page never raises; a bug must not kill the worker
            parsed = ParsedPage(error=f"{type(exc).__name__}: {exc}")
        return Work(item, outcome, parsed, tuple(self._fresh.robots), self.take_robots_records())

    def take_robots_records(self) -> tuple[FetchResult, ...]:
        """The robots.txt responses fetched (by any worker) since the last call, each handed
        out once: deque pops are atomic, so no two workers' Work carries the same one."""
        taken = []
        while True:
            try:
                taken.append(self._robots_records.popleft())
            except IndexError:
                return tuple(taken)

    def drive(self, gen: Generator[Any, object, Any]) -> Any:
        value: object = None
        while True:
            try:
                effect = gen.send(value)
            except StopIteration as stop:
                return stop.value
            if isinstance(effect, FetchEffect):
                value = self._fetch(effect)
                if effect.purpose == "robots" and isinstance(value, FetchResult):
                    self._robots_records.append(value)
            elif isinstance(effect, RobotsEffect):
                value = self._robots_for(effect.url)
            elif isinstance(effect, SleepEffect):
                if effect.waiting is not None and self.on_waiting is not None:
                    self.on_waiting(*effect.waiting, time.time() + effect.seconds)
                if effect.host is not None:
                    with self._cond:
                        self.slots.set_backoff(effect.host, time.monotonic() + effect.seconds)
                self.sleep(effect.seconds)
                value = None
            else:  # pragma: no cover - the flow yields only the effects above
                raise TypeError(f"unknown effect {effect!r}")

    def _fetch(self, effect: FetchEffect) -> FetchResult | FetchError:
        host = effect.host
        with self._cond:
            while True:
                now = time.monotonic()
                if self.slots.can_start(host, now):
                    self.slots.start(host, now)
                    break
                self._cond.wait(slot_wait(self.slots.wait_time(host, now)))
        try:
            return self.fetcher.fetch(effect.request)
        except FetchError as exc:
            return exc
        finally:
            with self._cond:
                self.slots.finish(host, time.monotonic())
                self._cond.notify_all()

    def _robots_for(self, url: str) -> RobotsRules:
        host = host_of(url)
        with self._cond:
            while True:
                rules = self.robots.lookup(host, time.time())
                if rules is not None:
                    return rules
                if self.robots.claim(host):
                    break
                self._cond.wait(1.0)
        got: RobotsRules | None = None
        try:
            got = self.drive(robots_flow(url, self.flow, time.time(), self._rand))
            assert isinstance(got, RobotsRules)
        finally:
            with self._cond:
                if got is None:
                    self.robots.release(host)
                else:
                    self.robots.store(host, got)  # its Crawl-delay reaches the slot table
                self._cond.notify_all()
        fresh = getattr(self._fresh, "robots", None)
        if fresh is not None:
            fresh.append((host, got))
        return got
