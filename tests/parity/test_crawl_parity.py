"""Every crawl mode gives the same archive of the test-bed site: the same URL set (the site's
ground truth), the same payload digest per URL, the same errors, valid WARC records.

The asyncio engine's archive is the reference; each other mode crawls the same nginx-served site
into a fresh folder through :func:`drivers.dispatch.run_crawl` (what ``crawler crawl --mode M``
runs). A second test stops a threads crawl half-way and finishes it in another mode.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from crawler.cdxj import build_index
from crawler.core.urls import Scope, canonicalize
from crawler.frontier_sqlite import SqliteFrontier
from crawler.settings import CrawlerSettings
from crawler.warc import warc_files
from drivers.crawl_run import seed_frontier
from drivers.dispatch import run_crawl
from foundation.frozen import build
from tests.fixtures.web import WebSite
from tests.integration.crawl_support import archived_urls, check_archive, crawler_cmd, pages

MODES = ["threads", "gevent", "processes", "sequential"]


def crawl_in(mode: str, site: WebSite, out: Path, **extra: Any) -> Any:
    settings = build(
        CrawlerSettings,
        {"out": out, "mode": mode, "follow": True, "concurrency": 8, "parse_workers": 1, **extra},
    )
    out.mkdir(parents=True)
    frontier = SqliteFrontier(out / "state.sqlite")
    try:
        seed_frontier(frontier, [site.start_url])
        scope = Scope("host", (site.start_url,))
        result = run_crawl(settings, frontier, scope)
    finally:
        frontier.close()
    build_index(out, warc_files(out))
    return result


def digests(out: Path) -> dict[str, tuple[int | None, str | None, str | None]]:
    """Canonical URL -> (status, payload digest, error class) from pages.jsonl: which spelling
    of a page (``?a=1&b=2`` or ``?b=2&a=1``) is met first, and fetched, differs between runs."""
    return {canonicalize(r["url"]): (r["status"], r["sha1"], r["error_class"]) for r in pages(out)}


@pytest.fixture(scope="module")
def reference(web_site: WebSite, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("parity") / "asyncio"
    crawl_in("asyncio", web_site, out)
    return out


@pytest.mark.needs_nginx
@pytest.mark.parametrize("mode", MODES)
def test_mode_archive_equals_asyncio(
    mode: str, web_site: WebSite, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / mode
    result = crawl_in(mode, web_site, out)
    truth = web_site.info.truth_obey_robots
    got = archived_urls(out)
    assert got == truth, (sorted(got - truth)[:5], sorted(truth - got)[:5])
    assert digests(out) == digests(reference)
    check = check_archive(out)  # digests verified, request/response pairs, CDXJ index
    once = Counter(canonicalize(u) for u in check.responses.elements())
    assert max(once.values()) == 1, "no URL archived twice"
    assert check.pairs == check_archive(reference).pairs
    rows = pages(out)
    assert len({r["url"] for r in rows}) == len(rows)
    assert result.stats.done + result.stats.failed == len(rows)
    assert not result.interrupted


@pytest.mark.needs_nginx
@pytest.mark.parametrize("second", ["asyncio", "sequential"])
def test_resume_in_another_mode(
    second: str, web_site: WebSite, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumed"
    first = crawl_in("threads", web_site, out, max_pages=40)
    assert first.stats.done + first.stats.failed == 40
    frontier = SqliteFrontier(out / "state.sqlite")
    try:
        settings = build(
            CrawlerSettings, {"out": out, "mode": second, "follow": True, "concurrency": 8}
        )
        run_crawl(settings, frontier, Scope("host", (web_site.start_url,)))
    finally:
        frontier.close()
    build_index(out, warc_files(out))
    assert digests(out) == digests(reference)
    once = Counter(canonicalize(u) for u in check_archive(out).responses.elements())
    assert max(once.values()) == 1


@pytest.mark.needs_nginx
@pytest.mark.parametrize("mode", ["threads", "gevent", "processes", "sequential"])
def test_cli_mode_flag(mode: str, web_site: WebSite, reference: Path, tmp_path: Path) -> None:
    """``crawler crawl --mode M`` (a real command line in a child process)."""
    out = tmp_path / f"cli-{mode}"
    proc = crawler_cmd(
        "crawl", web_site.start_url, "--follow", "--mode", mode, "--concurrency", "8",
        "--out", str(out), "--no-progress",
    )  # fmt: skip
    # the site links to broken pages (archived with their 404): "done, with failed URLs"
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert digests(out) == digests(reference)
    assert (out / "index.cdxj").exists()


def test_cli_refuses_too_many_threads(tmp_path: Path) -> None:
    proc = crawler_cmd(
        "crawl", "http://127.0.0.1:9/", "--mode", "threads", "--concurrency", "5000",
        "--out", str(tmp_path / "out"), "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 2
    assert "refuses 5,000 threads" in proc.stderr
