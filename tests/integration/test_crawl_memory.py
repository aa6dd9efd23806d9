"""Backpressure: with parsing made artificially slow, fetched pages never pile up in memory."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil

from crawler.core.frontier import MemoryFrontier
from crawler.core.urls import Scope
from crawler.parse import ParsedPage, ParseInput, parse_any
from drivers.crawl_asyncio import Engine
from drivers.crawl_run import seed_frontier
from fetchlab.settings import load_settings
from tests.fixtures.web import WebSite

PARSE_DELAY = 0.02


def slow_parse(inp: ParseInput) -> ParsedPage:
    """Top level so the parser process can import it: the real parser, 20 ms slower."""
    time.sleep(PARSE_DELAY)
    return parse_any(inp)


async def test_slow_parser_bounds_memory(web_site: WebSite, tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {
            "crawler": {
                "out": str(tmp_path / "out"),
                "follow": True,
                "concurrency": 16,
                "per_host": 16,
                "max_pages": 120,
                "parse_workers": 1,
                "parse_batch": 4,
                "max_pending_parse": 4,
                "frontier": "memory",
            }
        },
        env={},
    ).crawler
    frontier = MemoryFrontier()
    seed_frontier(frontier, [web_site.start_url])
    engine = Engine(
        settings, frontier, scope=Scope("host", (web_site.start_url,)), parse_fn=slow_parse
    )
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = base
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.02):
            peak = max(peak, proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        result = await engine.run()
    finally:
        stop.set()
        sampler.join()
        frontier.close()
    elapsed = time.monotonic() - started
    stats = result.stats
    assert stats.done + stats.failed == 120
    # the parser was the bottleneck: the run took at least the parse time of every page...
    assert elapsed >= 120 * PARSE_DELAY * 0.9
    # ...and yet fetched pages waiting for it stayed within the configured bounds
    assert stats.max_pending <= 4
    assert stats.max_held <= 16
    assert peak - base < 60 * 1024 * 1024, f"RSS grew by {(peak - base) / 1e6:.0f} MB"
    snap = stats.snapshot()
    assert {"pages/s", "MB/s", "in flight", "queued", "done", "failed"} <= set(snap)
    assert snap["done"] == stats.done and snap["in flight"] == 0
