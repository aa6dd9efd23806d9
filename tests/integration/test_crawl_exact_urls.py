"""The URL a page links to is the URL requested and the URL archived, byte for byte, in every
mode (issue: URLs rewritten before archiving). The fault server's ``/urls/`` page links to the
shapes crawlers are known to rewrite (``?ok``, spaces, ``%2F``, ``%zz``, non-ASCII, the same
query in two orders, a raw UTF-8 ``Location``) and answers 200 only to the exact request target a
browser sends; the test compares the request lines the server received with the WARC request
records, the response records' ``WARC-Target-URI`` and ``pages.jsonl``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.warc import warc_files
from foundation.errors import TestbedError
from foundation.mode import Mode
from testbed._fault_app import URL_CASES, URL_REDIRECT_TARGET
from testbed.faults import FaultServer, start_fault_server
from tests.fixtures._fail import testbed_unavailable
from tests.integration.crawl_support import crawl, pages


@pytest.fixture(scope="module")
def url_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultServer]:
    try:
        server = start_fault_server(workdir=tmp_path_factory.mktemp("exact-urls"))
    except TestbedError as exc:
        testbed_unavailable(exc)
    yield server
    server.stop()


def _target(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _records(out: Path) -> tuple[list[str], list[str]]:
    """(request-line targets of the request records, target URIs of the response records)."""
    sent: list[str] = []
    uris: list[str] = []
    for path in warc_files(out):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                uri = rec.rec_headers.get_header("WARC-Target-URI") or ""
                if "/urls/" not in uri:
                    continue
                if rec.rec_type == "request":
                    assert rec.http_headers is not None
                    line = f"{rec.http_headers.protocol} {rec.http_headers.statusline}"
                    sent.append(line.split(" ")[1])
                    assert _target(uri) == line.split(" ")[1], "request record vs its URI"
                elif rec.rec_type in ("response", "revisit"):
                    uris.append(_target(uri))
    return sorted(sent), sorted(uris)


def test_links_requested_and_archived_exactly(
    mode: Mode, url_server: FaultServer, tmp_path: Path
) -> None:
    url_server.reset_stats()
    out = tmp_path / "out"
    code = crawl(out, url_server.url("/urls/"), follow=True, mode=mode.value)
    assert code == 0, [(r["url"], r["status"], r["error"]) for r in pages(out)]

    received = sorted(url_server.targets())
    wanted = sorted({*URL_CASES.values(), URL_REDIRECT_TARGET, "/urls/"})
    assert received == wanted, "each exact target requested once, nothing rewritten"
    sent, uris = _records(out)
    assert sent == received == uris
    rows = {_target(r["url"]): r for r in pages(out) if "/urls/" in r["url"]}
    assert sorted(rows) == sorted(set(wanted) - {URL_REDIRECT_TARGET})
    assert all(r["status"] in (200, 302) for r in rows.values())
    hop = rows["/urls/redirect-utf8"]
    assert _target(hop["final_url"]) == URL_REDIRECT_TARGET, "Location read as UTF-8"
    assert hop["status"] == 200


def test_list_urls_requested_as_given(mode: Mode, url_server: FaultServer, tmp_path: Path) -> None:
    """A URL list's lines are fetched as written (only what cannot appear raw is escaped)."""
    url_server.reset_stats()
    out = tmp_path / "out"
    given = [
        url_server.url(t) for t in ("/urls/%zz", "/urls/s?x=%2F&y=%2f", "/urls/x.forbidden?ok")
    ]
    given.append(url_server.url("/urls/caf\u00e9?n=\u00fc"))
    code = crawl(out, *given, mode=mode.value)
    assert code == 0, [(r["url"], r["status"], r["error"]) for r in pages(out)]
    received = sorted(url_server.targets())
    assert received == sorted(
        ["/urls/%zz", "/urls/s?x=%2F&y=%2f", "/urls/x.forbidden?ok", "/urls/caf%C3%A9?n=%C3%BC"]
    )
    assert sorted(_target(r["url"]) for r in pages(out)) == received
    assert _records(out) == (received, received)
