"""Politeness against a real aiohttp server: --delay, robots.txt Crawl-delay, per-host limit."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from crawler.core.frontier import MemoryFrontier
from drivers.crawl_asyncio import Engine, seed_frontier
from fetchlab.settings import load_settings

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


def _app(robots: str, hold: float) -> tuple[web.Application, list[float], list[int]]:
    times: list[float] = []
    active = [0, 0]  # now, peak

    async def robots_txt(request: web.Request) -> web.Response:
        return web.Response(text=robots)

    async def page(request: web.Request) -> web.Response:
        times.append(time.monotonic())
        active[0] += 1
        active[1] = max(active[1], active[0])
        try:
            await asyncio.sleep(hold)
        finally:
            active[0] -= 1
        return web.Response(text="<title>p</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/robots.txt", robots_txt)
    app.router.add_get("/p/{n}", page)
    return app, times, active


async def _crawl(base: str, out: Path, n: int, **crawler: Any) -> None:
    settings = load_settings(
        None,
        {"crawler": {"out": str(out), "frontier": "memory", "parse_workers": 0, **crawler}},
        env={},
    ).crawler
    frontier = MemoryFrontier()
    seed_frontier(frontier, [f"{base}/p/{i}" for i in range(n)])
    try:
        result = await Engine(settings, frontier).run()
    finally:
        frontier.close()
    assert result.stats.done == n


def _gaps(times: list[float]) -> list[float]:
    times = sorted(times)
    return [b - a for a, b in itertools.pairwise(times)]


async def test_delay_spaces_requests(aiohttp_server: ServerFactory, tmp_path: Path) -> None:
    app, times, _ = _app("User-agent: *\nAllow: /\n", 0.0)
    server = await aiohttp_server(app)
    await _crawl(str(server.make_url("")).rstrip("/"), tmp_path / "o", 5, delay=0.15)
    assert len(times) == 5
    assert min(_gaps(times)) >= 0.12  # 0.15 s apart, minus scheduling jitter


async def test_robots_crawl_delay_wins(aiohttp_server: ServerFactory, tmp_path: Path) -> None:
    app, times, _ = _app("User-agent: *\nCrawl-delay: 0.25\n", 0.0)
    server = await aiohttp_server(app)
    await _crawl(str(server.make_url("")).rstrip("/"), tmp_path / "o", 4, delay=0.05)
    assert min(_gaps(times)) >= 0.2  # Crawl-delay 0.25 beats --delay 0.05


async def test_per_host_limit(aiohttp_server: ServerFactory, tmp_path: Path) -> None:
    app, _, active = _app("", 0.1)
    server = await aiohttp_server(app)
    await _crawl(str(server.make_url("")).rstrip("/"), tmp_path / "o", 12, per_host=3)
    assert active[1] == 3
