"""WARC 1.1 archive writer: gzip per record, request/response pairs, revisits, rotation, repair.

Records are serialised here (:func:`warc_record`), not by warcio's writer, and read back by warcio
in the tests (digests checked). Why by hand: the writer runs on the event loop's thread, and
warcio's record builder (header objects, stream wrappers, a second payload digest over
the body) was the largest Python cost left in the writer once compression was fast: measured with
a writer micro-benchmark on the test-bed pages, 0.31 -> 0.26 ms per page (a sixth).
The format is small and fixed: the fields warcio wrote, in WARC 1.1, with the same digests.

Each record is one gzip member, at a configurable level: warcio always uses level 9, which costs
about 2 ms per 26 KB page (FACTS.md: wget's WARC mode is CPU-bound on exactly that). Levels 1-3
go through ISA-L (``isal``, which releases the GIL): measured on the test-bed pages, level 3 costs
0.10 ms per 26 KB page there against 0.43 ms with zlib at the same ratio (0.37). Higher levels
fall back to zlib (ISA-L stops at 3).

The response head is rebuilt from aiohttp's ``raw_headers`` bytes, kept byte for byte (warcio would
re-encode non-ASCII header bytes as UTF-8). Limits of that rebuild are in docs/formats.md.

Commit protocol (why a SIGKILL at any instant cannot corrupt or duplicate): for each URL the writer
appends its records to the WARC file, then one line to ``pages.jsonl`` naming the WARC file and the
offset where those records end. On open, :meth:`ArchiveWriter.open` truncates pages.jsonl to its
last complete line, truncates that WARC file to the recorded end and deletes any later file, so
records without a committed line vanish and the URL is fetched again.

Several writers (the ``processes`` mode: one per worker process) each write a *series* of their
own, ``fetchlab-w{N}-00000.warc.gz`` (:func:`worker_warc_name`); the single writer's series has no
``w`` part. One process still writes pages.jsonl, in each writer's write order, so the repair rule
holds per series: the last line naming a file of the series marks where that series is whole
(:func:`committed_ends` reads pages.jsonl backwards until every series on disk is placed).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sqlite3
import time
import uuid
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from isal import isal_zlib

from crawler.cdxj import cdxj_line, index_part, trim_part
from crawler.core.flow import FetchResult
from crawler.pages import PagesLog, last_complete_line
from foundation.errors import StorageError
from foundation.hashes import sha1

__all__ = [
    "ArchiveJob",
    "ArchiveWriter",
    "RepairReport",
    "WrittenPage",
    "committed_ends",
    "gzip_member",
    "payload_digest",
    "warc_files",
    "warc_record",
    "warc_series",
    "worker_warc_name",
]

WARC_DIR = "warc"
PREFIX = "fetchlab"
_NAME = re.compile(rf"^{PREFIX}-(?:w(\d+)-)?(\d{{5,}})\.warc\.gz$")
# Hop-by-hop framing aiohttp already removed from the body (it always de-chunks), so the stored
# head must not claim it any more.
_DROP_HEADERS = frozenset({b"transfer-encoding"})


def gzip_member(data: bytes, level: int) -> bytes:
    """``data`` as one complete gzip member (ISA-L up to its best level, zlib above)."""
    if level <= isal_zlib.ISAL_BEST_COMPRESSION:
        return isal_zlib.compress(data, level, 31)
    return zlib.compress(data, level, 31)


def payload_digest(body: bytes) -> str:
    """``sha1:BASE32`` as in WARC-Payload-Digest."""
    return "sha1:" + base64.b32encode(sha1(body).digest()).decode("ascii")


def worker_warc_name(worker: int, seq: int) -> str:
    """The name of writer ``worker``'s ``seq``-th WARC file (one series per writer process)."""
    return f"{PREFIX}-w{worker}-{seq:05d}.warc.gz"


def warc_series(path: Path | str) -> int | None:
    """The worker number in a WARC file's name; None for the single writer's series."""
    m = _NAME.match(Path(path).name)
    assert m is not None, path
    return None if m.group(1) is None else int(m.group(1))


def warc_files(out: Path) -> list[Path]:
    """The archive's WARC files: the single writer's series in write order, then each worker's."""
    folder = out / WARC_DIR
    if not folder.is_dir():
        return []
    found = [
        ((-1 if m.group(1) is None else int(m.group(1)), int(m.group(2))), p)
        for p in folder.iterdir()
        if (m := _NAME.match(p.name))
    ]
    return [p for _, p in sorted(found)]


def _seq(path: Path) -> int:
    m = _NAME.match(path.name)
    assert m is not None
    return int(m.group(2))


_WARC_FIELD = b'"warc":"'


def committed_ends(
    pages: Path, end: int, series: set[int | None], block: int = 1 << 20
) -> dict[int | None, tuple[str, int]]:
    """For each of ``series``, the WARC file (``warc/NAME``) and ``warc_end`` of the last line of
    ``pages`` (complete up to ``end``) naming a file of it; series no line names are absent.

    Reads backwards and stops once every series is placed: with one writer, at the last line.
    """
    found: dict[int | None, tuple[str, int]] = {}
    if not series or not pages.exists():
        return found
    with open(pages, "rb") as fh:
        pos, rest = end, b""
        while pos > 0 and len(found) < len(series):
            start = max(0, pos - block)
            fh.seek(start)
            buf = fh.read(pos - start) + rest
            pos = start
            lines = buf.split(b"\n")
            rest = lines[0] if pos > 0 else b""  # may begin in the block before
            for raw in reversed(lines if pos == 0 else lines[1:]):
                at = raw.find(_WARC_FIELD)
                if at < 0:
                    continue
                at += len(_WARC_FIELD)
                m = _NAME.match(Path(raw[at : raw.find(b'"', at)].decode("utf-8", "replace")).name)
                if m is None:
                    continue
                key = None if m.group(1) is None else int(m.group(1))
                if key in series and key not in found:
                    row = json.loads(raw)
                    found[key] = (str(row["warc"]), int(row["warc_end"]))
                    if len(found) == len(series):
                        break
    return found


REVISIT_PROFILE = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
_EMPTY_DIGEST = "sha1:3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBYJ"  # payload_digest(b""): a test checks it
_RESPONSE_TYPE = "application/http; msgtype=response"
_REQUEST_TYPE = "application/http; msgtype=request"


def warc_record(
    rec_type: str, fields: Sequence[tuple[str, str]], content_type: str, block: Sequence[bytes]
) -> tuple[bytes, str]:
    """One WARC/1.1 record, serialised (uncompressed), and its new ``WARC-Record-ID``.

    ``fields`` are the named fields after WARC-Type and WARC-Record-ID; WARC-Block-Digest,
    Content-Type and Content-Length are added. Values must be single-line (the callers pass
    canonical URLs, dates, digests and IP addresses).
    """
    record_id = f"<urn:uuid:{uuid.uuid4()}>"
    sha = sha1()
    length = 0
    for part in block:
        sha.update(part)
        length += len(part)
    lines = [f"WARC/1.1\r\nWARC-Type: {rec_type}\r\nWARC-Record-ID: {record_id}\r\n"]
    lines += [f"{key}: {value}\r\n" for key, value in fields]
    lines.append(
        f"WARC-Block-Digest: sha1:{base64.b32encode(sha.digest()).decode('ascii')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
    head = "".join(lines).encode("utf-8")
    return b"".join((head, *block, b"\r\n\r\n")), record_id


def response_head(hop: FetchResult) -> bytes:
    lines = [f"HTTP/{hop.http_version} {hop.status} {hop.reason}".rstrip().encode("latin-1")]
    for key, value in hop.headers:
        if key.lower() in _DROP_HEADERS:
            continue
        lines.append(key + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


@dataclass(frozen=True)
class ArchiveJob:
    """Everything to write for one URL: its hops' records, then its pages.jsonl row.

    ``robots``: robots.txt fetches (request and response, every hop) made since the last
    job, written first: evidence of what the crawl was allowed, as wget and Heritrix keep it.
    They sit inside this URL's committed range, so a crash before its line drops them with it
    and the rerun, which fetches robots.txt again, archives them again."""

    hops: tuple[FetchResult, ...]
    row: Mapping[str, Any]
    robots: tuple[FetchResult, ...] = ()


@dataclass(frozen=True)
class WrittenPage:
    row: dict[str, Any]
    pages_offset: int  # pages.jsonl size after this row: the commit point
    warc_bytes: int


@dataclass(frozen=True)
class RepairReport:
    pages_truncated: int = 0  # bytes of torn pages.jsonl tail removed
    warc_truncated: int = 0  # bytes of uncommitted WARC tail removed
    files_removed: tuple[str, ...] = ()
    last_row: dict[str, Any] | None = None


@dataclass
class _Stats:
    records: int = 0
    revisits: int = 0
    bytes_written: int = 0
    files: list[str] = field(default_factory=list)


class ArchiveWriter:
    """Synchronous writer, on the asyncio engine's loop thread (:mod:`crawler.commit`).

    ``sync_in_thread``: the periodic fsync (every ``fsync_interval`` seconds) runs in a thread of
    its own on duplicated descriptors, so the loop never waits for the disk (40 MB of WARC took
    ~25 ms to fsync here, a slow disk takes seconds); an fsync error is raised by the next write.
    """

    def __init__(
        self,
        out: Path,
        *,
        max_file_bytes: int = 1_000_000_000,
        gzip_level: int = 3,
        software: str = "fetchlab-crawler/0.1",
        fsync_interval: float = 5.0,
        sync_in_thread: bool = False,
    ) -> None:
        self.out = out
        self.max_file_bytes = max_file_bytes
        self.sync_in_thread = sync_in_thread
        self._sync_pool: ThreadPoolExecutor | None = None
        self._syncing: Future[None] | None = None
        self.gzip_level = gzip_level
        self.software = software
        self.fsync_interval = fsync_interval
        self.stats = _Stats()
        self._fh: io.BufferedWriter | None = None
        self._index: TextIO | None = None
        self._path: Path | None = None
        self._warcinfo_id = ""
        self._pages: PagesLog | None = None
        self._db: sqlite3.Connection | None = None
        self._last_sync = time.monotonic()
        self._pending_digests = 0
        self._main_end: tuple[str, int] | None = None  # set by the repair

    # ----------------------------------------------------------------------------- open / repair
    def open(self) -> RepairReport:
        """Repair what a crash left, then open for appending (from the thread that writes)."""
        report = self.repair()
        try:
            self._pages = PagesLog(self.out / "pages.jsonl")
            files = [p for p in warc_files(self.out) if warc_series(p) is None]
            if files:
                self._open_file(files[-1])
            else:
                self._new_file(0)
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"cannot write the archive in {self.out}: {exc}") from exc
        return report

    def repair(self) -> RepairReport:
        """Repair what a crash left and open the digest index, but neither pages.jsonl nor a WARC
        file (:meth:`open` does all; a coordinator whose workers write the records calls this)."""
        try:
            (self.out / WARC_DIR).mkdir(parents=True, exist_ok=True)
            report = self._repair()
            self._db = sqlite3.connect(self.out / "digests.sqlite", isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS digests (digest TEXT PRIMARY KEY, uri TEXT NOT NULL,"
                " date TEXT NOT NULL, seq INTEGER NOT NULL, offset INTEGER NOT NULL)"
            )
            main = self._main_end
            if report.last_row is None:
                self._db.execute("DELETE FROM digests")
            elif main is not None:
                seq, end = _seq(Path(main[0])), main[1]
                # digests of records that the repair cut away must not be revisited (rows of a
                # worker series have a negative seq: the coordinator adds them only once their
                # lines are written, and no repair cuts a committed record)
                self._db.execute(
                    "DELETE FROM digests WHERE seq > ? OR (seq = ? AND offset >= ?)",
                    (seq, seq, end),
                )
            else:
                self._db.execute("DELETE FROM digests WHERE seq >= 0")
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise StorageError(f"digest index {self.out / 'digests.sqlite'}: {exc}") from exc
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"cannot write the archive in {self.out}: {exc}") from exc
        return report

    def _repair(self) -> RepairReport:
        pages = self.out / "pages.jsonl"
        size = pages.stat().st_size if pages.exists() else 0
        tail = last_complete_line(pages)
        if tail.offset < size:
            os.truncate(pages, tail.offset)
        files = warc_files(self.out)
        removed: list[str] = []
        cut = 0
        ends = committed_ends(pages, tail.offset, {warc_series(p) for p in files})
        self._main_end = ends.get(None)
        for path in files:
            last = ends.get(warc_series(path))
            keep = None if last is None else self.out / WARC_DIR / Path(last[0]).name
            if keep is None or _seq(path) > _seq(keep):
                cut += path.stat().st_size
                path.unlink()
                index_part(self.out, path).unlink(missing_ok=True)
                removed.append(path.name)
            elif path == keep and last is not None:
                end = last[1]
                if path.stat().st_size > end:
                    cut += path.stat().st_size - end
                    os.truncate(path, end)
                trim_part(index_part(self.out, path), end)
        return RepairReport(size - tail.offset, cut, tuple(removed), tail.row)

    def _new_file(self, seq: int) -> None:
        self._close_file()
        path = self.out / WARC_DIR / f"{PREFIX}-{seq:05d}.warc.gz"
        self._open_file(path)

    def _open_file(self, path: Path) -> None:
        self._fh = open(path, "ab")  # noqa: SIM115 (closed in _close_file)
        self._path = path
        part = index_part(self.out, path)
        part.parent.mkdir(exist_ok=True)
        self._index = open(part, "a", encoding="utf-8")  # noqa: SIM115 (closed in _close_file)
        self.stats.files.append(path.name)
        if self._fh.tell() == 0:
            info = (
                f"software: {self.software}\r\nformat: WARC File Format 1.1\r\n"
                "conformsTo: https://iipc.github.io/warc-specifications/specifications/"
                "warc-format/warc-1.1/\r\n"
            ).encode()
            fields = [("WARC-Filename", path.name), ("WARC-Date", _warc_date(time.time()))]
            record, self._warcinfo_id = warc_record(
                "warcinfo", fields, "application/warc-fields", [info]
            )
            self._emit([record])
        else:  # appending after a restart: keep pointing at this file's warcinfo record
            self._warcinfo_id = _first_record_id(path)

    def _close_file(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    # ------------------------------------------------------------------------------------ writing
    def _emit(self, records: Sequence[bytes]) -> list[int]:
        """Gzip each record as its own member, append them; returns the members' sizes."""
        assert self._fh is not None
        parts = [gzip_member(record, self.gzip_level) for record in records]
        data = b"".join(parts)
        # one write per URL's records, flushed to the OS: survives SIGKILL once written
        self._fh.write(data)
        self._fh.flush()
        self.stats.records += len(records)
        self.stats.bytes_written += len(data)
        return [len(p) for p in parts]

    def _records_for(
        self, hop: FetchResult, digest: str, date: str, seq: int, offset: int
    ) -> tuple[list[bytes], bool]:
        """The hop's response (or revisit) record and its request record; True for a revisit."""
        head = response_head(hop)
        fields = [("WARC-Date", date), ("WARC-Target-URI", hop.url)]
        if self._warcinfo_id:
            fields.append(("WARC-Warcinfo-ID", self._warcinfo_id))
        if hop.peer:
            fields.append(("WARC-IP-Address", hop.peer))
        refers = self._lookup(digest) if _revisitable(hop) else None
        if refers is not None:
            fields += [
                ("WARC-Profile", REVISIT_PROFILE),
                ("WARC-Refers-To-Target-URI", refers[0]),
                ("WARC-Refers-To-Date", refers[1]),
                ("WARC-Payload-Digest", digest),
            ]
            record, record_id = warc_record("revisit", fields, _RESPONSE_TYPE, [head])
            self.stats.revisits += 1
        else:
            fields.append(("WARC-Payload-Digest", digest))
            if hop.truncated:
                fields.append(("WARC-Truncated", "length"))
            record, record_id = warc_record("response", fields, _RESPONSE_TYPE, [head, hop.body])
            if _revisitable(hop):
                self._remember(digest, hop.url, date, seq, offset)
        request, _ = warc_record(
            "request",
            [
                ("WARC-Date", date),
                ("WARC-Target-URI", hop.url),
                ("WARC-Concurrent-To", record_id),
                ("WARC-Payload-Digest", _EMPTY_DIGEST),  # a GET has no body (as warcio wrote)
            ],
            _REQUEST_TYPE,
            [hop.request_head],
        )
        return [record, request], refers is not None

    def write(self, job: ArchiveJob) -> WrittenPage:
        """Append the URL's records, then its pages.jsonl line (the commit)."""
        assert self._fh is not None and self._path is not None and self._pages is not None
        if self._fh.tell() >= self.max_file_bytes:
            self._new_file(_seq(self._path) + 1)
            assert self._fh is not None and self._path is not None
        start = self._fh.tell()
        seq = _seq(self._path)
        name = f"{WARC_DIR}/{self._path.name}"
        written = 0
        revisit = False
        row = dict(job.row)
        lines: list[str] = []
        for hop in job.robots:
            size, _, _, line = self._write_hop(hop, seq, name)
            written += size
            lines.append(line)
        for hop in job.hops:
            size, revisit, digest, line = self._write_hop(hop, seq, name)
            written += size
            lines.append(line)
            if hop is job.hops[-1]:
                row["sha1"] = digest
        if lines:
            assert self._index is not None
            # before the commit line: a committed record always has its index entry
            self._index.write("".join(lines))
            self._index.flush()
        row["revisit"] = revisit
        row["warc"] = name
        row["warc_offset"] = start
        row["warc_end"] = self._fh.tell()
        offset = self._pages.append(row)
        self._maybe_sync()
        return WrittenPage(row, offset, written)

    def _write_hop(self, hop: FetchResult, seq: int, name: str) -> tuple[int, bool, str, str]:
        """Append one hop's records: (bytes written, revisit, payload digest, CDXJ line)."""
        assert self._fh is not None
        digest = payload_digest(hop.body)
        offset = self._fh.tell()
        date = _warc_date(hop.started_at)
        records, revisit = self._records_for(hop, digest, date, seq, offset)
        sizes = self._emit(records)
        ctype = None if revisit else hop.header("Content-Type")
        kind = "warc/revisit" if revisit else ctype
        line = cdxj_line(hop.url, date, kind, hop.status, digest, sizes[0], offset, name)
        return sum(sizes), revisit, digest, line

    # --------------------------------------------------------------------------- digest index
    def _lookup(self, digest: str) -> tuple[str, str] | None:
        assert self._db is not None
        found = self._db.execute(
            "SELECT uri, date FROM digests WHERE digest = ?", (digest,)
        ).fetchone()
        return None if found is None else (str(found[0]), str(found[1]))

    def _remember(self, digest: str, uri: str, date: str, seq: int, offset: int) -> None:
        assert self._db is not None
        self._db.execute(
            "INSERT OR IGNORE INTO digests VALUES (?, ?, ?, ?, ?)", (digest, uri, date, seq, offset)
        )
        self._pending_digests += 1
        if self._pending_digests >= 500:
            self._commit()

    def _commit(self) -> None:
        assert self._db is not None
        self._db.execute("COMMIT")
        self._db.execute("BEGIN")
        self._pending_digests = 0

    def _maybe_sync(self) -> None:
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval:
            self.sync()

    def sync(self) -> None:
        """fsync the WARC file and pages.jsonl, commit the digest index."""
        fds = [] if self._fh is None else [self._fh.fileno()]
        if self._pages is not None:
            fds.append(self._pages.fileno())
        self._fsync(fds)
        if self._db is not None:
            self._commit()
        self._last_sync = time.monotonic()

    def _fsync(self, fds: list[int]) -> None:
        """fsync ``fds`` now, or in the sync thread (``sync_in_thread``; skipped while the last
        one still runs: the next interval covers its data)."""
        if not self.sync_in_thread:
            for fd in fds:
                os.fsync(fd)
            return
        self._sync_error()
        if self._syncing is None or self._syncing.done():
            if self._sync_pool is None:
                self._sync_pool = ThreadPoolExecutor(1, thread_name_prefix="warc-fsync")
            # duplicates: the file may be closed (rotated) before the thread gets to it
            self._syncing = self._sync_pool.submit(_fsync_and_close, [os.dup(fd) for fd in fds])

    def _sync_error(self) -> None:
        if self._syncing is not None and self._syncing.done():
            exc = self._syncing.exception()
            self._syncing = None
            if exc is not None:
                raise StorageError(f"cannot sync the archive in {self.out}: {exc}") from exc

    def _end_sync_thread(self) -> None:
        if self._sync_pool is not None:
            self._sync_pool.shutdown(wait=True)
            self._sync_pool = None
            self._sync_error()

    def close(self) -> None:
        self._end_sync_thread()
        if self._pages is not None:
            self._pages.fsync()
            self._pages.close()
            self._pages = None
        self._close_file()
        if self._db is not None:
            self._db.execute("COMMIT")
            self._db.close()
            self._db = None


def _fsync_and_close(fds: list[int]) -> None:
    try:
        for fd in fds:
            os.fsync(fd)
    finally:
        for fd in fds:
            os.close(fd)


def _revisitable(hop: FetchResult) -> bool:
    return 200 <= hop.status < 300 and bool(hop.body) and not hop.truncated


def _warc_date(ts: float) -> str:
    # WARC 1.1 allows sub-second precision; microseconds keep pairs ordered
    t = time.gmtime(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int((ts % 1) * 1_000_000):06d}Z"


def _first_record_id(path: Path) -> str:
    # imported here: only a repair reads records back (a crawl worker never does)
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as fh:
        for record in ArchiveIterator(fh):
            if record.rec_type == "warcinfo":
                return str(record.rec_headers.get_header("WARC-Record-ID"))
            break
    return ""
