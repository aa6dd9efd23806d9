"""A host that cannot be connected to fails fast, in every mode, with the real cause.

Before: a refused port or an unknown name kept the crawler silent for robots_retry x retries
(60 s x 3 = 3 minutes), then every URL said ``RobotsDisallowed: ... host paused``. Now the
robots.txt fetch is retried with the normal backoff (seconds) and the host's URLs fail with
``ConnectionRefused`` / ``UnknownHost`` / ``TLSError``. A 5xx robots.txt keeps RFC 9309's
"disallow for now" (tests/integration/test_crawl_robots_retry.py).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from crawler.core.urls import exact_url
from crawler.frontier_sqlite import SqliteFrontier
from crawler.settings import CrawlerSettings
from crawler.stats import CrawlStats
from drivers.crawl_run import seed_frontier
from drivers.dispatch import run_crawl
from foundation.frozen import build
from foundation.mode import Mode
from testbed._proc import free_port
from testbed.faults import FaultServer
from tests.integration.crawl_support import crawl_list, pages

# the defaults that made a dead host cost three minutes
DEFAULTS = {"retries": 3, "robots_retry": 60.0}


def test_dead_hosts_fail_fast_with_their_cause(
    mode: Mode, fault_server: FaultServer, tmp_path: Path
) -> None:
    refused = f"http://127.0.0.1:{free_port()}"
    tls = fault_server.url("/ok").replace("http://", "https://")
    urls = [f"{refused}/a", f"{refused}/b", "http://no-such-host.invalid/c", tls]
    started = time.monotonic()
    rows = crawl_list(mode, tmp_path / "out", *urls, **DEFAULTS)
    elapsed = time.monotonic() - started
    got = {url: (row["status"], row["error_class"]) for url, row in rows.items()}
    assert got == {
        f"{refused}/a": (None, "ConnectionRefused"),
        f"{refused}/b": (None, "ConnectionRefused"),
        "http://no-such-host.invalid/c": (None, "UnknownHost"),
        tls: (None, "TLSError"),
    }
    assert all("unreachable" in rows[u]["error"] for u in urls)
    # three retries with backoff (0.5, 1, 2 s, jittered +-50%): seconds, not minutes
    assert elapsed < 20, elapsed


def test_unreachable_hosts_are_counted_for_the_display(
    mode: Mode, fault_server: FaultServer, tmp_path: Path
) -> None:
    """The live display, the log lines and the summary name each dead host and its cause,
    in every mode (the gevent child sends its counters back as JSON, the processes workers
    send the verdicts with their results)."""
    refused = f"127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    out.mkdir()
    settings = build(
        CrawlerSettings, {"out": out, "mode": mode, "retries": 2, "parse_workers": 0, "timeout": 5}
    )
    stats = CrawlStats()
    frontier = SqliteFrontier(out / "state.sqlite")
    seen: list[object] = []  # what the live display showed while the robots.txt retries ran
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            seen.append(stats.snapshot().get("waiting"))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        urls = [f"http://{refused}/a", "http://no-such-host.invalid/b", fault_server.url("/ok")]
        seed_frontier(frontier, [exact_url(u) for u in urls])
        run_crawl(settings, frontier, stats=stats)
    finally:
        stop.set()
        watcher.join()
        frontier.close()
    shown = [str(w) for w in seen if w is not None]
    assert any(refused in w and "robots.txt ConnectionRefused, retry" in w for w in shown), shown
    assert set(stats.unreachable) == {refused, "no-such-host.invalid:80"}
    assert stats.unreachable[refused].startswith("ConnectionRefused: ")
    assert stats.unreachable["no-such-host.invalid:80"].startswith("UnknownHost: ")
    assert "unreachable" in stats.snapshot()
    assert len(pages(out)) == 3


def test_the_summary_lists_unreachable_hosts(tmp_path: Path) -> None:
    from tests.integration.crawl_support import crawler_cmd

    refused = f"127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    result = crawler_cmd(
        "crawl", f"http://{refused}/x", "--out", str(out), "--retries", "2", "--no-progress"
    )
    assert result.returncode == 1, result.stderr
    text = result.stdout + result.stderr
    assert "unreachable hosts" in text and f"{refused}  ConnectionRefused: " in text
    # --no-progress: no display, but the wait and its end each get a log line as they happen
    assert f"waiting for {refused}: robots.txt ConnectionRefused, retry 1" in result.stderr
    assert f"ConnectionRefused: {refused} unreachable: cannot connect" in result.stderr
