"""The coordinator's end of the ``processes`` mode's commit: pages.jsonl lines and shared digests.

The workers wrote the records (:mod:`crawler.worker_archive`); here each URL's pages.jsonl line is
appended (the commit point of :mod:`crawler.warc`'s protocol) and, after it, the digests of its
response records go into ``digests.sqlite``, the table the workers consult for revisits, so they
only ever refer to committed records. The repair that opens the archive is the single writer's
own (:meth:`crawler.warc.ArchiveWriter.repair`), which knows every writer's series.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from crawler.core.frontier import Frontier
from crawler.page_steps import complete_all, count_page
from crawler.pages import PagesLog
from crawler.stats import CrawlStats
from crawler.warc import ArchiveWriter, RepairReport
from crawler.work import ArchivedWork
from foundation.errors import StorageError

__all__ = ["FSYNC_EVERY", "PagesCommitter"]

FSYNC_EVERY = 5.0  # seconds, as the single writer's fsync_interval


class PagesCommitter:
    def __init__(self, out: Path, *, max_file_bytes: int, gzip_level: int) -> None:
        self.out = out
        self._repairer = ArchiveWriter(out, max_file_bytes=max_file_bytes, gzip_level=gzip_level)
        self._pages: PagesLog | None = None
        self._db: sqlite3.Connection | None = None
        self._dirty = False
        self._synced_at = time.monotonic()

    def open(self) -> RepairReport:
        """Repair what a crash left (every series), then open pages.jsonl and the digests."""
        report = self._repairer.repair()
        self._repairer.close()
        self._pages = PagesLog(self.out / "pages.jsonl")
        try:
            self._db = sqlite3.connect(self.out / "digests.sqlite", isolation_level=None)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise StorageError(f"digest index {self.out / 'digests.sqlite'}: {exc}") from exc
        return report

    def commit(self, row: Mapping[str, Any]) -> int:
        """Append the URL's line; returns the pages.jsonl offset after it."""
        assert self._pages is not None
        return self._pages.append(row)

    def commit_batch(
        self, works: Sequence[ArchivedWork], frontier: Frontier, stats: CrawlStats
    ) -> int:
        """Append each URL's line in order, add its digests, count it, then mark the URLs in the
        frontier; returns the pages.jsonl offset after the last line."""
        done: list[str] = []
        end = 0
        for work in works:
            row = work.row
            assert row is not None
            end = self.commit(row)
            if row["error_class"] is None:
                done.append(work.item.url)
            else:
                frontier.fail(work.item.url)
            self.add_digests(work.worker, work.digests)
            count_page(
                stats,
                work.item.url,
                row,
                body_bytes=work.body_bytes,
                responses=work.responses,
                revisit=bool(row.get("revisit")),
            )
        complete_all(frontier, done)
        return end

    def add_digests(self, worker: int, digests: Iterable[tuple[str, str, str, int]]) -> None:
        """Digests of committed response records (a worker series has seq ``-1 - worker``)."""
        assert self._db is not None
        rows = [(d, uri, date, -1 - worker, off) for d, uri, date, off in digests]
        if rows:
            self._db.executemany("INSERT OR IGNORE INTO digests VALUES (?, ?, ?, ?, ?)", rows)
            self._dirty = True

    def flush(self) -> None:
        """Make the new digests visible to the workers; fsync pages.jsonl now and then."""
        assert self._db is not None and self._pages is not None
        if self._dirty:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
            self._dirty = False
        if time.monotonic() - self._synced_at >= FSYNC_EVERY:
            self._pages.fsync()
            self._synced_at = time.monotonic()

    def close(self) -> None:
        if self._pages is not None:
            self._pages.fsync()
            self._pages.close()
            self._pages = None
        if self._db is not None:
            self._db.execute("COMMIT")
            self._db.close()
            self._db = None
