"""The test-bed site on real loopback servers: a reference crawl finds the truth exactly, latency
ports delay every response and change nothing else, errors say how to fix them, stop() cleans up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import psutil
import pytest
from protego import Protego

from foundation.errors import PortInUseError, TestbedError
from testbed.nginx import NOT_FOUND_BODY
from testbed.site import SiteServer, start_site_server
from tests.fixtures.web import WebSite, WebSiteFactory, reference_links

UA = "fetchlab-reference/1.0"
SLOW = os.environ.get("FETCHLAB_SLOW") == "1"
ROOT = Path(__file__).resolve().parents[2]
NGINX = pytest.param("nginx", marks=pytest.mark.needs_nginx)


async def reference_crawl(start_url: str, *, obey_robots: bool, workers: int = 16) -> set[str]:
    """A plain breadth-first crawler, scope=host: the canonical URLs it fetched (any status)."""
    origin = start_url.rstrip("/")
    fetched: set[str] = set()
    queue: asyncio.Queue[str] = asyncio.Queue()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": UA}) as session:
        robots = None
        if obey_robots:
            async with session.get(origin + "/robots.txt") as resp:
                assert resp.status == 200
                robots = Protego.parse(await resp.text())
        seen = {start_url}
        queue.put_nowait(start_url)

        async def worker() -> None:
            while True:
                url = await queue.get()
                try:
                    async with session.get(url, allow_redirects=False) as resp:
                        body = await resp.read()
                        html = resp.content_type == "text/html" and resp.status == 200
                    fetched.add(url)
                    for link in reference_links(url, body) if html else set():
                        if link in seen or (robots and not robots.can_fetch(link, UA)):
                            continue
                        seen.add(link)
                        queue.put_nowait(link)
                finally:
                    queue.task_done()

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        try:
            await asyncio.wait_for(queue.join(), 120)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return fetched


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes, float]:
    started = time.perf_counter()
    async with session.get(url, allow_redirects=False) as resp:
        body = await resp.read()
        return (
            resp.status,
            resp.headers.get("Content-Type", ""),
            body,
            time.perf_counter() - started,
        )


def _sample_paths(site: WebSite) -> list[str]:
    info = site.info
    return [
        "/",
        info.page_paths[5],
        info.page_paths[6] + "?b=2&a=1",
        *info.file_paths[:3],
        info.broken_paths[0],
        "/robots.txt",
        "/sitemap.xml",
        "/docs/",
        "/docs",
    ]


@pytest.mark.needs_nginx
@pytest.mark.parametrize("obey_robots", [True, False])
async def test_reference_crawl_of_nginx_site_finds_the_truth(
    web_site: WebSite, obey_robots: bool
) -> None:
    assert web_site.server.kind == "nginx"
    fetched = await reference_crawl(web_site.start_url, obey_robots=obey_robots)
    info = web_site.info
    assert fetched == (info.truth_obey_robots if obey_robots else info.truth_ignore_robots)


async def test_reference_crawl_of_aiohttp_site_finds_the_truth(
    web_site_factory: WebSiteFactory,
) -> None:
    site = web_site_factory(pages=60, seed=5, latencies_ms=(50,), prefer="aiohttp")
    assert site.server.kind == "aiohttp"
    assert await reference_crawl(site.start_url, obey_robots=True) == site.info.truth_obey_robots
    assert await reference_crawl(site.start_url, obey_robots=False) == site.info.truth_ignore_robots


@pytest.mark.needs_nginx
async def test_latency_port_delays_and_serves_the_same_bytes(web_site: WebSite) -> None:
    plain, slow = web_site.server.base_url, web_site.server.latency_url(100)
    plain_times, slow_times = [], []
    async with aiohttp.ClientSession() as session:
        for path in _sample_paths(web_site):
            status, ctype, body, took = await _get(session, plain + path)
            slow_status, slow_ctype, slow_body, slow_took = await _get(session, slow + path)
            assert (slow_status, slow_ctype, slow_body) == (status, ctype, body), path
            plain_times.append(took)
            slow_times.append(slow_took)
            if path in web_site.info.broken_paths or path.startswith("/docs"):
                assert (status, ctype, body) == (404, "text/html", NOT_FOUND_BODY)
    assert min(slow_times) >= 0.100  # every response, 404s included, waits the full delay
    assert statistics.median(plain_times) < 0.05 < statistics.median(slow_times) - 0.05


@pytest.mark.needs_nginx
async def test_latency_port_holds_hundreds_of_sleeping_connections(web_site: WebSite) -> None:
    count = 3000 if SLOW else 300
    url = web_site.server.latency_url(100) + web_site.info.page_paths[1]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        results = await asyncio.wait_for(
            asyncio.gather(*(_get(session, url) for _ in range(count))), 60
        )
        elapsed = time.perf_counter() - started
    assert all(status == 200 for status, *_ in results)
    assert len({body for _, _, body, _ in results}) == 1
    assert min(took for *_, took in results) >= 0.100
    # one-at-a-time would take count x 0.1 s (30 s); concurrent, about one latency period plus
    # the client's own cost of opening `count` connections on a busy 2-core machine
    assert elapsed < 0.1 + count / 100, elapsed


@pytest.mark.needs_nginx
async def test_nginx_and_aiohttp_answer_alike(web_site_factory: WebSiteFactory) -> None:
    one = web_site_factory(pages=30, seed=9, prefer="nginx")
    two = web_site_factory(pages=30, seed=9, prefer="aiohttp")
    async with aiohttp.ClientSession() as session:
        for path in [*one.info.file_paths, *one.info.broken_paths, "/docs/", "/private"]:
            a = await _get(session, one.base_url + path)
            b = await _get(session, two.base_url + path)
            assert a[:3] == b[:3], path
        # HTML embeds the origin, so compare it with the origin swapped
        a = await _get(session, one.base_url + "/")
        b = await _get(session, two.base_url + "/")
        swapped = b[2].replace(two.base_url.encode(), one.base_url.encode())
        assert (a[0], a[1], a[2]) == (b[0], b[1], swapped)
        async with session.head(two.base_url + one.info.page_paths[3]) as resp:
            assert resp.status == 200 and int(resp.headers["Content-Length"]) > 10_000


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("prefer", [NGINX, "aiohttp"])
def test_port_in_use_says_how_to_fix(tmp_path: Path, busy_port: int, prefer: str) -> None:
    (tmp_path / "www").mkdir()
    with pytest.raises(PortInUseError, match=rf"port {busy_port} .* in use.*ss -ltnp"):
        start_site_server(
            tmp_path / "www",
            latencies_ms=(),
            prefer=prefer,  # type: ignore[arg-type]
            workdir=tmp_path / "w",
            port=busy_port,
        )


def test_missing_nginx_says_how_to_fix_and_auto_falls_back(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<html><title>x</title></html>")
    with pytest.raises(TestbedError, match="apt-get install nginx-light"):
        start_site_server(
            tmp_path / "www", prefer="nginx", workdir=tmp_path / "w", nginx_bin="/nonexistent/nginx"
        )
    server = start_site_server(
        tmp_path / "www", prefer="auto", workdir=tmp_path / "w", nginx_bin="/nonexistent/nginx"
    )
    with server:
        assert server.kind == "aiohttp" and "nginx" in server.note
        assert server.latency_url(100).startswith("http://127.0.0.1:")
    assert not server.alive()
    with pytest.raises(TestbedError, match="no 250 ms port"):
        server.latency_url(250)


def _gone(pids: list[int]) -> bool:
    def dead(pid: int) -> bool:
        try:
            return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return True

    return all(dead(pid) for pid in pids)


@pytest.mark.parametrize("prefer", [NGINX, "aiohttp"])
def test_stop_leaves_no_process(web_site_factory: WebSiteFactory, prefer: str) -> None:
    server: SiteServer = web_site_factory(pages=20, latencies_ms=(10,), prefer=prefer).server
    pids = server.pids()
    assert len(pids) == (3 if prefer == "nginx" else 1)  # nginx: master + 2 workers
    server.stop()
    assert _gone(pids)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    server.stop()  # twice is harmless


@pytest.mark.needs_nginx
def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "testbed", "site", "--pages", "25", "--dir", str(tmp_path)]
    argv += ["--latency", "20", "--server", "nginx", "--duration", "60"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        lines: dict[str, str] = {}
        for raw in proc.stdout:
            key, _, value = raw.decode().partition(":")
            lines[key] = value.strip()
            if raw.startswith(b"stopping"):
                break
        base = lines["base"].rstrip("/")
        pids = [int(pid) for pid in lines["server"].split("pids ")[1].rstrip(")").split()]
        assert Path(lines["truth"].split(" (")[0]).is_file()
        with socket.create_connection(("127.0.0.1", urlsplit(base).port or 0), timeout=5):
            pass
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert b"stopped" in out
        assert _gone(pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_generate_only(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "testbed", "site", "--pages", "20", "--dir", str(tmp_path)]
    done = subprocess.run(
        [*argv, "--generate-only", "--port", "18080"], cwd=ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert b"http://127.0.0.1:18080/" in done.stdout
    assert (tmp_path / "site-p20-s1" / "truth.json").is_file()
