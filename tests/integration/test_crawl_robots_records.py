"""robots.txt is archived (request and response records, with its CDXJ line) once per host per
crawl, in every mode: the evidence of what the crawl was allowed, as wget and Heritrix keep it.
A 404 robots.txt is evidence too; pages.jsonl stays a table of the crawl's own URLs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.cdxj import build_index
from crawler.warc import warc_files
from foundation.mode import Mode
from tests.integration.crawl_support import crawl_list, pages
from tests.integration.recording_server import HostSpec, RecordingServer

ROBOTS_A = "User-agent: *\nDisallow: /p/secret\n"
HOSTS = {"a": HostSpec(robots=ROBOTS_A), "b": HostSpec(robots="", robots_status=404)}


@pytest.fixture(scope="module")
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer(HOSTS)
    try:
        yield srv
    finally:
        srv.stop()


def test_robots_txt_archived_once_per_host(
    mode: Mode, server: RecordingServer, tmp_path: Path
) -> None:
    urls = [server.url(h, f"/p/{i}") for h in ("a", "b") for i in range(6)]
    urls.append(server.url("a", "/p/secret"))
    out = tmp_path / "out"
    crawl_list(mode, out, *urls)

    robots = {server.url(h, "/robots.txt"): h for h in HOSTS}
    kinds: Counter[tuple[str, str]] = Counter()
    bodies: dict[str, bytes] = {}
    statuses: dict[str, str] = {}
    for path in warc_files(out):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                uri = rec.rec_headers.get_header("WARC-Target-URI")
                if uri in robots:
                    kinds[(uri, rec.rec_type)] += 1
                    if rec.rec_type == "response":
                        assert rec.http_headers is not None
                        statuses[uri] = rec.http_headers.get_statuscode()
                        bodies[uri] = rec.content_stream().read()
    assert kinds == Counter({(u, k): 1 for u in robots for k in ("request", "response")})
    assert bodies[server.url("a", "/robots.txt")] == ROBOTS_A.encode()
    assert statuses == {
        server.url("a", "/robots.txt"): "200",
        server.url("b", "/robots.txt"): "404",
    }

    build_index(out, warc_files(out))  # as ``crawler crawl`` does at the end
    lines = (out / "index.cdxj").read_text().splitlines()
    index = [json.loads(line.split(" ", 2)[2]) for line in lines]
    assert sorted(e["url"] for e in index if e["url"] in robots) == sorted(robots)
    rows = pages(out)
    assert not any(r["url"] in robots for r in rows), "robots.txt is not a page of the crawl"
    assert len(rows) == len(urls)
