"""The WARC writer: records read back with warcio, digests, pairs, revisits, rotation, repair."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.cdxj import build_index, index_part, iter_index, lookup, trim_part
from crawler.core.flow import FetchResult
from crawler.pages import iter_pages, last_complete_line
from crawler.warc import ArchiveJob, ArchiveWriter, payload_digest, response_head, warc_files


def hop(url: str, body: bytes, status: int = 200, truncated: bool = False) -> FetchResult:
    return FetchResult(
        url=url,
        status=status,
        reason="OK",
        http_version="1.1",
        headers=(
            (b"Content-Type", b"text/html"),
            (b"Transfer-Encoding", b"chunked"),
            (b"X-Latin", "caf\u00e9".encode("latin-1")),
        ),
        body=body,
        truncated=truncated,
        request_head=f"GET {url.split('/', 3)[-1] or '/'} HTTP/1.1\r\nHost: a\r\n\r\n".encode(),
        started_at=1_700_000_000.25,
        received_at=1_700_000_000.5,
        peer="127.0.0.1",
    )


def job(url: str, body: bytes, **kw: object) -> ArchiveJob:
    return ArchiveJob((hop(url, body, **kw),), {"url": url, "error_class": None})  # type: ignore[arg-type]


def records(out: Path) -> list[tuple[str, str | None, object]]:
    found = []
    for path in warc_files(out):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh, check_digests="raise"):
                rec.raw_stream.read()
                found.append((rec.rec_type, rec.rec_headers.get_header("WARC-Target-URI"), rec))
    return found


def test_pairs_digests_and_raw_head(tmp_path: Path) -> None:
    w = ArchiveWriter(tmp_path)
    w.open()
    w.write(job("http://a.test/1", b"<p>one</p>"))
    w.write(job("http://a.test/2", b"<p>two</p>"))
    w.close()
    recs = records(tmp_path)
    assert [r[0] for r in recs] == ["warcinfo", "response", "request", "response", "request"]
    resp, req = recs[1][2], recs[2][2]
    assert req.rec_headers.get_header("WARC-Concurrent-To") == resp.rec_headers.get_header(  # type: ignore[attr-defined]
        "WARC-Record-ID"
    )
    assert resp.rec_headers.get_header("WARC-Payload-Digest") == payload_digest(b"<p>one</p>")  # type: ignore[attr-defined]
    assert resp.rec_headers.get_header("WARC-IP-Address") == "127.0.0.1"  # type: ignore[attr-defined]
    assert resp.rec_headers.protocol == "WARC/1.1"  # type: ignore[attr-defined]
    # de-chunked body: the stored head no longer claims chunked framing; non-ASCII bytes kept
    head = response_head(hop("http://a.test/1", b""))
    assert b"Transfer-Encoding" not in head and b"caf\xe9" in head
    rows = list(iter_pages(tmp_path / "pages.jsonl"))
    assert [r["url"] for r in rows] == ["http://a.test/1", "http://a.test/2"]
    assert rows[0]["sha1"] == payload_digest(b"<p>one</p>")
    assert rows[1]["warc_end"] == os.path.getsize(tmp_path / rows[1]["warc"])


def test_identical_payload_becomes_revisit(tmp_path: Path) -> None:
    w = ArchiveWriter(tmp_path)
    w.open()
    w.write(job("http://a.test/1", b"same body"))
    w.write(job("http://a.test/2", b"same body"))
    w.close()
    recs = records(tmp_path)
    revisit = [r for r in recs if r[0] == "revisit"]
    assert len(revisit) == 1 and revisit[0][1] == "http://a.test/2"
    rh = revisit[0][2].rec_headers  # type: ignore[attr-defined]
    assert rh.get_header("WARC-Refers-To-Target-URI") == "http://a.test/1"
    assert rh.get_header("WARC-Profile").endswith("/revisit/identical-payload-digest")
    assert [r["revisit"] for r in iter_pages(tmp_path / "pages.jsonl")] == [False, True]
    # the digest index survives a reopen
    w2 = ArchiveWriter(tmp_path)
    w2.open()
    w2.write(job("http://a.test/3", b"same body"))
    w2.close()
    recs = records(tmp_path)
    assert sum(r[0] == "revisit" for r in recs) == 2
    # records appended after the reopen still name the file's warcinfo record
    info_id = recs[0][2].rec_headers.get_header("WARC-Record-ID")  # type: ignore[attr-defined]
    last = recs[-2][2].rec_headers  # type: ignore[attr-defined]
    assert last.get_header("WARC-Warcinfo-ID") == info_id


def test_truncated_marked(tmp_path: Path) -> None:
    w = ArchiveWriter(tmp_path)
    w.open()
    w.write(job("http://a.test/big", b"x" * 100, truncated=True))
    w.close()
    resp = records(tmp_path)[1][2]
    assert resp.rec_headers.get_header("WARC-Truncated") == "length"  # type: ignore[attr-defined]


def test_rotation(tmp_path: Path) -> None:
    w = ArchiveWriter(tmp_path, max_file_bytes=1500)
    w.open()
    for i in range(6):
        w.write(job(f"http://a.test/{i}", os.urandom(400)))
    w.close()
    files = warc_files(tmp_path)
    assert len(files) >= 3
    assert sum(r[0] == "response" for r in records(tmp_path)) == 6
    assert all(r[0] == "warcinfo" for r in records(tmp_path) if r[1] is None)


def test_fsync_in_its_thread_while_files_rotate(tmp_path: Path) -> None:
    """sync_in_thread: every write may start a sync (interval 0) while files rotate under it."""
    w = ArchiveWriter(tmp_path, max_file_bytes=1500, fsync_interval=0.0, sync_in_thread=True)
    w.open()
    for i in range(30):
        w.write(job(f"http://a.test/{i}", os.urandom(400)))
    w.close()
    assert sum(r[0] == "response" for r in records(tmp_path)) == 30
    assert len(list(iter_pages(tmp_path / "pages.jsonl"))) == 30


def test_a_failed_fsync_in_its_thread_fails_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from foundation.errors import StorageError

    w = ArchiveWriter(tmp_path, fsync_interval=0.0, sync_in_thread=True)
    w.open()

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)  # (the writer calls os.fsync)
    w.write(job("http://a.test/1", b"one"))  # starts the sync that fails
    assert w._sync_pool is not None
    w._sync_pool.submit(lambda: None).result()  # (the sync thread is done with it)
    with pytest.raises(StorageError, match=r"cannot sync the archive.*Input/output error"):
        w.write(job("http://a.test/2", b"two"))
    monkeypatch.undo()
    w.close()


def test_repair_after_torn_writes(tmp_path: Path) -> None:
    w = ArchiveWriter(tmp_path)
    w.open()
    w.write(job("http://a.test/1", b"one"))
    w.write(job("http://a.test/2", b"two"))
    w.close()
    pages = tmp_path / "pages.jsonl"
    warc = warc_files(tmp_path)[0]
    good_end = os.path.getsize(warc)
    # a crash: records of a third URL written, its pages line torn half-way, a partial member
    w = ArchiveWriter(tmp_path)
    w.open()
    w.write(job("http://a.test/3", b"three"))
    w.close()
    data = pages.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    pages.write_bytes(data[: last + 10])
    with open(warc, "ab") as fh:
        fh.write(b"\x1f\x8b\x08\x00garbage")
    report = ArchiveWriter(tmp_path)
    rep = report.open()
    report.close()
    assert rep.pages_truncated == 10
    assert rep.warc_truncated > 0
    assert os.path.getsize(warc) == good_end
    assert [r["url"] for r in iter_pages(pages)] == ["http://a.test/1", "http://a.test/2"]
    assert [r[1] for r in records(tmp_path) if r[0] == "response"] == [
        "http://a.test/1",
        "http://a.test/2",
    ]


def test_repair_removes_later_files_and_stale_digests(tmp_path: Path) -> None:
    w = ArchiveWriter(tmp_path, max_file_bytes=1000)
    w.open()
    w.write(job("http://a.test/1", b"body one " * 50))
    w.write(job("http://a.test/2", b"body two " * 50))
    w.close()
    assert len(warc_files(tmp_path)) == 2
    pages = tmp_path / "pages.jsonl"
    first = pages.read_bytes().split(b"\n")[0] + b"\n"
    pages.write_bytes(first)  # the second line never made it
    w = ArchiveWriter(tmp_path, max_file_bytes=1000)
    rep = w.open()
    assert rep.files_removed == ("fetchlab-00001.warc.gz",)
    # the second body's digest pointed into the removed file: it must be written in full again
    w.write(job("http://a.test/2", b"body two " * 50))
    w.close()
    types = [(r[0], r[1]) for r in records(tmp_path)]
    assert ("response", "http://a.test/2") in types and not any(t == "revisit" for t, _ in types)


def test_last_complete_line_reads_backwards(tmp_path: Path) -> None:
    p = tmp_path / "p.jsonl"
    rows = [{"url": f"u{i}", "pad": "x" * 300} for i in range(500)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    p.write_text(text + '{"url": "torn')
    tail = last_complete_line(p, block=1024)
    assert tail.row == rows[-1] and tail.offset == len(text.encode())
    p.write_text("")
    assert last_complete_line(p).row is None


def test_cdxj_index_finds_every_url(tmp_path: Path) -> None:
    w = ArchiveWriter(tmp_path)
    w.open()
    urls = [f"http://a.test/p{i}?b=2&a=1" for i in range(5)]
    for i, u in enumerate(urls):
        w.write(job(u, f"body {i}".encode()))
    w.close()
    index = build_index(tmp_path, warc_files(tmp_path))
    lines = index.read_text().splitlines()
    assert lines == sorted(lines)
    for u in urls:
        (entry,) = lookup(index, u)
        assert entry["url"] == u and entry["status"] == "200"
        # the plain file name, as pywb and a WACZ look it up (not warc/...)
        assert entry["filename"] == "fetchlab-00000.warc.gz"


def test_incremental_index_equals_cdxj_indexer(tmp_path: Path) -> None:
    from cdxj_indexer.main import write_cdx_index

    w = ArchiveWriter(tmp_path, max_file_bytes=2000)
    w.open()
    for i in range(8):
        w.write(job(f"http://a.test/p{i}?z=1&a=2", f"body {i % 3}".encode()))  # revisits too
    plain = hop("http://a.test/no-type", b"x")
    w.write(ArchiveJob((FetchResult(**{**plain.__dict__, "headers": ()}),), {"url": "u"}))
    w.close()
    ours = build_index(tmp_path, warc_files(tmp_path)).read_text()
    ref = tmp_path / "ref.cdxj"
    write_cdx_index(str(ref), [str(p) for p in warc_files(tmp_path)], {"sort": True})
    assert ours == ref.read_text()
    assert "warc/revisit" in ours
    # crawler index: every file read again by cdxj-indexer gives the same index
    (tmp_path / "index.cdxj").unlink()
    assert build_index(tmp_path, warc_files(tmp_path), reindex=True).read_text() == ours


def test_index_sorted_in_bounded_runs_and_staged_merges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory holds RUN_LINES lines, and at most MERGE_FILES runs are open at once: the index
    is the same as one sort of everything, and no scratch file is left."""
    from crawler import cdxj

    w = ArchiveWriter(tmp_path, max_file_bytes=3000)
    w.open()
    for i in range(40):
        w.write(job(f"http://a.test/p{(i * 7) % 40}?z=1", f"body {i}".encode()))
    w.close()
    whole = build_index(tmp_path, warc_files(tmp_path)).read_text()
    monkeypatch.setattr(cdxj, "RUN_LINES", 3)
    monkeypatch.setattr(cdxj, "MERGE_FILES", 2)
    assert build_index(tmp_path, warc_files(tmp_path)).read_text() == whole
    assert whole.splitlines() == sorted(whole.splitlines()) and len(whole.splitlines()) == 40
    assert not (tmp_path / cdxj.PART_DIR / "merge").exists()


def test_reindex_replaces_parts_of_an_older_layout(tmp_path: Path) -> None:
    w = ArchiveWriter(tmp_path)
    w.open()
    w.write(job("http://a.test/1", b"one"))
    w.write(job("http://a.test/2", b"two"))
    w.close()
    (warc,) = warc_files(tmp_path)
    part = index_part(tmp_path, warc)
    good = part.read_text()
    # an archive written before the index named files by their plain name
    part.write_text(good.replace('"filename": "', '"filename": "warc/'))
    assert '"warc/fetchlab' in build_index(tmp_path, [warc]).read_text()
    index = build_index(tmp_path, [warc], reindex=True)
    assert part.read_text() == good, "the part is rebuilt too (a resume merges it)"
    assert {e["filename"] for _, _, e in iter_index(index)} == {warc.name}
    # a later resume appends to the rebuilt part; the repair rule still trims by offset
    trim_part(part, 0)
    assert part.read_text() == ""


def test_repair_trims_index_parts(tmp_path: Path) -> None:
    w = ArchiveWriter(tmp_path)
    w.open()
    w.write(job("http://a.test/1", b"one"))
    w.write(job("http://a.test/2", b"two"))
    w.close()
    pages = tmp_path / "pages.jsonl"
    pages.write_bytes(pages.read_bytes().split(b"\n")[0] + b"\n")
    w = ArchiveWriter(tmp_path)
    w.open()
    w.close()
    index = build_index(tmp_path, warc_files(tmp_path))
    assert lookup(index, "http://a.test/1") and not lookup(index, "http://a.test/2")
