"""A worker process's own WARC writer (the ``processes`` mode): records only, no pages.jsonl.

Each worker writes its series ``warc/fetchlab-w{N}-00000.warc.gz`` (rotated like the single
writer's files) and its CDXJ index part, with the same records, digests and gzip members as
:class:`crawler.warc.ArchiveWriter` (it reuses that writer's record code), and sends the
coordinator only where the records are. The coordinator writes the pages.jsonl line (the commit),
in this worker's write order, so the crash repair of :mod:`crawler.warc` holds per series.

Revisits: a payload is written as a ``revisit`` when this worker already wrote it (its own
earlier record in the same file series: always committed before the revisit is) or when the
archive's ``digests.sqlite`` holds it. The coordinator adds a worker's digests to that table only
after their lines are committed, so a revisit never points at a record a crash can cut away. What
is lost: a payload first met by another worker whose line is not committed yet is stored in full
again (a few pages in flight at the same instant; measured in docs/comparisons.md).
"""

from __future__ import annotations

import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from crawler.core.flow import FetchResult
from crawler.warc import (
    WARC_DIR,
    ArchiveWriter,
    _seq,
    warc_files,
    warc_series,
    worker_warc_name,
)
from foundation.errors import StorageError

__all__ = ["LOCAL_DIGESTS", "Records", "WorkerArchive"]

# this worker's own latest digests, kept in memory until the coordinator has committed them to
# the shared table (it does so after every batch of results, a few hundred pages at most). Not
# more: at 200,000 they were ~35 MB of a 100,000-page crawl's growth over two workers, and
# 10,000 still ~3 MB a worker at 20,000 pages (2,000: the same pace, interleaved probe,
# 2026-12-07). One that fell out too early costs a full record instead of a revisit, never a
# wrong archive.
LOCAL_DIGESTS = 2_000


@dataclass(frozen=True)
class Records:
    """Where one URL's records went."""

    warc: str  # "warc/NAME", as pages.jsonl names it
    start: int
    end: int
    sha1: str | None  # payload digest of the last hop
    revisit: bool  # the last hop was written as a revisit
    digests: tuple[tuple[str, str, str, int], ...]  # response records: digest, URI, date, offset


class WorkerArchive(ArchiveWriter):
    """Writes worker ``worker``'s WARC series. Open after the coordinator's repair."""

    def __init__(
        self,
        out: Path,
        worker: int,
        *,
        max_file_bytes: int = 1_000_000_000,
        gzip_level: int = 3,
        fsync_interval: float = 5.0,
        sync_in_thread: bool = False,
    ) -> None:
        super().__init__(
            out,
            max_file_bytes=max_file_bytes,
            gzip_level=gzip_level,
            fsync_interval=fsync_interval,
            sync_in_thread=sync_in_thread,
        )
        self.worker = worker
        self._local: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._written: list[tuple[str, str, str, int]] = []
        self._robots_held: list[FetchResult] = []
        self._shared: sqlite3.Connection | None = None
        self._seq = 0

    def open(self) -> None:  # type: ignore[override]  # no repair here: the coordinator's
        try:
            (self.out / WARC_DIR).mkdir(parents=True, exist_ok=True)
            # read-only use: lookups of committed digests (the coordinator is the one writer)
            self._shared = sqlite3.connect(self.out / "digests.sqlite", timeout=10.0)
            files = [p for p in warc_files(self.out) if warc_series(p) == self.worker]
            if files:
                self._seq = _seq(files[-1])
                self._open_file(files[-1])
            else:
                self._new_file(0)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot write the archive in {self.out}: {exc}") from exc

    def _new_file(self, seq: int) -> None:
        self._close_file()
        self._seq = seq
        self._open_file(self.out / WARC_DIR / worker_warc_name(self.worker, seq))

    def hold_robots(self, records: tuple[FetchResult, ...]) -> None:
        """robots.txt fetches to archive with the next URL written (a URL to be retried writes
        nothing; see :class:`crawler.warc.ArchiveJob`)."""
        self._robots_held.extend(records)

    def write_records(self, hops: tuple[FetchResult, ...]) -> Records:
        """Append the records of one URL's hops (after any robots.txt records held) and their
        index lines; flushed to the OS."""
        assert self._fh is not None and self._path is not None and self._index is not None
        if self._fh.tell() >= self.max_file_bytes:
            self._new_file(self._seq + 1)
            assert self._fh is not None and self._path is not None and self._index is not None
        self._written = []
        start = self._fh.tell()
        name = f"{WARC_DIR}/{self._path.name}"
        revisit = False
        sha1: str | None = None
        lines: list[str] = []
        seq = -1 - self.worker  # the digest index's key for this worker's uncommitted files
        for hop in self._robots_held:
            lines.append(self._write_hop(hop, seq, name)[3])
        self._robots_held.clear()
        for hop in hops:
            _, revisit, sha1, line = self._write_hop(hop, seq, name)
            lines.append(line)
        if lines:
            self._index.write("".join(lines))
            self._index.flush()
        self._maybe_sync()
        return Records(name, start, self._fh.tell(), sha1, revisit, tuple(self._written))

    # the digest index: this worker's own records first, then the committed shared table
    def _lookup(self, digest: str) -> tuple[str, str] | None:
        found = self._local.get(digest)
        if found is not None:
            return found
        assert self._shared is not None
        row = self._shared.execute(
            "SELECT uri, date FROM digests WHERE digest = ?", (digest,)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def _remember(self, digest: str, uri: str, date: str, seq: int, offset: int) -> None:
        self._local[digest] = (uri, date)
        if len(self._local) > LOCAL_DIGESTS:
            self._local.popitem(last=False)
        self._written.append((digest, uri, date, offset))

    def sync(self) -> None:
        self._fsync([] if self._fh is None else [self._fh.fileno()])
        self._last_sync = time.monotonic()

    def close(self) -> None:
        self._end_sync_thread()
        self._close_file()
        if self._shared is not None:
            self._shared.close()
            self._shared = None
