"""Every fault of the test bed's fault server ends as a recorded outcome; the crawl goes on."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from crawler.core.urls import canonicalize
from testbed.faults import FaultServer
from tests.integration.crawl_support import check_archive, crawl, pages


def _settings(tmp_path: Path) -> Path:
    f = tmp_path / "s.toml"
    f.write_text(
        "[crawler]\ntimeout = 3.0\nretries = 2\nmax_bytes = 2000000\n"
        "max_decoded_bytes = 4000000\nconcurrency = 64\n"
    )
    return f


def _by_url(out: Path) -> dict[str, dict[str, Any]]:
    return {row["url"]: row for row in pages(out)}


def test_every_fault_is_recorded(fault_server: FaultServer, tmp_path: Path) -> None:
    key = uuid.uuid4().hex[:8]
    u = fault_server.url
    expect: dict[str, tuple[int | None, str | None]] = {
        u("/ok"): (200, None),
        u("/slow-drip?bytes=600&interval=0.05&chunk=100"): (200, None),
        u("/slow-drip?bytes=100000&interval=0.2&chunk=100"): (None, "FetchTimeout"),
        u("/reset-mid-body?bytes=100000"): (None, "ConnectionLost"),
        u(f"/flaky/{key}?fails=2&status=503"): (200, None),
        u(f"/reset-once/{key}"): (200, None),
        u(f"/ratelimit/{key}?fails=1&retry_after=1"): (200, None),
        u("/redirect/chain/4"): (200, None),
        u("/redirect/chain/12"): (302, "TooManyRedirects"),
        u("/redirect/loop/a"): (302, "TooManyRedirects"),
        u("/redirect/self"): (302, "TooManyRedirects"),
        u("/redirect/relative"): (200, None),
        u("/gzip-bomb?mib=64"): (200, "DecodeError"),
        u("/br-bomb"): (200, "DecodeError"),
        u("/zstd-bomb"): (200, "DecodeError"),
        u("/huge?bytes=50000000"): (200, "BodyTooLarge"),
        u("/no-content-type"): (200, None),
        u("/wrong-content-type"): (200, None),
        u("/bad-charset"): (200, None),
        u("/latin1"): (200, None),
        u("/bom-utf16"): (200, None),
        u("/huge-headers?kind=one"): (None, "HeadersTooLarge"),
        u("/huge-headers?kind=cookies"): (None, "HeadersTooLarge"),
        u("/status/500"): (500, "HTTPStatusError"),
        u("/status/410"): (410, "HTTPStatusError"),
        u("/private/page"): (None, "RobotsDisallowed"),
    }
    out = tmp_path / "out"
    started = time.monotonic()
    code = crawl(out, *expect, settings=_settings(tmp_path))
    elapsed = time.monotonic() - started
    assert code == 1
    rows = {url: _by_url(out)[canonicalize(url)] for url in expect}
    got = {url: (rows[url]["status"], rows[url]["error_class"]) for url in expect}
    assert got == expect
    assert elapsed < 60
    # retried the right number of times, and no more
    stats = fault_server.stats()
    assert stats[f"/flaky/{key}"] == 3
    assert stats[f"/reset-once/{key}"] == 2
    assert stats[f"/ratelimit/{key}"] == 2
    assert stats["/status/410"] >= 1
    assert rows[u(f"/flaky/{key}?fails=2&status=503")]["retries"] == 2
    # the bomb is stored as received (compressed), the huge body cut at the cap
    assert rows[u("/gzip-bomb?mib=64")]["bytes"] < 2_000_000
    assert rows[u("/huge?bytes=50000000")]["bytes"] == 2_000_000
    assert rows[u("/huge?bytes=50000000")]["truncated"] is True
    assert rows[u("/redirect/chain/4")]["final_url"] == u("/redirect/chain/0")
    assert rows[u("/redirect/chain/4")]["hops"] == 5
    assert rows[u("/redirect/relative")]["final_url"] == u("/ok")
    assert rows[u("/latin1")]["title"] and "\ufffd" not in rows[u("/latin1")]["title"]
    assert rows[u("/no-content-type")]["title"] is not None  # parsed as HTML
    assert rows[u("/wrong-content-type")]["n_links"] is None  # an image is not parsed
    check_archive(out)


def test_retry_after_is_honoured(fault_server: FaultServer, tmp_path: Path) -> None:
    key = uuid.uuid4().hex[:8]
    out = tmp_path / "out"
    started = time.monotonic()
    code = crawl(out, fault_server.url(f"/ratelimit/{key}?fails=1&retry_after=2"))
    assert code == 0
    assert time.monotonic() - started >= 2.0


def test_redirect_external_not_followed_in_follow_mode(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    url = fault_server.url("/redirect/external")
    crawl(out, url, follow=True, max_depth=0)
    (row,) = pages(out)
    assert row["status"] == 302 and row["error_class"] == "OutOfScope"


def test_robots_404_allows_all(fault_server_robots_404: FaultServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    url = fault_server_robots_404.url("/private/page")
    assert crawl(out, url) == 0
    assert pages(out)[0]["status"] == 200


def test_robots_500_disallows_host(fault_server_robots_500: FaultServer, tmp_path: Path) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text("[crawler]\nrobots_retry = 0.3\nretries = 2\n")
    server = fault_server_robots_500
    server.reset_stats()
    out = tmp_path / "out"
    urls = [server.url("/ok"), server.url("/page/1")]
    started = time.monotonic()
    assert crawl(out, *urls, settings=settings) == 1
    rows = _by_url(out)
    for url in urls:
        assert rows[url]["error_class"] == "RobotsDisallowed" and rows[url]["status"] is None
        assert "unreachable" in rows[url]["error"]
    stats = server.stats()
    assert "/ok" not in stats and "/page/1" not in stats  # nothing fetched from the host
    # asked again after each wait: the first time, then once per retry round (the two URLs
    # wait with different jitter, so a round may ask for each of them)
    assert 3 <= stats["/robots.txt"] <= 1 + 2 * 2
    assert time.monotonic() - started >= 0.6


def test_connection_refused_recorded(tmp_path: Path) -> None:
    from testbed._proc import free_port

    url = f"http://127.0.0.1:{free_port()}/nothing-listens"
    out = tmp_path / "out"
    assert crawl(out, url, retries=1, no_robots=True) == 1
    (row,) = pages(out)
    assert row["error_class"] == "ConnectError" and row["status"] is None
