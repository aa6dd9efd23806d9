"""``--mode processes``: "processes plus coroutines". P worker processes, each an asyncio loop
with its own aiohttp session, fetch and parse; this process coordinates and is the one writer.

URLs go to worker ``crc32(host) % P``, so each host lives in exactly one worker and its
politeness slot and robots.txt cache stay exact there (a single-host crawl therefore uses one
worker for the network and parsing, plus this process for the archive: a two-stage pipeline,
not P-way parallelism). Work comes back over one queue as :class:`~modes.crawl_common.Work`
(bodies pickled once: cheap next to parsing them) and the coordinator commits it to the same
archive every mode writes. Workers ignore SIGINT: Ctrl-C is the coordinator's to handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import random
import signal
import threading
import time
import zlib
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
from crawler.settings import CrawlerSettings
from crawler.transports.aiohttp_fetch import AiohttpFetcher
from modes._exceptions import FetchError, ModeError
from modes.crawl_common import ROBOTS_CACHE, Work, flow_config, parse_outcome
from modes.runtime import raise_nofile_limit, run
from modes.threads_util import check_process_count

__all__ = ["AsyncEffects", "ProcessBackend", "worker_main"]


class AsyncEffects:
    """Drives flows on one event loop: slot table, robots cache, aiohttp fetches."""

    def __init__(
        self,
        settings: CrawlerSettings,
        scope: Scope | None,
        fetcher: AiohttpFetcher,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.s = settings
        self.flow = flow_config(settings, scope)
        self.fetcher = fetcher
        self._rand = rand
        self.slots = SlotTable(settings.per_host, settings.delay)
        self._changed = asyncio.Event()
        self._robots: OrderedDict[str, RobotsRules] = OrderedDict()
        self._pending: dict[str, asyncio.Future[RobotsRules]] = {}

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
                timeout = 1.0 if wait == float("inf") else min(max(wait, 0.001), 1.0)
                await asyncio.wait_for(changed.wait(), timeout)
        try:
            return await self.fetcher.fetch(effect.request)
        except FetchError as exc:
            return exc
        finally:
            self.slots.finish(host, time.monotonic())
            self._notify()

    async def _robots_for(self, url: str, fresh: list[tuple[str, RobotsRules]]) -> RobotsRules:
        host = host_key(url)
        rules = self._robots.get(host)
        if rules is not None and not rules.is_stale(time.time()):
            self._robots.move_to_end(host)
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
        self._robots[host] = got
        if len(self._robots) > ROBOTS_CACHE:
            self._robots.popitem(last=False)
        delay = got.crawl_delay(self.s.user_agent)
        if delay:
            self.slots.set_delay(host, delay)
        fresh.append((host, got))
        fut.set_result(got)
        return got


# -- the worker process ----------
def worker_main(
    settings: CrawlerSettings, scope: Scope | None, inq: Any, outq: Any, concurrency: int
) -> None:
    """Top-level (picklable) body of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run(_worker(settings, scope, inq, outq, concurrency), settings.loop)


async def _worker(
    settings: CrawlerSettings, scope: Scope | None, inq: Any, outq: Any, concurrency: int
) -> None:
    raise_nofile_limit(concurrency + 256)
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[FrontierItem | None] = asyncio.Queue()

    def reader() -> None:  # blocking queue reads stay off the loop
        while True:
            item = inq.get()
            loop.call_soon_threadsafe(items.put_nowait, item)
            if item is None:
                return

    threading.Thread(target=reader, name="crawl-inbox", daemon=True).start()
    fetcher = AiohttpFetcher(
        concurrency=concurrency, per_host=settings.per_host, timeout=settings.timeout
    )
    effects = AsyncEffects(settings, scope, fetcher)
    tasks: set[asyncio.Task[None]] = set()

    async def one(item: FrontierItem) -> None:
        try:
            outq.put(await effects.crawl(item))
        except Exception as exc:  # a bug, not a page fault: the coordinator stops the crawl
            outq.put(("error", item.url, f"{type(exc).__name__}: {exc}"))

    try:
        while (item := await items.get()) is not None:
            task = asyncio.create_task(one(item))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        await fetcher.aclose()


# -- the coordinator's side ----------
class ProcessBackend:
    def __init__(self, settings: CrawlerSettings, scope: Scope | None, workers: int) -> None:
        self.capacity = settings.concurrency
        self._n = check_process_count(workers)
        ctx = multiprocessing.get_context("forkserver")  # never fork a process with threads
        self._inqs = [ctx.Queue() for _ in range(self._n)]
        self._outq = ctx.Queue()
        self._procs = [
            ctx.Process(
                target=worker_main,
                args=(settings, scope, self._inqs[k], self._outq, settings.concurrency),
                name=f"crawl-worker-{k}",
                daemon=True,
            )
            for k in range(self._n)
        ]

    def start(self) -> None:
        for proc in self._procs:
            proc.start()

    def submit(self, item: FrontierItem) -> None:
        self._inqs[zlib.crc32(item.host.encode()) % self._n].put(item)

    def _take(self, got: object) -> Work:
        if isinstance(got, Work):
            return got
        raise ModeError(f"a crawl worker process failed on {got[1]}: {got[2]}")  # type: ignore[index]

    def results(self, timeout: float) -> list[Work]:
        try:
            got = self._outq.get(timeout=timeout)
        except queue.Empty:
            dead = [p for p in self._procs if p.exitcode is not None]
            if dead:
                raise ModeError(
                    f"crawl worker {dead[0].name} died (exit status {dead[0].exitcode}); "
                    "the archive is consistent: rerun to resume"
                ) from None
            return []
        out = [self._take(got)]
        while True:
            try:
                out.append(self._take(self._outq.get_nowait()))
            except queue.Empty:
                return out

    def close(self, abandon: bool) -> None:
        for inq in self._inqs:
            with contextlib.suppress(OSError, ValueError):
                inq.put(None)
        deadline = time.monotonic() + (2.0 if abandon else 30.0)
        for proc in self._procs:
            if proc.pid is None:
                continue
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for q in (*self._inqs, self._outq):
            q.cancel_join_thread()  # nobody reads them any more: do not wait for their feeders
            q.close()
