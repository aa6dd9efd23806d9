"""The real job: a follow crawl of the whole test-bed site into WARC, in one mode.

``spec``: ``mode``, ``concurrency``, ``start_url``, ``workdir`` (a fresh output folder is made
under it and removed afterwards), ``variant`` (``inline``: the asyncio engine parsing on the
loop instead of in its process pool) and ``processes`` (workers of the processes mode). Besides
the wall-clock rate it reports ``steady_per_s``: pages per second between the 10th and the 90th
percentile of the pages' fetch start times (start-up, such as the processes mode's fork server,
and the tail left out). This is what ``crawler crawl --follow --mode M`` does, minus the command
line; the gevent cell runs in a child that :mod:`drivers.gevent_entry` already patched, so it drives
the coordinator with greenlets directly instead of starting yet another process.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from fetchlab.bench.grid import set_aside
from foundation.frozen import build

__all__ = ["prepare", "run"]


def prepare(spec: dict[str, Any]) -> None:
    import crawler.frontier_sqlite
    import crawler.parse
    import crawler.warc  # noqa: F401
    import drivers.crawl_coordinator

    if spec["mode"] == "gevent":
        import drivers.crawl_gevent
    else:
        import drivers.dispatch  # noqa: F401


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from crawler.core.urls import Scope
    from crawler.frontier_sqlite import SqliteFrontier
    from crawler.settings import CrawlerSettings
    from crawler.stats import CrawlStats

    mode = spec["mode"]
    conc = int(spec["concurrency"])
    start = spec["start_url"]
    out = Path(spec["workdir"]) / f"{mode}-c{conc}-{uuid.uuid4().hex[:8]}"
    out.mkdir(parents=True)
    settings = build(
        CrawlerSettings,
        {
            "out": out,
            "mode": mode,
            "follow": True,
            "concurrency": conc,
            "per_host": conc,
            "parse_workers": 0 if spec.get("variant") == "inline" else 2,
        },
    )
    os.environ["FETCHLAB_PROCESSES"] = str(spec.get("processes", 2))
    scope = Scope("host", (start,))
    stats = CrawlStats()
    frontier = SqliteFrontier(out / "state.sqlite")
    try:
        from crawler.core.frontier import NewURL

        frontier.add([NewURL(start, 0, None)])
        if mode == "gevent":
            from drivers.crawl_coordinator import Coordinator
            from drivers.crawl_gevent import GreenletBackend

            Coordinator(settings, frontier, GreenletBackend(settings, scope), scope=scope,
                        stats=stats).run()  # fmt: skip
        else:
            from drivers.dispatch import run_crawl

            run_crawl(settings, frontier, scope, stats)
    finally:
        frontier.close()
        steady = steady_rate(out / "pages.jsonl")
        set_aside(out, Path(spec["workdir"]))
    pages = stats.done + stats.failed
    return {
        "items": pages,
        "bytes": stats.bytes,
        "errors": 0,
        "failed_pages": stats.failed,
        "steady_per_s": steady,
        "revisits": stats.revisits,
    }


def steady_rate(pages_jsonl: Path) -> float | None:
    """Pages per second over the middle 80% of the fetch start times (None: too few pages)."""
    from crawler.pages import iter_pages

    stamps = sorted(
        datetime.strptime(str(r["fetched_at"]), "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
        for r in iter_pages(pages_jsonl)
    )
    k = len(stamps) // 10
    if k < 2 or stamps[-k] <= stamps[k]:
        return None
    return (len(stamps) - 1 - 2 * k) / (stamps[-k - 1] - stamps[k])
