"""The generated test-bed site: deterministic, realistic, valid robots/sitemap, exact truth."""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
import time
import xml.etree.ElementTree as ET
from collections import deque
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from protego import Protego

from foundation.errors import TestbedError
from testbed.nginx import render_nginx_conf
from testbed.site import SiteInfo, generate_site, load_site_info
from tests.fixtures.web import reference_links

ORIGIN = "http://127.0.0.1:8123"
SLOW = os.environ.get("FETCHLAB_SLOW") == "1"


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _page_file(info: SiteInfo, url_path: str) -> Path:
    return info.docroot / ("index.html" if url_path == "/" else url_path.lstrip("/"))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> SiteInfo:
    return generate_site(tmp_path_factory.mktemp("site"), pages=200, seed=1, origin=ORIGIN)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    one = generate_site(tmp_path / "one", pages=40, seed=7, origin=ORIGIN)
    two = generate_site(tmp_path / "two", pages=40, seed=7, origin=ORIGIN)
    assert _digest_tree(one.docroot) == _digest_tree(two.docroot)
    assert (one.root / "truth.json").read_bytes() == (two.root / "truth.json").read_bytes()
    assert one.truth_obey_robots == two.truth_obey_robots


def test_other_seed_other_site(tmp_path: Path) -> None:
    one = generate_site(tmp_path / "one", pages=40, seed=7, origin=ORIGIN)
    two = generate_site(tmp_path / "two", pages=40, seed=8, origin=ORIGIN)
    assert (one.docroot / "index.html").read_bytes() != (two.docroot / "index.html").read_bytes()
    assert one.truth_ignore_robots != two.truth_ignore_robots


def test_cache_skips_regeneration_until_origin_changes(tmp_path: Path) -> None:
    first = generate_site(tmp_path, pages=30, seed=1, origin=ORIGIN)
    index = first.docroot / "index.html"
    stamp = index.stat().st_mtime_ns
    again = generate_site(tmp_path, pages=30, seed=1, origin=ORIGIN + "/")
    assert again == first
    assert index.stat().st_mtime_ns == stamp  # not rewritten
    assert load_site_info(tmp_path) == first
    moved = generate_site(tmp_path, pages=30, seed=1, origin="http://127.0.0.1:9999")
    assert moved.origin == "http://127.0.0.1:9999"
    assert all(url.startswith("http://127.0.0.1:9999/") for url in moved.truth_ignore_robots)
    assert b"http://127.0.0.1:8123" not in (moved.docroot / "robots.txt").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.stamp", "truth.json", "www"]


def test_bad_arguments_raise(tmp_path: Path) -> None:
    with pytest.raises(TestbedError, match="origin"):
        generate_site(tmp_path, pages=30, origin="127.0.0.1:80")
    with pytest.raises(TestbedError, match="at least 20"):
        generate_site(tmp_path, pages=5, origin=ORIGIN)
    with pytest.raises(TestbedError, match="generate the site again"):
        load_site_info(tmp_path / "nothing")


def test_page_sizes_and_link_counts(site: SiteInfo) -> None:
    sizes, links = [], []
    for path in site.page_paths:
        body = _page_file(site, path).read_bytes()
        sizes.append(len(body))
        links.append(len(re.findall(rb"<a href=", body)))
        assert body.count(b"<title>") == 1
        assert b"<p>" in body and b"<nav>" in body
        assert b"nofollow" not in body and b'name="robots"' not in body
    assert min(sizes) >= 10 * 1024 and max(sizes) <= 40 * 1024
    assert 23_000 <= statistics.mean(sizes) <= 29_000
    assert min(links) >= 20 and max(links) <= 60
    assert 38 <= statistics.mean(links) <= 44
    assert site.link_count == sum(links)
    assert site.html_bytes == sum(sizes)


def test_link_spellings_are_varied(site: SiteInfo) -> None:
    hrefs: list[str] = []
    bases = 0
    for path in site.page_paths:
        body = _page_file(site, path).read_text("utf-8")
        hrefs += re.findall(r'<a href="([^"]*)"', body)
        bases += "<base href=" in body
    assert bases >= 1
    kinds = {
        "dotdot": any(h.startswith("../") for h in hrefs),
        "dot": any(h.startswith("./") for h in hrefs),
        "bare": any(re.match(r"p\d+\.html", h) for h in hrefs),
        "root": any(h.startswith("/") for h in hrefs),
        "absolute": any(h.startswith(ORIGIN + "/") for h in hrefs),
        "fragment": any("#" in h and not h.startswith("#") for h in hrefs),
        "self-fragment": any(h.startswith("#") for h in hrefs),
        "query": any("?" in h for h in hrefs),
        "external": any(".example.invalid/" in h for h in hrefs),
        "mailto": any(h.startswith("mailto:") for h in hrefs),
    }
    assert all(kinds.values()), kinds
    assert "/index.html" not in hrefs
    # the same page is linked with its query arguments in more than one order
    orders: dict[str, set[str]] = {}
    for href in hrefs:
        if "?" in href:
            target, _, query = href.partition("#")[0].partition("?")
            orders.setdefault(target.rsplit("/", 1)[-1], set()).add(query)
    assert any(len(spellings) > 1 for spellings in orders.values())


def test_robots_txt(site: SiteInfo) -> None:
    text = (site.docroot / "robots.txt").read_text("ascii")
    robots = Protego.parse(text)
    assert not robots.can_fetch(ORIGIN + "/private/a/p1.html", "anybot")
    assert robots.can_fetch(ORIGIN + "/docs/a/p1.html", "anybot")
    assert robots.can_fetch(ORIGIN + "/archive/p1.html", "anybot")
    assert robots.crawl_delay("anybot") is None
    assert list(robots.sitemaps) == [ORIGIN + "/sitemap.xml"]


def test_sitemap_lists_the_public_pages(site: SiteInfo) -> None:
    tree = ET.fromstring((site.docroot / "sitemap.xml").read_bytes())
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    assert tree.tag == "{http://www.sitemaps.org/schemas/sitemap/0.9}urlset"
    locs = [loc.text or "" for loc in tree.findall("s:url/s:loc", ns)]
    assert locs[0] == ORIGIN + "/"
    assert len(locs) == len(set(locs)) > 150
    assert set(locs) <= site.truth_obey_robots
    assert not any("/private/" in url or "/archive/" in url for url in locs)


def test_truth_shape(site: SiteInfo) -> None:
    obey, ignore = site.truth_obey_robots, site.truth_ignore_robots
    assert ORIGIN + "/" in obey and obey < ignore
    assert all(url.startswith(ORIGIN + "/") and "#" not in url for url in ignore)
    assert ORIGIN + "/index.html" not in ignore
    assert ORIGIN + "/robots.txt" not in ignore and ORIGIN + "/sitemap.xml" not in ignore
    private = {u for u in ignore if urlsplit(u).path.startswith("/private/")}
    hidden = {u for u in ignore if urlsplit(u).path.startswith("/archive/")}
    assert private and hidden and not (obey & (private | hidden))
    assert ignore - obey == private | hidden  # /archive/ is reachable only through /private/
    paths = {urlsplit(u).path for u in ignore}
    assert {("/" if p == "/" else p) for p in site.page_paths} <= paths  # every page reachable
    assert set(site.file_paths) <= paths and set(site.broken_paths) & paths
    queried = [u for u in ignore if "?" in u]
    assert queried
    for url in queried:
        keys = [key for key, _ in parse_qsl(urlsplit(url).query)]
        assert keys == sorted(keys)
    data = json.loads(site.truth_path.read_text("utf-8"))
    assert data["start_url"] == ORIGIN + "/" and data["scope"] == "host"
    assert sorted(obey) == data["truth_obey_robots"]


@pytest.mark.parametrize("obey_robots", [True, False])
def test_truth_equals_an_independent_walk_of_the_files(site: SiteInfo, obey_robots: bool) -> None:
    """BFS over the files with a plain HTML reader (no server): must find the truth exactly."""
    start = ORIGIN + "/"
    seen, queue = {start}, deque([start])
    while queue:
        url = queue.popleft()
        file = _page_file(site, urlsplit(url).path)
        if file.suffix != ".html" or not file.is_file():
            continue
        for link in reference_links(url, file.read_bytes()):
            blocked = obey_robots and urlsplit(link).path.startswith("/private/")
            if link not in seen and not blocked:
                seen.add(link)
                queue.append(link)
    truth = site.truth_obey_robots if obey_robots else site.truth_ignore_robots
    assert seen == truth


def test_non_html_files_are_valid(site: SiteInfo) -> None:
    for path in site.file_paths:
        data = (site.docroot / path.lstrip("/")).read_bytes()
        if path.endswith(".pdf"):
            assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
        elif path.endswith(".png"):
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
        else:
            assert b"http" not in data and len(data) > 200
    for path in site.broken_paths:
        assert not (site.docroot / path.lstrip("/")).exists()


def test_nginx_conf_has_the_limits(tmp_path: Path) -> None:
    conf = render_nginx_conf(
        tmp_path / "www", port=8001, latency_ports={100: 8002, 250: 8003}, workdir=tmp_path
    )
    assert "daemon off;" in conf and "master_process on;" in conf
    assert "listen 127.0.0.1:8001" in conf and "echo_sleep 0.250;" in conf
    assert f"pid {tmp_path / 'nginx.pid'};" in conf and "access_log off;" in conf
    nofile = int(re.search(r"worker_rlimit_nofile (\d+);", conf).group(1))  # type: ignore[union-attr]
    connections = int(re.search(r"worker_connections (\d+);", conf).group(1))  # type: ignore[union-attr]
    cache = int(re.search(r"open_file_cache max=(\d+)", conf).group(1))  # type: ignore[union-attr]
    assert cache < nofile and connections <= nofile
    if nofile >= 16384:
        assert connections >= 8192
    with pytest.raises(TestbedError, match="above 0 ms"):
        render_nginx_conf(tmp_path, port=1, latency_ports={0: 2}, workdir=tmp_path)


@pytest.mark.slow
def test_large_site_generates_fast(tmp_path: Path) -> None:
    pages = 20_000 if SLOW else 2_000
    started = time.perf_counter()
    info = generate_site(tmp_path, pages=pages, seed=3, origin=ORIGIN)
    elapsed = time.perf_counter() - started
    assert len(info.page_paths) == pages
    assert pages <= len(info.truth_ignore_robots)
    assert elapsed < 60 * pages / 20_000 + 5  # 20,000 pages well under a minute
