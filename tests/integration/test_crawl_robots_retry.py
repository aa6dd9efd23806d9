"""An unreachable robots.txt (5xx: RFC 9309 "disallow for now") in every mode: the URL is tried
again only once the host's verdict may be asked for again (``robots_retry``), so the second try
fetches robots.txt anew instead of meeting the cached verdict. The blocking modes used to retry
after the flow's short backoff alone: robots.txt was fetched once and the URL failed at once."""

from __future__ import annotations

import time
from pathlib import Path

from foundation.mode import Mode
from testbed.faults import FaultServer
from tests.integration.crawl_support import crawl_list

ROBOTS_RETRY = 1.5


def test_robots_retry_waits_for_a_fresh_verdict(
    mode: Mode, fault_server_robots_500: FaultServer, tmp_path: Path
) -> None:
    server = fault_server_robots_500
    server.reset_stats()
    url = server.url("/ok")
    started = time.monotonic()
    rows = crawl_list(mode, tmp_path / "out", url, retries=1, robots_retry=ROBOTS_RETRY)
    elapsed = time.monotonic() - started
    row = rows[url]
    assert row["error_class"] == "RobotsDisallowed"
    assert server.stats().get("/robots.txt") == 2, "robots.txt asked for again before retrying"
    assert server.stats().get("/ok", 0) == 0
    assert elapsed >= ROBOTS_RETRY
