"""The restore table and everything a restore does besides IMAP: plan, local effects, report.

``<archive>/.fetchlab/restore.sqlite`` (beside the state DB, private, WAL) has one row per
archived message sent to a target, keyed by (target, folder, uidvalidity, uid) of the archive:
``pending`` from just before its APPEND went out, ``done`` once the server has it (with the
destination folder, UIDVALIDITY and UID when known, and whether it was appended or found after a
crash), ``failed`` when the server refused it. The target is ``user@host:port`` of the account
restored to, so restoring one archive into several accounts keeps separate records. Every
worker -- threads, or processes of their own -- writes through its own connection; SQLite
serialises the commits.

One restore per archive at a time: :class:`RestoreLock` (``.fetchlab/restore.lock``).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from foundation.errors import CorruptArchiveError, StorageError
from mailsync.archived import ArchivedMessage, open_reader
from mailsync.core import restore as core
from mailsync.core.flow import Send
from mailsync.core.selection import Selection
from mailsync.layout import FILE_MODE, internal_dir, private_dirs
from mailsync.private_db import open_private_db, write_batch
from mailsync.settings import AccountSettings

__all__ = [
    "RestoreDB",
    "RestoreLock",
    "RestoreReport",
    "clear_spill",
    "items_from",
    "perform_local",
    "plan_jobs",
    "restore_db_path",
    "spill_dir",
    "target_id",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS restored (
    target TEXT NOT NULL,
    folder TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    state TEXT NOT NULL,
    dest_folder TEXT NOT NULL,
    dest_uidvalidity INTEGER,
    dest_uid INTEGER,
    how TEXT,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    detail TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (target, folder, uidvalidity, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS restored_dest ON restored(target, dest_folder);
"""


def restore_db_path(root: Path) -> Path:
    return internal_dir(root) / "restore.sqlite"


def spill_dir(root: Path) -> Path:
    """Where a restore's connections stream bodies too large for memory (fetched only to
    compare a message already on the server); one folder per process (the processes mode runs
    several), emptied by :func:`clear_spill`."""
    return internal_dir(root) / "restore-spill" / str(os.getpid())


def clear_spill(root: Path) -> None:
    shutil.rmtree(spill_dir(root), ignore_errors=True)


def target_id(account: AccountSettings) -> str:
    return f"{account.username}@{account.host}:{account.port}"


class RestoreDB:
    """One connection to an archive's restore table (one per thread or process)."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target
        # timeout: the processes mode's workers open it at the same moment. A committed
        # "pending" must survive the process: NORMAL in WAL mode does (only a power loss could
        # drop it, and then the message is looked up anyway... or sent again: FULL closes that
        # too, at one fsync per batch)
        self._db = open_private_db(
            path, _SCHEMA, what="the restore table", synchronous="FULL", timeout=30, busy_ms=30_000
        )

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        write_batch(self._db, sql, rows, f"{self.path}: restore table write failed")

    def progress(self, dest: str) -> core.Progress:
        done: set[core.SourceKey] = set()
        pending: set[core.SourceKey] = set()
        claimed: dict[int, set[int]] = {}
        cur = self._db.execute(
            "SELECT folder, uidvalidity, uid, state, dest_uidvalidity, dest_uid FROM restored"
            " WHERE target=? AND dest_folder=?",
            (self.target, dest),
        )
        for folder, validity, uid, state, dvalidity, duid in cur:
            key = (folder, validity, uid)
            if state == "done":
                done.add(key)
                if dvalidity is not None and duid is not None:
                    claimed.setdefault(dvalidity, set()).add(duid)
            elif state == "pending":
                pending.add(key)
        return core.Progress(
            frozenset(done), frozenset(pending), {k: frozenset(v) for k, v in claimed.items()}
        )

    def mark_pending(self, dest: str, items: Sequence[core.RestoreItem]) -> None:
        now = time.time()
        self._write(
            "INSERT INTO restored (target, folder, uidvalidity, uid, state, dest_folder, sha256,"
            " size, at) VALUES (?,?,?,?,'pending',?,?,?,?) ON CONFLICT DO UPDATE SET"
            " state='pending', dest_folder=excluded.dest_folder, detail=NULL, at=excluded.at",
            [(self.target, *i.key, dest, i.sha256, i.size, now) for i in items],
        )

    def mark_done(
        self, dest: str, rows: Sequence[tuple[core.RestoreItem, int | None, int | None, str]]
    ) -> None:
        now = time.time()
        self._write(
            "INSERT INTO restored (target, folder, uidvalidity, uid, state, dest_folder,"
            " dest_uidvalidity, dest_uid, how, sha256, size, at) VALUES"
            " (?,?,?,?,'done',?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET state='done',"
            " dest_folder=excluded.dest_folder, dest_uidvalidity=excluded.dest_uidvalidity,"
            " dest_uid=excluded.dest_uid, how=excluded.how, detail=NULL, at=excluded.at",
            [
                (self.target, *i.key, dest, validity, uid, how, i.sha256, i.size, now)
                for i, validity, uid, how in rows
            ],
        )

    def mark_failed(self, dest: str, items: Sequence[core.RestoreItem], reason: str) -> None:
        self._write(
            "UPDATE restored SET state='failed', detail=? WHERE target=? AND folder=?"
            " AND uidvalidity=? AND uid=?",
            [(reason, self.target, *i.key) for i in items],
        )

    def counts(self) -> dict[str, int]:
        cur = self._db.execute(
            "SELECT state, COUNT(*) FROM restored WHERE target=? GROUP BY state", (self.target,)
        )
        return {state: n for state, n in cur}


class RestoreLock:
    """An exclusive ``flock`` on ``.fetchlab/restore.lock``: one restore of an archive at once."""

    def __init__(self, root: Path) -> None:
        self.path = internal_dir(root) / "restore.lock"
        self._fd: int | None = None

    def __enter__(self) -> RestoreLock:
        private_dirs(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StorageError(
                    f"{self.path.parent.parent}: another restore from this archive is running"
                ) from None
            raise StorageError(f"{self.path}: cannot lock: {exc.strerror}") from exc
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def items_from(messages: Iterable[ArchivedMessage]) -> list[core.RestoreItem]:
    return [
        core.RestoreItem(
            (m.folder, m.uidvalidity, m.uid),
            m.size,
            m.sha256,
            m.flags,
            m.internaldate,
            m.message_id,
            m.path,
        )
        for m in messages
    ]


def plan_jobs(
    root: Path,
    selection: Selection,
    folder_map: dict[str, str],
    *,
    include_deleted: bool = False,
) -> list[core.RestoreJob]:
    """The selected messages of the archive at ``root``, one job per destination folder."""
    with open_reader(root) as reader:
        items = items_from(reader.messages(selection, include_deleted=include_deleted))
    return core.build_jobs(items, folder_map)


@dataclass
class RestoreReport:
    """One restore run (every folder), the same in every mode."""

    source: str
    target: str
    folders: int = 0
    messages: int = 0  # selected in the archive
    appended: int = 0
    found: int = 0  # sent by a run that died before recording it: recorded now
    present: int = 0  # already in the destination folder: not sent
    already: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, counts: core.RestoreCounts) -> None:
        self.appended += counts.appended
        self.found += counts.found
        self.present += counts.present
        self.already += counts.already
        self.failed += counts.failed
        self.bytes += counts.bytes
        self.errors += counts.errors
        self.warnings += counts.warnings


def perform_local(
    effect: core.RestoreEffect, db: RestoreDB, root: Path, counts: core.RestoreCounts
) -> object:
    """Perform every restore effect but :class:`Send` and :class:`~core.Pause` (the driver's)."""
    if isinstance(effect, core.LoadProgress):
        return db.progress(effect.dest)
    if isinstance(effect, core.ReadBodies):
        out = []
        for item in effect.items:
            try:
                with open(root / item.path, "rb") as fh:
                    body = fh.read()
            except OSError as exc:
                raise StorageError(f"{root / item.path}: cannot read: {exc.strerror}") from exc
            # never upload a damaged copy: `mailsync verify` marks it, the next backup refetches
            if len(body) != item.size or hashlib.sha256(body).hexdigest() != item.sha256:
                raise CorruptArchiveError(
                    f"{root / item.path}: bytes differ from the archived SHA-256 (run mailsync"
                    " verify, then backup, to repair it)"
                )
            out.append(body)
        return tuple(out)
    if isinstance(effect, core.MarkPending):
        db.mark_pending(effect.dest, effect.items)
        return None
    if isinstance(effect, core.MarkDone):
        db.mark_done(effect.dest, effect.rows)
        return None
    if isinstance(effect, core.MarkFailed):
        db.mark_failed(effect.dest, effect.items, effect.reason)
        return None
    if isinstance(effect, core.Warn):
        counts.warnings.append(effect.text)
        return None
    assert not isinstance(effect, Send | core.Pause), effect
    raise AssertionError(f"unknown effect {effect!r}")
