"""Follow mode against the generated test-bed site, in every mode: ground truth, scope, depth,
allow/deny, page limit, sitemaps."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from foundation.mode import Mode
from testbed.faults import FaultServer
from tests.fixtures.web import WebSite, reference_links
from tests.integration.crawl_support import archived_urls, check_archive, crawl, pages


@pytest.mark.parametrize("obey", [True, False], ids=["obey-robots", "ignore-robots"])
def test_site_ground_truth(mode: Mode, web_site: WebSite, tmp_path: Path, obey: bool) -> None:
    out = tmp_path / "out"
    code = crawl(
        out, web_site.start_url, follow=True, no_robots=not obey, concurrency=32, mode=mode.value
    )
    truth = web_site.info.truth_obey_robots if obey else web_site.info.truth_ignore_robots
    got = archived_urls(out)
    assert got == truth, (sorted(got - truth)[:10], sorted(truth - got)[:10])
    # broken links are archived with their 404, so the run reports failed URLs
    assert code == (1 if web_site.info.broken_paths else 0)
    check = check_archive(out)
    assert max(check.responses.values()) == 1, "no URL archived twice"
    rows = pages(out)
    assert len({r["url"] for r in rows}) == len(rows), "one pages.jsonl line per URL"
    if obey:
        blocked = [r for r in rows if r["error_class"] == "RobotsDisallowed"]
        assert blocked and all("/private/" in r["url"] for r in blocked)


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        data: bytes = resp.read()
    return data


def test_max_depth_one(mode: Mode, web_site: WebSite, tmp_path: Path) -> None:
    out = tmp_path / "out"
    crawl(out, web_site.start_url, follow=True, max_depth=1, no_robots=True, mode=mode.value)
    expected = {web_site.start_url} | reference_links(
        web_site.start_url, _fetch(web_site.start_url)
    )
    assert archived_urls(out) == expected
    assert {r["depth"] for r in pages(out)} <= {0, 1}


def test_max_pages(mode: Mode, web_site: WebSite, tmp_path: Path) -> None:
    out = tmp_path / "out"
    crawl(out, web_site.start_url, follow=True, max_pages=7, mode=mode.value)
    assert len(pages(out)) == 7
    # a rerun with a higher limit continues where the first stopped
    crawl(out, web_site.start_url, follow=True, max_pages=12, mode=mode.value)
    rows = pages(out)
    assert len(rows) == 12 and len({r["url"] for r in rows}) == 12


def test_allow_and_deny(mode: Mode, web_site: WebSite, tmp_path: Path) -> None:
    out = tmp_path / "out"
    crawl(
        out,
        web_site.start_url,
        follow=True,
        deny=(r"\.(pdf|png|txt)$",),
        no_robots=True,
        mode=mode.value,
    )
    got = archived_urls(out)
    truth = web_site.info.truth_ignore_robots
    assert got == {u for u in truth if not re.search(r"\.(pdf|png|txt)$", u)}
    out2 = tmp_path / "out2"
    # allow: only the seed (always crawled) and URLs matching the pattern
    crawl(
        out2,
        web_site.start_url,
        follow=True,
        allow=(r"/private/",),
        no_robots=True,
        mode=mode.value,
    )
    got2 = archived_urls(out2) - {web_site.start_url}
    assert got2 and all("/private/" in u for u in got2)


def test_scope_host_excludes_other_hosts(
    mode: Mode, fault_server: FaultServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code = crawl(out, fault_server.url("/page/0"), follow=True, scope="prefix", mode=mode.value)
    urls = archived_urls(out)
    assert urls and all(u.startswith(fault_server.url("/page/")) for u in urls)
    assert {fault_server.url(f"/page/{i}") for i in range(10)} <= urls
    assert code == 0


def test_sitemaps_seed_the_crawl(mode: Mode, web_site: WebSite, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # depth 0: links are not followed, so every page found comes from robots.txt's sitemap
    crawl(out, web_site.start_url, follow=True, sitemaps=True, max_depth=0, mode=mode.value)
    sitemap_url = web_site.base_url + "/sitemap.xml"
    rows = {r["url"]: r for r in pages(out)}
    assert rows[sitemap_url]["status"] == 200 and rows[sitemap_url]["n_links"] > 10
    listed = set(rows) - {web_site.start_url, sitemap_url}
    assert len(listed) == rows[sitemap_url]["n_links"] - 1  # the sitemap lists the home page too
    assert listed <= web_site.info.truth_obey_robots
    # a full crawl with sitemaps archives the ground truth plus the sitemap itself
    out2 = tmp_path / "out2"
    crawl(out2, web_site.start_url, follow=True, sitemaps=True, mode=mode.value)
    assert archived_urls(out2) == web_site.info.truth_obey_robots | {sitemap_url}
