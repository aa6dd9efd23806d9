"""crawler.wacz: which pages.jsonl rows are WACZ pages, and the writer's refusals and clean-up."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from crawler.cdxj import build_index
from crawler.wacz import default_wacz_path, wacz_pages, write_wacz
from crawler.warc import ArchiveWriter, warc_files
from foundation.errors import StorageError
from tests.unit.test_warc import job


def row(url: str, **kw: Any) -> dict[str, Any]:
    base = {
        "url": url,
        "final_url": url,
        "status": 200,
        "content_type": "text/html; charset=utf-8",
        "fetched_at": "2026-12-06T12:07:04.304Z",
        "title": None,
        "warc": "warc/fetchlab-00000.warc.gz",
    }
    return {**base, **kw}


def test_pages_are_the_archived_html_200_answers_under_their_final_url() -> None:
    rows = [
        row("http://a.test/", title="Home"),
        row("http://a.test/old", final_url="http://a.test/new"),  # redirected, then 200
        row("http://a.test/x", content_type="application/XHTML+xml"),
        row("http://a.test/pdf", content_type="application/pdf"),
        row("http://a.test/gone", status=404),
        row("http://a.test/moved", status=301),
        row("http://a.test/blocked", status=None, warc=None),  # robots.txt said no
        row("http://a.test/notype", content_type=None),
    ]
    pages = list(wacz_pages(rows))
    assert [p["url"] for p in pages] == ["http://a.test/", "http://a.test/new", "http://a.test/x"]
    assert pages[0]["title"] == "Home" and "title" not in pages[1]
    assert all(p["ts"] == "2026-12-06T12:07:04.304Z" for p in pages)
    assert len({p["id"] for p in pages}) == 3
    assert [p["id"] for p in wacz_pages(rows)] == [p["id"] for p in pages], "ids are stable"


def _archive(out: Path) -> None:
    w = ArchiveWriter(out)
    w.open()
    w.write(job("http://a.test/1", b"<title>one</title>"))
    w.close()
    build_index(out, warc_files(out))


def test_written_wacz_and_default_path(tmp_path: Path) -> None:
    out = tmp_path / "my crawl"
    _archive(out)
    target = default_wacz_path(out)
    assert target == out / "my crawl.wacz"
    report = write_wacz(out, target, title="T", software="s 1")
    assert report.warcs == 1 and report.bytes == target.stat().st_size
    with zipfile.ZipFile(target) as zf:
        package = json.loads(zf.read("datapackage.json"))
        assert package["title"] == "T" and package["software"] == "s 1"
        header = json.loads(zf.read("pages/pages.jsonl").splitlines()[0])
        assert header == {"format": "json-pages-1.0", "id": "pages", "title": "T"}
    assert not list(out.glob("*.tmp"))


def test_refuses_an_index_naming_files_it_would_not_hold(tmp_path: Path) -> None:
    _archive(tmp_path)
    index = tmp_path / "index.cdxj"
    index.write_text(index.read_text().replace('"filename": "', '"filename": "warc/'))
    target = tmp_path / "x.wacz"
    with pytest.raises(StorageError, match="crawler index"):
        write_wacz(tmp_path, target, title="t", software="s")
    assert not target.exists() and not (tmp_path / "x.wacz.tmp").exists()


def test_refuses_a_folder_without_warcs_or_index(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no WARC files"):
        write_wacz(tmp_path, tmp_path / "x.wacz", title="t", software="s")
    _archive(tmp_path)
    (tmp_path / "index.cdxj").unlink()
    with pytest.raises(StorageError, match="crawler index"):
        write_wacz(tmp_path, tmp_path / "x.wacz", title="t", software="s")
