"""What every non-asyncio crawl driver shares: one URL's work and the blocking effect driver.

A worker (thread, greenlet, the sequential loop, or a coroutine in a worker process) turns a
:class:`~crawler.core.frontier.FrontierItem` into a :class:`Work`: the flow's outcome (driven
through :func:`crawler.core.flow.url_flow`, which owns robots, redirects and retries) and the
parsed page. The coordinator (:mod:`drivers.crawl_coordinator`) alone touches the frontier and
pages.jsonl; in the processes mode each worker writes its own WARC records and returns an
:class:`ArchivedWork` instead. The pages.jsonl row is built here with the same fields as the
asyncio engine's, so every mode writes the same archive.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

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
    cached_robots,
    flow_config,
    remember_robots,
    slot_wait,
)
from crawler.settings import CrawlerSettings
from crawler.work import Work, parse_outcome
from foundation.errors import FetchError

if TYPE_CHECKING:  # the processes mode's workers never import requests
    from crawler.transports.requests_fetch import RequestsFetcher

__all__ = ["HANDLED_EFFECTS", "BlockingEffects"]

# every effect of crawler.core.flow the drivers perform (a unit test compares it with the flow)
HANDLED_EFFECTS = (FetchEffect, RobotsEffect, SleepEffect)


class BlockingEffects:
    """Drives flows with blocking calls, shared by all workers of one process.

    Politeness slots and the robots cache are shared data behind one lock; a worker waiting for a
    host's slot waits on a condition (woken when any fetch of that host ends). Only one worker
    fetches a host's robots.txt; the others wait for its verdict. With gevent's patching the lock
    and condition are greenlet-aware, so the same code serves threads and greenlets.
    """

    def __init__(
        self,
        settings: CrawlerSettings,
        scope: Scope | None,
        fetcher: RequestsFetcher,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.s = settings
        self.flow = flow_config(settings, scope)
        self.fetcher = fetcher
        self._rand = rand
        self.slots = SlotTable(settings.per_host, settings.delay)
        self._cond = threading.Condition()
        self._robots: OrderedDict[str, RobotsRules] = OrderedDict()
        self._robots_busy: set[str] = set()
        self._fresh = threading.local()  # robots verdicts this worker fetched for its item

    def crawl(self, item: FrontierItem) -> Work:
        """Fetch (with robots, redirects, retries) and parse one URL."""
        self._fresh.robots = []
        outcome = self.drive(url_flow(item.url, self.flow, self._rand))
        assert isinstance(outcome, Outcome)
        try:
            parsed = parse_outcome(self.s, outcome)
        except Exception as exc:  # parse_page never raises; a bug must not kill the worker
            parsed = ParsedPage(error=f"{type(exc).__name__}: {exc}")
        return Work(item, outcome, parsed, tuple(self._fresh.robots))

    def drive(self, gen: Generator[Any, object, Any]) -> Any:
        value: object = None
        while True:
            try:
                effect = gen.send(value)
            except StopIteration as stop:
                return stop.value
            if isinstance(effect, FetchEffect):
                value = self._fetch(effect)
            elif isinstance(effect, RobotsEffect):
                value = self._robots_for(effect.url)
            elif isinstance(effect, SleepEffect):
                if effect.host is not None:
                    with self._cond:
                        self.slots.set_backoff(effect.host, time.monotonic() + effect.seconds)
                time.sleep(effect.seconds)
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
                wait = self.slots.wait_time(host, now)
                self._cond.wait(slot_wait(wait))
        try:
            return self.fetcher.fetch(effect.request)
        except FetchError as exc:
            return exc
        finally:
            with self._cond:
                self.slots.finish(host, time.monotonic())
                self._cond.notify_all()

    def _robots_for(self, url: str) -> RobotsRules:
        host = host_key(url)
        with self._cond:
            while True:
                rules = cached_robots(self._robots, host, time.time(), self.s.robots_retry)
                if rules is not None:
                    return rules
                if host not in self._robots_busy:
                    self._robots_busy.add(host)
                    break
                self._cond.wait(1.0)
        try:
            rules = self.drive(robots_flow(url, self.flow, time.time()))
            assert isinstance(rules, RobotsRules)
            with self._cond:
                remember_robots(self._robots, self.slots, host, rules, self.s.user_agent)
            fresh = getattr(self._fresh, "robots", None)
            if fresh is not None:
                fresh.append((host, rules))
            return rules
        finally:
            with self._cond:
                self._robots_busy.discard(host)
                self._cond.notify_all()
