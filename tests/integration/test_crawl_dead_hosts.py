"""A host that cannot be connected to fails fast, in every mode, with the real cause.

Before: a refused port or an unknown name kept the crawler silent for robots_retry x retries
(60 s x 3 = 3 minutes), then every URL said ``RobotsDisallowed: ... host paused``. Now the
robots.txt fetch is retried with the normal backoff (seconds) and the host's URLs fail with
``ConnectionRefused`` / ``UnknownHost`` / ``TLSError``. A 5xx robots.txt keeps RFC 9309's
"disallow for now" (tests/integration/test_crawl_robots_retry.py).
"""

from __future__ import annotations

import time
from pathlib import Path

from foundation.mode import Mode
from testbed._proc import free_port
from testbed.faults import FaultServer
from tests.integration.crawl_support import crawl_list

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
