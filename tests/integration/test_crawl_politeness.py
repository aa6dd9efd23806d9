"""Politeness in every mode against a real server that records each request's start and end per
host: ``--delay``, robots.txt Crawl-delay, 429/503 Retry-After, the wait before asking an
unreachable robots.txt again, the per-host concurrency limit.

Times are the server's (one clock, this process). Lower bounds only, with a tolerance for a loaded
2-core machine: load makes the crawler later, never earlier, but it can delay one request's
arrival more than the next one's, so a gap may shrink by that much (``SLACK``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crawler.core.urls import exact_url
from foundation.mode import Mode
from tests.integration.crawl_support import crawl, pages
from tests.integration.recording_server import Hit, HostSpec, RecordingServer

SLACK = 0.07  # seconds a gap may lose to uneven scheduling delays under load
DELAY = 0.25
CRAWL_DELAY = 0.5
RETRY_AFTER = 1
ROBOTS_RETRY = 0.6
ROBOTS_TRIES = 3  # retries = 2: asked once, then once per retry

HOSTS = {
    "plain": HostSpec(),
    "crawl_delay": HostSpec(robots=f"User-agent: *\nCrawl-delay: {CRAWL_DELAY}\n"),
    "r429": HostSpec(),
    "r503": HostSpec(),
    "robots500": HostSpec(robots="robots broke", robots_status=500),
    "lim1": HostSpec(),
    "lim2": HostSpec(),
}


@pytest.fixture(scope="module")
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer(HOSTS)
    try:
        yield srv
    finally:
        srv.stop()


@dataclass(frozen=True)
class Run:
    hits: list[Hit]
    rows: dict[str, dict[str, object]]  # by URL as given
    code: int

    def on(self, host: str, prefix: str = "/") -> list[Hit]:
        return sorted((h for h in self.hits if h.host == host and h.path.startswith(prefix)),
                      key=lambda h: h.start)  # fmt: skip


def _run(server: RecordingServer, out: Path, urls: list[str], settings: str, mode: Mode) -> Run:
    f = out.parent / f"{out.name}.toml"
    out.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("[crawler]\n" + settings)
    started = time.monotonic()
    code = crawl(out, *urls, settings=f, mode=mode.value)
    hits = server.between(started, time.monotonic())
    by_url = {r["url"]: r for r in pages(out)}
    return Run(hits, {u: by_url.get(exact_url(u), {}) for u in urls}, code)


def _gaps(hits: list[Hit]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(sorted(h.start for h in hits))]


@pytest.fixture(scope="module")
def polite_runs(
    server: RecordingServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Mode, Run]]:
    """One crawl per mode (cached) over the delay, Crawl-delay, Retry-After and robots hosts."""
    root = tmp_path_factory.mktemp("politeness")

    class Cache(dict[Mode, Run]):
        def __missing__(self, mode: Mode) -> Run:
            tag = mode.value
            urls = [server.url("plain", f"/p/{tag}-{i}") for i in range(4)]
            urls += [server.url("crawl_delay", f"/p/{tag}-{i}") for i in range(3)]
            urls.append(
                server.url("r429", f"/retry/{tag}-429?status=429&retry_after={RETRY_AFTER}")
            )
            urls.append(
                server.url("r503", f"/retry/{tag}-503?status=503&retry_after={RETRY_AFTER}")
            )
            urls.append(server.url("robots500", f"/p/{tag}"))
            settings = (
                f"delay = {DELAY}\nrobots_retry = {ROBOTS_RETRY}\nretries = 2\n"
                "concurrency = 16\nper_host = 4\ntimeout = 5.0\nparse_workers = 0\n"
            )
            self[mode] = _run(server, root / tag, urls, settings, mode)
            return self[mode]

    yield Cache()


def test_delay_spaces_requests(mode: Mode, polite_runs: dict[Mode, Run]) -> None:
    run = polite_runs[mode]
    hits = run.on("plain", "/p/")
    assert len(hits) == 4
    assert min(_gaps(hits)) >= DELAY - SLACK, _gaps(hits)


def test_robots_crawl_delay_wins(mode: Mode, polite_runs: dict[Mode, Run]) -> None:
    run = polite_runs[mode]
    hits = run.on("crawl_delay", "/p/")
    assert len(hits) == 3
    assert min(_gaps(hits)) >= CRAWL_DELAY - SLACK, _gaps(hits)  # Crawl-delay beats --delay


@pytest.mark.parametrize("host", ["r429", "r503"])
def test_retry_after_is_honoured(
    mode: Mode, polite_runs: dict[Mode, Run], server: RecordingServer, host: str
) -> None:
    run = polite_runs[mode]
    hits = run.on(host, "/retry/")
    assert len(hits) == 2, hits  # the refusal, then the page
    assert hits[1].start - hits[0].end >= RETRY_AFTER - SLACK
    (row,) = (r for u, r in run.rows.items() if u.startswith(server.url(host, "/retry/")))
    assert row["status"] == 200 and row["retries"] == 1


def test_unreachable_robots_asked_again_after_robots_retry(
    mode: Mode, polite_runs: dict[Mode, Run], server: RecordingServer
) -> None:
    run = polite_runs[mode]
    robots = run.on("robots500", "/robots.txt")
    assert not run.on("robots500", "/p/"), "a host with an unreachable robots.txt was fetched"
    (row,) = (r for u, r in run.rows.items() if u.startswith(server.url("robots500", "/p/")))
    assert row["error_class"] == "RobotsDisallowed" and "unreachable" in str(row["error"])
    assert len(robots) == ROBOTS_TRIES, [round(h.start, 2) for h in robots]
    assert min(_gaps(robots)) >= ROBOTS_RETRY - SLACK, _gaps(robots)


def test_per_host_limit(mode: Mode, server: RecordingServer, tmp_path: Path) -> None:
    per_host, hold = 2, 0.3
    tag = f"{mode.value}-{time.monotonic_ns()}"
    urls = [server.url(h, f"/p/{tag}-{i}?hold={hold}") for h in ("lim1", "lim2") for i in range(6)]
    run = _run(
        server, tmp_path / "out", urls,
        f"per_host = {per_host}\nconcurrency = 16\nparse_workers = 0\n", mode,
    )  # fmt: skip
    assert run.code == 0
    assert all(r.get("status") == 200 for r in run.rows.values())
    peaks = {h: _peak(run.on(h, "/p/")) for h in ("lim1", "lim2")}
    everywhere = _peak(run.on("lim1", "/p/") + run.on("lim2", "/p/"))
    if mode is Mode.SEQUENTIAL:
        assert peaks == {"lim1": 1, "lim2": 1} and everywhere == 1
    else:
        # never above the limit, and the limit is reached (the mode does run requests at once)
        assert peaks == {"lim1": per_host, "lim2": per_host}
        assert everywhere > per_host  # two hosts are served side by side


def _peak(hits: list[Hit]) -> int:
    events = sorted([(h.start, 1) for h in hits] + [(h.end, -1) for h in hits])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak
