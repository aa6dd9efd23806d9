"""Crawl-level regressions for the transport faults, in every mode: a redirect is archived with
its real body, a huge redirect body is cut at ``max_bytes`` and marked ``WARC-Truncated``
without being read whole, and a malformed chunked body is fetched as often in every mode."""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator

from crawler.core.urls import exact_url
from crawler.warc import warc_files
from foundation.mode import Mode
from testbed.faults import FaultServer
from tests.fixtures.proxy import ProxyFactory
from tests.integration.crawl_support import crawl_list

HUGE = 100_000_000
CAP = 100_000


def archived(out: Path, url: str) -> tuple[bytes, str | None]:
    """The response record of ``url``: its payload as stored, and its WARC-Truncated."""
    found: list[tuple[bytes, str | None]] = []
    for path in warc_files(out):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type == "response" and rec.rec_headers.get_header(
                    "WARC-Target-URI"
                ) == exact_url(url):
                    truncated = rec.rec_headers.get_header("WARC-Truncated")
                    found.append((rec.raw_stream.read(), truncated))
    assert len(found) == 1, f"{url}: {len(found)} response records"
    return found[0]


def server_body(server: FaultServer, path: str, limit: int) -> bytes:
    """The first ``limit`` body bytes as the server sends them (read by the stdlib client)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().read(limit)
    finally:
        conn.close()


def test_redirect_archived_with_its_body(
    mode: Mode, fault_server: FaultServer, tmp_path: Path
) -> None:
    url = fault_server.url("/redirect/body?bytes=1000")
    rows = crawl_list(mode, tmp_path / "out", url)
    assert rows[exact_url(url)]["final_url"] == fault_server.url("/ok")
    body, truncated = archived(tmp_path / "out", url)
    assert body == server_body(fault_server, "/redirect/body?bytes=1000", 1000)
    assert len(body) == 1000 and truncated is None


def test_huge_redirect_body_capped_not_read_whole(
    mode: Mode, fault_server: FaultServer, delay_proxy: ProxyFactory, tmp_path: Path
) -> None:
    # through the proxy, which counts the bytes the crawler was sent before it hung up
    proxy = delay_proxy((fault_server.host, fault_server.port))
    path = f"/redirect/body?bytes={HUGE}"
    url = proxy.url(path)
    rows = crawl_list(mode, tmp_path / "out", url, max_bytes=CAP)
    assert rows[exact_url(url)]["final_url"] == proxy.url("/ok")
    body, truncated = archived(tmp_path / "out", url)
    assert body == server_body(fault_server, path, CAP)
    assert truncated == "length"
    assert proxy.stats.bytes_down < HUGE // 4, "the whole body was read"


def test_malformed_chunk_fetched_once_cut_stream_retried(
    mode: Mode, fault_server: FaultServer, tmp_path: Path
) -> None:
    bad, cut = fault_server.url("/chunked/bad-size"), fault_server.url("/chunked/cut")
    before = fault_server.stats()
    rows = crawl_list(mode, tmp_path / "out", bad, cut, retries=1)
    after = fault_server.stats()
    sent = {p: after.get(p, 0) - before.get(p, 0) for p in (urlsplit(bad).path, urlsplit(cut).path)}
    got = {u: (rows[u]["error_class"], rows[u]["retries"]) for u in (bad, cut)}
    assert got == {bad: ("BadResponse", 0), cut: ("ConnectionLost", 1)}
    assert sent == {"/chunked/bad-size": 1, "/chunked/cut": 2}
