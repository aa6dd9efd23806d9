"""The processes mode spreads one host over every worker, and the host never sees more than
``per_host`` connections or requests; a host with a delay stays with one worker, spaced.

The server is a small HTTP/1.1 keep-alive server on asyncio streams (a real loopback socket), so
it can count TCP connections, not only requests: each worker process has its own connection
pool, and the politeness promise is about what the host sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.cdxj import build_index
from crawler.core.urls import Scope
from crawler.frontier_sqlite import SqliteFrontier
from crawler.settings import CrawlerSettings
from crawler.warc import warc_files, warc_series
from drivers.crawl_run import seed_frontier
from drivers.dispatch import run_crawl
from foundation.frozen import build
from tests.integration.crawl_support import check_archive, pages

PAGES = 60


@dataclass
class Counting:
    robots: str
    hold: float = 0.01
    conns: list[int] = field(default_factory=lambda: [0, 0])  # open now, peak
    active: list[int] = field(default_factory=lambda: [0, 0])  # requests now, peak
    starts: list[float] = field(default_factory=list)
    paths: Counter[str] = field(default_factory=Counter)
    busy_once: set[str] = field(default_factory=set)  # answer 503 + Retry-After: 1 once
    busy_at: list[float] = field(default_factory=list)

    def body(self, path: str) -> tuple[int, str, bytes]:
        if path == "/robots.txt":
            return 200, "text/plain", self.robots.encode()
        if path.startswith("/p/") and path[3:].isdigit() and int(path[3:]) < PAGES:
            n = int(path[3:])
            links = "".join(f'<a href="/p/{(n * 7 + k) % PAGES}">x</a>' for k in range(1, 6))
            html = f"<html><title>page {n}</title><body>{links}</body></html>"
            return 200, "text/html", html.encode()
        return 404, "text/plain", b"not found"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.conns[0] += 1
        self.conns[1] = max(self.conns[1], self.conns[0])
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                path = head.split(b" ", 2)[1].decode()
                self.paths[path] += 1
                self.starts.append(time.monotonic())
                self.active[0] += 1
                self.active[1] = max(self.active[1], self.active[0])
                try:
                    await asyncio.sleep(self.hold)
                finally:
                    self.active[0] -= 1
                status, ctype, body = self.body(path)
                extra = ""
                if path in self.busy_once:
                    self.busy_once.discard(path)
                    status, extra, body = 503, "Retry-After: 1\r\n", b"busy"
                    self.busy_at.append(time.monotonic())
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\n{extra}"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        finally:
            self.conns[0] -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(site: Counting) -> AsyncIterator[str]:
    server = await asyncio.start_server(site.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def crawl(out: Path, start: str, **extra: Any) -> Any:
    settings = build(
        CrawlerSettings,
        {"out": out, "mode": "processes", "follow": True, "concurrency": 8, **extra},
    )
    out.mkdir(parents=True)
    frontier = SqliteFrontier(out / "state.sqlite")
    try:
        seed_frontier(frontier, [start])
        result = run_crawl(settings, frontier, Scope("host", (start,)))
    finally:
        frontier.close()
    build_index(out, warc_files(out))
    return result


def responses_per_worker(out: Path) -> Counter[int | None]:
    found: Counter[int | None] = Counter()
    for path in warc_files(out):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type in ("response", "revisit"):
                    found[warc_series(path)] += 1
    return found


@pytest.fixture
def two_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FETCHLAB_PROCESSES", "2")


@pytest.mark.usefixtures("two_workers")
async def test_one_host_uses_every_worker_within_per_host(tmp_path: Path) -> None:
    site = Counting("User-agent: *\nAllow: /\n")
    out = tmp_path / "out"
    async with serving(site) as base:
        result = await asyncio.to_thread(crawl, out, f"{base}/p/0", per_host=4)
    urls = {f"{base}/p/{n}" for n in range(PAGES)}
    rows = pages(out)
    assert {r["url"] for r in rows if r["status"] == 200} == urls
    assert result.stats.done == PAGES and not result.interrupted
    per_worker = responses_per_worker(out)
    assert set(per_worker) == {0, 1} and min(per_worker.values()) >= 10, per_worker
    # the politeness promise, at the server: never more than per_host, of either
    assert site.active[1] <= 4 and site.conns[1] <= 4, (site.active, site.conns)
    assert site.active[1] >= 2  # and the crawl did run requests side by side
    assert site.paths["/robots.txt"] == 1  # one fetch; the verdict is shipped to the other
    check = check_archive(out)
    assert set(check.responses) >= urls and max(check.responses.values()) == 1


@pytest.mark.usefixtures("two_workers")
async def test_delayed_host_stays_with_one_worker(tmp_path: Path) -> None:
    site = Counting("User-agent: *\nCrawl-delay: 0.05\n", hold=0.0)
    out = tmp_path / "out"
    async with serving(site) as base:
        await asyncio.to_thread(crawl, out, f"{base}/p/0", per_host=4, max_pages=12)
    assert len(pages(out)) == 12
    assert len(responses_per_worker(out)) == 1  # pinned: one worker's slot spaces it
    gaps = [b - a for a, b in itertools.pairwise(sorted(site.starts[1:]))]  # after robots.txt
    assert min(gaps) >= 0.04, gaps  # 0.05 s apart, minus scheduling jitter
    assert site.conns[1] <= 4


@pytest.mark.usefixtures("two_workers")
async def test_a_503_pause_reaches_every_worker(tmp_path: Path) -> None:
    # slow pages: the crawl is still running well after the 503
    site = Counting("User-agent: *\nAllow: /\n", hold=0.04, busy_once={"/p/7"})
    out = tmp_path / "out"
    async with serving(site) as base:
        await asyncio.to_thread(crawl, out, f"{base}/p/0", per_host=2)
    assert len(responses_per_worker(out)) == 2
    (busy,) = site.busy_at
    # Retry-After: 1 pauses the host; the other worker hears of it a message later
    during = [t - busy for t in site.starts if busy + 0.15 < t < busy + 0.9]
    assert not during, during
    assert max(site.starts) > busy + 1.2  # the crawl went on after the pause
    assert {r["url"]: r["status"] for r in pages(out)}[f"{base}/p/7"] == 200
