"""Engine speed-ups end to end on the test-bed site: the lease skip on a dry frontier still
leases the links found later, and the engine leaves the GIL's switch interval alone."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from crawler.cdxj import build_index
from crawler.core.frontier import MemoryFrontier
from crawler.core.urls import Scope
from crawler.settings import CrawlerSettings
from crawler.warc import warc_files
from drivers.crawl_asyncio import Engine
from drivers.crawl_run import seed_frontier
from tests.fixtures.web import WebSite
from tests.integration.crawl_support import check_archive, pages


def test_follow_from_one_url_and_switch_interval_untouched(
    web_site: WebSite, tmp_path: Path
) -> None:
    """A follow crawl starts from one URL, so the first leases come back short (the frontier is
    dry until the seed's links arrive): every later link must still be leased."""
    before = sys.getswitchinterval()
    out = tmp_path / "out"
    settings = CrawlerSettings(
        out=out,
        follow=True,
        max_pages=60,
        concurrency=8,
        per_host=8,
        parse_workers=0,
        frontier="memory",
    )
    inside: list[float] = []

    async def run() -> int:
        frontier = MemoryFrontier()
        seed_frontier(frontier, [web_site.start_url])
        engine = Engine(settings, frontier, scope=Scope("host", (web_site.start_url,), (), ()))
        task = asyncio.create_task(engine.run())
        await asyncio.sleep(0)  # (the run's first step: it once set the interval here)
        inside.append(sys.getswitchinterval())
        result = await task
        return result.stats.done + result.stats.failed

    assert asyncio.run(run()) == 60
    assert inside == [before] and sys.getswitchinterval() == before
    rows = pages(out)
    assert len(rows) == 60 and len({r["url"] for r in rows}) == 60
    assert max(r["depth"] for r in rows) >= 1
    build_index(out, warc_files(out))  # as the CLI does after the engine
    assert check_archive(out).pairs >= 50
