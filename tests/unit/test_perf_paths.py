"""The crawler's speed-ups keep behaviour: cached host keys, ISA-L gzip, hand-written WARC
records (read back by warcio with digests checked), one-statement frontier marking; the GIL
switch interval (tests/integration/test_crawl_perf.py: the engine parts)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from warcio.archiveiterator import ArchiveIterator

from crawler.core.flow import FetchResult, host_of
from crawler.core.frontier import NewURL
from crawler.core.urls import host_key
from crawler.frontier_sqlite import SqliteFrontier
from crawler.warc import ArchiveJob, ArchiveWriter, gzip_member, payload_digest, warc_files
from foundation.errors import InvalidURLError

URLS = [
    "http://a.com",
    "http://a.com/x",
    "http://a.com?q=/x",
    "http://a.com#frag/x",
    "https://u:p@A.com:443/x",
    "https://a.com:8443/x",
    "http://[::1]:8080/a",
    "http://127.0.0.1:1234/p?x=1",
]


@pytest.mark.parametrize("url", URLS)
def test_host_of_equals_host_key(url: str) -> None:
    assert host_of(url) == host_key(url)


@given(
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,2}", fullmatch=True),
    st.one_of(st.none(), st.integers(1, 65535)),
    st.from_regex(r"[/?#][a-z0-9/?#=&.]{0,12}", fullmatch=True),
)
def test_host_of_equals_host_key_generated(
    scheme: str, host: str, port: int | None, rest: str
) -> None:
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}{rest}"
    assert host_of(url) == host_key(url)


def test_host_of_rejects_what_host_key_rejects() -> None:
    for bad in ("http:///nohost", "ftp://a.com/x"):
        with pytest.raises(InvalidURLError):
            host_key(bad)
        with pytest.raises(InvalidURLError):
            host_of(bad)


@pytest.mark.parametrize("level", [1, 3, 6, 9])
def test_gzip_member_round_trips(level: int) -> None:
    data = b"<html>" + b"fetchlab " * 5000 + b"</html>"
    member = gzip_member(data, level)
    assert member[:2] == b"\x1f\x8b" and gzip.decompress(member) == data
    assert len(member) < len(data) // 10


def _hop(url: str, body: bytes) -> FetchResult:
    return FetchResult(
        url=url,
        status=200,
        reason="OK",
        http_version="1.1",
        headers=((b"Content-Type", b"text/html"), (b"Content-Length", str(len(body)).encode())),
        body=body,
        truncated=False,
        request_head=b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
        started_at=1_700_000_000.5,
        received_at=1_700_000_000.75,
        peer="127.0.0.1",
    )


@pytest.mark.parametrize("level", [3, 6])
def test_hand_written_records_read_back_by_warcio(tmp_path: Path, level: int) -> None:
    w = ArchiveWriter(tmp_path, gzip_level=level)
    w.open()
    body = b"<p>" + bytes(range(256)) * 40 + b"</p>"
    w.write(ArchiveJob((_hop("http://a.test/1", body),), {"url": "http://a.test/1"}))
    w.write(ArchiveJob((_hop("http://a.test/2", body),), {"url": "http://a.test/2"}))
    w.close()
    (path,) = warc_files(tmp_path)
    seen = []
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh, check_digests="raise"):
            payload = rec.content_stream().read()
            seen.append((rec.rec_type, rec.rec_headers.get_header("WARC-Target-URI"), payload))
            assert rec.rec_headers.protocol == "WARC/1.1"
            assert rec.rec_headers.get_header("WARC-Record-ID").startswith("<urn:uuid:")
    assert [s[0] for s in seen] == ["warcinfo", "response", "request", "revisit", "request"]
    assert seen[1][2] == body and seen[1][1] == "http://a.test/1"
    assert seen[3][1] == "http://a.test/2" and seen[3][2] == b""
    assert payload_digest(body).startswith("sha1:")


def test_complete_many_one_statement_semantics(tmp_path: Path) -> None:
    with SqliteFrontier(tmp_path / "f.sqlite") as f:
        f.add(NewURL(f"http://a.test/{i}", 0, None) for i in range(250))
        items = f.lease(250, 0.0)
        f.complete_many(i.url for i in items[:240])  # more than one statement's worth
        assert f.counts().done == 240 and f.counts().leased == 10
        with pytest.raises(KeyError):
            f.complete_many([items[240].url, "http://a.test/never-added"])
        # the leased URL of that call was still marked, as one complete() after another would
        assert f.counts().done == 241 and f.counts().leased == 9
        with pytest.raises(KeyError):
            f.complete_many([items[241].url, items[241].url])
        with pytest.raises(KeyError):
            f.complete_many([items[0].url])  # already done
        f.complete_many([])
        assert f.counts().done == 242


def test_multi_row_add_counts_new_only(tmp_path: Path) -> None:
    with SqliteFrontier(tmp_path / "f.sqlite") as f:
        first = [NewURL(f"http://a.test/{i}", 1, "http://a.test/") for i in range(1234)]
        assert f.add(first) == 1234
        again = [NewURL(f"http://a.test/{i}", 1, None) for i in range(1200, 1300)]
        assert f.add(again) == 66
        assert f.counts().queued == 1300
        leased = f.lease(5, 0.0)
        assert [i.url for i in leased] == [f"http://a.test/{i}" for i in range(5)]
        assert leased[0].parent == "http://a.test/" and leased[0].depth == 1
