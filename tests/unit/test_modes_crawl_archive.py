"""The processes mode's archive: per-worker WARC series, the coordinator's commit, the repair of
several series after a crash, revisits only of committed records, and slot shares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator

from crawler.cdxj import build_index, lookup
from crawler.core.flow import FetchResult
from crawler.core.routing import host_shares
from crawler.core.scheduler import LinkFilter
from crawler.pages import iter_pages, last_complete_line
from crawler.pages_commit import PagesCommitter
from crawler.warc import (
    ArchiveJob,
    ArchiveWriter,
    committed_ends,
    payload_digest,
    warc_files,
    warc_series,
    worker_warc_name,
)
from crawler.worker_archive import WorkerArchive


def hop(url: str, body: bytes) -> FetchResult:
    return FetchResult(
        url=url,
        status=200,
        reason="OK",
        http_version="1.1",
        headers=((b"Content-Type", b"text/html"),),
        body=body,
        truncated=False,
        request_head=b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        started_at=1_700_000_000.25,
        received_at=1_700_000_000.5,
        peer="127.0.0.1",
    )


def commit(
    committer: PagesCommitter, archive: WorkerArchive, url: str, body: bytes
) -> dict[str, Any]:
    """What a worker and the coordinator do for one URL."""
    rec = archive.write_records((hop(url, body),))
    row: dict[str, Any] = {"url": url, "error_class": None, "sha1": rec.sha1}
    row.update(revisit=rec.revisit, warc=rec.warc, warc_offset=rec.start, warc_end=rec.end)
    committer.commit(row)
    committer.add_digests(archive.worker, rec.digests)
    committer.flush()
    return row


def records(path: Path) -> list[tuple[str, str | None]]:
    with open(path, "rb") as fh:
        out = []
        for rec in ArchiveIterator(fh, check_digests="raise"):
            rec.raw_stream.read()
            out.append((rec.rec_type, rec.rec_headers.get_header("WARC-Target-URI")))
        return out


def open_all(out: Path) -> tuple[PagesCommitter, WorkerArchive, WorkerArchive]:
    committer = PagesCommitter(out, max_file_bytes=1_000_000, gzip_level=3)
    committer.open()
    w0, w1 = WorkerArchive(out, 0), WorkerArchive(out, 1)
    w0.open()
    w1.open()
    return committer, w0, w1


def test_names_and_order(tmp_path: Path) -> None:
    assert worker_warc_name(3, 7) == "fetchlab-w3-00007.warc.gz"
    assert warc_series("fetchlab-w3-00007.warc.gz") == 3
    assert warc_series("warc/fetchlab-00002.warc.gz") is None
    (tmp_path / "warc").mkdir()
    for name in ("fetchlab-w1-00000", "fetchlab-00001", "fetchlab-w0-00001", "fetchlab-00000"):
        (tmp_path / "warc" / f"{name}.warc.gz").write_bytes(b"")
    names = [p.name.removesuffix(".warc.gz") for p in warc_files(tmp_path)]
    assert names == ["fetchlab-00000", "fetchlab-00001", "fetchlab-w0-00001", "fetchlab-w1-00000"]


def test_two_series_commit_index_and_revisits(tmp_path: Path) -> None:
    committer, w0, w1 = open_all(tmp_path)
    commit(committer, w0, "http://a.test/1", b"same body")
    # committed by w0: w1 may write a revisit of it (the shared table holds it now)
    row = commit(committer, w1, "http://a.test/2", b"same body")
    assert row["revisit"] is True
    # written by w1 but not committed: w0 does not see it, so no revisit of it
    w1.write_records((hop("http://a.test/3", b"other"),))
    row = commit(committer, w0, "http://a.test/4", b"other")
    assert row["revisit"] is False
    for closing in (w0, w1, committer):
        closing.close()
    assert [p.name for p in warc_files(tmp_path)] == [
        "fetchlab-w0-00000.warc.gz",
        "fetchlab-w1-00000.warc.gz",
    ]
    w0_recs = records(tmp_path / "warc" / "fetchlab-w0-00000.warc.gz")
    assert [t for t, _ in w0_recs] == ["warcinfo", "response", "request", "response", "request"]
    index = build_index(tmp_path, warc_files(tmp_path))
    assert lookup(index, "http://a.test/2") and lookup(index, "http://a.test/4")


def test_crash_repair_cuts_each_series_at_its_last_line(tmp_path: Path) -> None:
    committer, w0, w1 = open_all(tmp_path)
    commit(committer, w0, "http://a.test/1", b"one")
    kept = commit(committer, w1, "http://a.test/2", b"two")
    end0 = commit(committer, w0, "http://a.test/3", b"three")["warc_end"]
    # SIGKILL now: both workers wrote records whose lines never came, and a torn line
    w0.write_records((hop("http://a.test/5", b"five"),))
    w1.write_records((hop("http://a.test/6", b"six"),))
    (tmp_path / "warc" / worker_warc_name(1, 1)).write_bytes(b"started")
    for closing in (w0, w1, committer):
        closing.close()
    with open(tmp_path / "pages.jsonl", "ab") as fh:
        fh.write(b'{"url": "http://a.te')
    pages = tmp_path / "pages.jsonl"
    ends = committed_ends(pages, last_complete_line(pages).offset, {0, 1, None})
    assert ends == {
        0: ("warc/fetchlab-w0-00000.warc.gz", end0),
        1: (kept["warc"], kept["warc_end"]),
    }

    # the next run, in a single-writer mode: repairs every series, then writes its own
    writer = ArchiveWriter(tmp_path)
    report = writer.open()
    writer.write(ArchiveJob((hop("http://a.test/7", b"seven"),), {"url": "http://a.test/7"}))
    writer.close()
    assert report.files_removed == ("fetchlab-w1-00001.warc.gz",)
    assert os.path.getsize(tmp_path / "warc" / "fetchlab-w0-00000.warc.gz") == end0
    assert os.path.getsize(tmp_path / kept["warc"]) == kept["warc_end"]
    uris = {u for p in warc_files(tmp_path) for t, u in records(p) if t == "response"}
    assert uris == {f"http://a.test/{n}" for n in (1, 2, 3, 7)}
    assert [r["url"] for r in iter_pages(pages)][-1] == "http://a.test/7"
    index = build_index(tmp_path, warc_files(tmp_path))
    assert not lookup(index, "http://a.test/5") and lookup(index, "http://a.test/3")

    # and a processes run after it: the single writer's series is whole, workers append
    committer, w0, w1 = open_all(tmp_path)
    row = commit(committer, w1, "http://a.test/8", b"one")  # a revisit of w0's committed /1
    for closing in (w0, w1, committer):
        closing.close()
    assert row["revisit"] is True and row["warc_offset"] == kept["warc_end"]
    assert row["sha1"] == payload_digest(b"one")


def test_host_shares_sum_to_per_host() -> None:
    assert host_shares(16, 2) == [8, 8]
    assert host_shares(5, 3) == [2, 2, 1]
    for per_host in range(1, 20):
        for workers in range(1, 6):
            assert sum(host_shares(per_host, workers)) == per_host


def test_worker_series_rotates_and_repair_drops_uncommitted_files(tmp_path: Path) -> None:
    committer = PagesCommitter(tmp_path, max_file_bytes=1000, gzip_level=3)
    committer.open()
    w0 = WorkerArchive(tmp_path, 0, max_file_bytes=1000)
    w0.open()
    rows = [commit(committer, w0, f"http://a.test/{n}", os.urandom(900)) for n in range(3)]
    w0.write_records((hop("http://a.test/9", os.urandom(900)),))  # a 4th file, never committed
    w0.close()
    committer.close()
    names = [p.name for p in warc_files(tmp_path)]
    assert names == [worker_warc_name(0, n) for n in range(4)]
    assert [r["warc"] for r in rows] == [f"warc/{worker_warc_name(0, n)}" for n in range(3)]
    repairer = ArchiveWriter(tmp_path)
    report = repairer.repair()
    repairer.close()
    assert report.files_removed == (worker_warc_name(0, 3),)
    # the series goes on where it stopped, after its last committed file
    w0 = WorkerArchive(tmp_path, 0, max_file_bytes=1000)
    w0.open()
    rec = w0.write_records((hop("http://a.test/10", b"x"),))
    w0.close()
    assert rec.warc == f"warc/{worker_warc_name(0, 3)}"


def test_link_filter_sends_each_in_scope_link_once() -> None:
    from crawler.core.urls import Scope

    keep = LinkFilter(Scope("host", ("http://a.test/",)), size=3)
    assert keep(("http://a.test/1", "http://b.test/x", "http://a.test/2")) == (
        "http://a.test/1",
        "http://a.test/2",
    )
    assert keep(("http://a.test/1", "http://a.test/3", "http://b.test/x")) == ("http://a.test/3",)
    # bounded: past `size` links a generation is dropped, and a very old link may come again
    for n in range(4, 12):
        keep((f"http://a.test/{n}",))
    assert keep(("http://a.test/1",)) == ("http://a.test/1",)


def test_worker_keeps_links_first_met_too_deep(tmp_path: Path) -> None:
    """max_depth 0: a page's links are past the limit, a sitemap's are not. A worker that saw
    the links on the page first must still send them when the sitemap lists them (the processes
    mode lost them at random: which of the two a worker parsed first was a race)."""
    from crawler.core.flow import Outcome
    from crawler.core.frontier import FrontierItem
    from crawler.parse import ParsedPage
    from crawler.settings import CrawlerSettings
    from crawler.work import Work
    from drivers.crawl_process_worker import archive_work

    settings = CrawlerSettings(out=tmp_path, follow=True, max_depth=0, sitemaps=True)
    committer, archive, other = open_all(tmp_path)
    seen = LinkFilter(None)
    links = ("http://a/1", "http://a/2")
    page = FrontierItem("http://a/", 0, "a:80", 0, None)
    home = Work(page, Outcome(page.url, (hop(page.url, b"<a>"),)), ParsedPage(links=links))
    assert archive_work(settings, home, archive, seen).links == ()
    sm = FrontierItem("http://a/sitemap.xml", 0, "a:80", 0, None)
    sm_hop = FetchResult(**{**hop(sm.url, b"<urlset/>").__dict__, "headers": ()})
    smap = Work(sm, Outcome(sm.url, (sm_hop,)), ParsedPage(links=links))
    sent = archive_work(settings, smap, archive, seen)
    assert sent.sitemap and sent.links == links
    for writer in (archive, other, committer):
        writer.close()
