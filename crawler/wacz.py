"""WACZ: a crawl folder packed into one zip file that ReplayWeb.page, pywb and py-wacz take as is.

Layout (WACZ 1.2.0, https://specs.webrecorder.net/wacz/1.2.0/)::

    archive/fetchlab-00000.warc.gz   the WARC files, byte for byte, ZIP_STORED (each record is
                                     already its own gzip member: readers seek to a record
                                     through the zip without inflating anything)
    indexes/index.cdx                the crawl's index.cdxj (CDXJ lines; its ``filename`` is the
                                     WARC file's plain name, which is its name under archive/)
    pages/pages.jsonl                json-pages-1.0: a header line, then one page per HTML 200
    datapackage.json                 every file above with its sha256 and size
    datapackage-digest.json          the sha256 of datapackage.json

``datapackage.json`` says ``"profile": "data-package"`` and ``"wacz_version": "1.1.1"``, as py-wacz,
js-wacz (browsertrix) and wacksy write it: 1.2.0 renamed the profile to ``wacz`` and dropped the
version, but ``wacz validate`` (py-wacz 0.6) refuses any file without version 1.1.1, and 1.2.0
readers ignore the extra key. The index is named ``index.cdx``, not ``.cdxj``: ``wb-manager add
--unpack-wacz`` (pywb 2.10) only picks up ``*.cdx`` / ``*.cdx.gz`` index files.

Written with the standard library's zipfile: the WARC files are streamed through in 1 MiB chunks
(sha256 taken on the way), nothing is read whole into memory. The zip is written next to its
target and renamed, so a crash never leaves half a WACZ under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from crawler.pages import iter_pages
from crawler.warc import warc_files
from foundation.errors import StorageError
from foundation.hashes import sha1, sha256

__all__ = ["WACZ_VERSION", "WaczReport", "default_wacz_path", "wacz_pages", "write_wacz"]

WACZ_VERSION = "1.1.1"
INDEX_PATH = "indexes/index.cdx"
PAGES_PATH = "pages/pages.jsonl"
_HTML = frozenset({"text/html", "application/xhtml+xml"})
_CHUNK = 1 << 20
_FILENAME = re.compile(r'"filename": "([^"]*)"')


@dataclass(frozen=True)
class WaczReport:
    path: Path
    warcs: int
    pages: int
    bytes: int


def default_wacz_path(out: Path) -> Path:
    """``OUT/<name of OUT>.wacz``."""
    return out / (out.resolve().name + ".wacz")


def _page_id(url: str, ts: str) -> str:
    # stable across runs of `crawler wacz` over the same archive (py-wacz draws a random uuid)
    return sha1(f"{ts} {url}".encode()).hexdigest()[:20]


def wacz_pages(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The WACZ pages of pages.jsonl ``rows``: every archived URL whose final answer was a 200
    with an HTML type, under the URL of that answer (a redirect's target) and its fetch time."""
    for row in rows:
        if row.get("status") != 200 or not row.get("warc"):
            continue
        ctype = str(row.get("content_type") or "").split(";", 1)[0].strip().lower()
        if ctype not in _HTML:
            continue
        url = str(row.get("final_url") or row["url"])
        ts = str(row["fetched_at"])  # the final hop's start, as its WARC-Date (to the ms)
        page: dict[str, Any] = {"id": _page_id(url, ts), "url": url, "ts": ts}
        if row.get("title"):
            page["title"] = row["title"]
        yield page


class _Entry:
    """A file being written into the zip (a context manager: its handle is closed on any exit,
    or zipfile could not close the archive), with its sha256 and size for datapackage.json."""

    def __init__(self, zf: zipfile.ZipFile, path: str, stored: bool, size: int = 0) -> None:
        info = zipfile.ZipInfo(path, time.gmtime()[:6])
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        info.file_size = size  # zipfile takes ZIP64 headers from this when it is large
        self.path = path
        # a file of unknown size (the index, the pages) may pass 4 GiB: ZIP64 headers at once
        self._fh: IO[bytes] = zf.open(info, "w", force_zip64=not size)
        self._sha = sha256()
        self.bytes = 0

    def __enter__(self) -> _Entry:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def write(self, data: bytes) -> None:
        self._sha.update(data)
        self.bytes += len(data)
        self._fh.write(data)

    def resource(self) -> dict[str, Any]:
        """The datapackage.json entry of this file."""
        return {
            "name": self.path.rpartition("/")[2].lower(),
            "path": self.path,
            "hash": "sha256:" + self._sha.hexdigest(),
            "bytes": self.bytes,
        }


def _add_warc(zf: zipfile.ZipFile, warc: Path) -> dict[str, Any]:
    # the size now: a file that grows meanwhile (a crawl still running) is taken up to here
    size = warc.stat().st_size
    with (
        _Entry(zf, f"archive/{warc.name}", stored=True, size=size) as entry,
        open(warc, "rb") as src,
    ):
        left = size
        while left:
            chunk = src.read(min(_CHUNK, left))
            if not chunk:
                raise StorageError(f"{warc} shrank while it was packed")
            entry.write(chunk)
            left -= len(chunk)
    return entry.resource()


def _add_index(zf: zipfile.ZipFile, index: Path, names: set[str]) -> dict[str, Any]:
    with _Entry(zf, INDEX_PATH, stored=False) as entry, open(index, "rb") as fh:
        for line in fh:
            m = _FILENAME.search(line.decode("utf-8"))
            if m is None or m.group(1) not in names:
                raise StorageError(
                    f"{index} names a WARC file the WACZ would not hold "
                    f"({m.group(1) if m else 'none'}): rebuild it with `crawler index`"
                )
            entry.write(line)
    return entry.resource()


def _add_pages(zf: zipfile.ZipFile, pages: Path, title: str) -> tuple[dict[str, Any], int]:
    count = 0
    with _Entry(zf, PAGES_PATH, stored=False) as entry:
        header = {"format": "json-pages-1.0", "id": "pages", "title": title}
        entry.write(json.dumps(header).encode() + b"\n")
        for page in wacz_pages(iter_pages(pages)):
            entry.write(json.dumps(page, ensure_ascii=False).encode() + b"\n")
            count += 1
    return entry.resource(), count


def _write_json(zf: zipfile.ZipFile, path: str, data: dict[str, Any]) -> bytes:
    raw = json.dumps(data, indent=2).encode()
    info = zipfile.ZipInfo(path, time.gmtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, raw)
    return raw


def write_wacz(out: Path, target: Path, *, title: str, software: str) -> WaczReport:
    """Pack the crawl folder ``out`` (its WARC files, ``index.cdxj``, ``pages.jsonl``) into
    ``target``. ``index.cdxj`` must be current (the crawl and ``crawler index`` write it)."""
    warcs = warc_files(out)
    index = out / "index.cdxj"
    if not warcs:
        raise StorageError(f"{out} holds no WARC files to pack")
    if not index.exists():
        raise StorageError(f"{index} is missing: build it with `crawler index {out}`")
    tmp = target.with_name(target.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            resources = [_add_warc(zf, w) for w in warcs]
            resources.append(_add_index(zf, index, {w.name for w in warcs}))
            pages_resource, n_pages = _add_pages(zf, out / "pages.jsonl", title)
            resources.append(pages_resource)
            package = {
                "profile": "data-package",
                "wacz_version": WACZ_VERSION,
                "title": title,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "software": software,
                "resources": resources,
            }
            raw = _write_json(zf, "datapackage.json", package)
            digest = {
                "path": "datapackage.json",
                "hash": "sha256:" + sha256(raw).hexdigest(),
            }
            _write_json(zf, "datapackage-digest.json", digest)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # the error that stopped the writing is the one told
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise StorageError(f"cannot write {target}: {exc}") from exc
        raise
    return WaczReport(target, len(warcs), n_pages, target.stat().st_size)
