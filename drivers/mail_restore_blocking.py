"""``mailsync restore`` in the threads, sequential and gevent modes: the same flow as the asyncio
driver (:func:`mailsync.core.restore.restore_folder`) over the blocking imaplib transport.

threads: up to ``connections`` threads, each with its own connection, take destination folders
from one queue; sequential: one connection, one folder after another; gevent: the threads mode
with greenlets, in a child process that monkey-patched first (:mod:`drivers.mail_restore_gevent`).
Each thread writes the restore table through its own SQLite connection.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Literal, TypeVar

from foundation.errors import ImapLimitError, MailError, StorageError
from mailsync.auth import Secret, get_secret
from mailsync.core import restore as core
from mailsync.core import retry
from mailsync.core.flow import Send
from mailsync.restore_state import (
    RestoreDB,
    RestoreReport,
    clear_spill,
    perform_local,
    restore_db_path,
    spill_dir,
    target_id,
)
from mailsync.settings import AccountSettings, MailSettings
from mailsync.transports.imaplib_client import ImaplibSession, open_blocking_session

__all__ = ["restore_blocking"]

_R = TypeVar("_R")
BlockingKind = Literal["threads", "gevent", "sequential"]


class _Run:
    def __init__(
        self, settings: MailSettings, root: Path, target: AccountSettings, report: RestoreReport
    ) -> None:
        self.settings = settings
        self.root = root
        self.target = target
        self.report = report
        self.secret: Secret | None = None
        self.opts = core.RestoreOptions()
        self.lock = threading.Lock()  # around the shared report
        self.stop = False

    def note(self, attr: str, value: object) -> None:
        with self.lock:
            getattr(self.report, attr).append(value)

    def open(self) -> ImaplibSession:
        assert self.secret is not None
        return open_blocking_session(
            self.target,
            self.secret,
            timeout=self.settings.timeout,
            spill_dir=spill_dir(self.root),
            spill_threshold=self.settings.spill_threshold,
        )

    def connect(self, extra: bool = False) -> ImaplibSession:
        """A session, retried with the backoff; ``extra`` (a connection beyond the first): a
        connection cap's refusal (NO [LIMIT]) is not waited out, the open ones do the work."""
        attempt = 0
        while True:
            try:
                return self.open()
            except MailError as exc:
                if extra and retry.is_connection_cap(exc):
                    raise
                attempt += 1
                decision = retry.after_connect_failure(
                    exc, attempt, self.settings.backoff, random.random()
                )
                if isinstance(decision, retry.FailAccount):
                    raise retry.AccountFailed(decision.message) from None
                with self.lock:
                    self.report.retries += 1
                time.sleep(decision.delay)

    def drive(
        self, gen: Generator[core.RestoreEffect, object, _R], session: ImaplibSession, db: RestoreDB
    ) -> _R:
        counts = core.RestoreCounts()
        value: object = None
        try:
            while True:
                try:
                    effect = gen.send(value)
                except StopIteration as stop:
                    result: _R = stop.value
                    return result
                if isinstance(effect, Send):
                    value = tuple(session.pipeline(effect.commands))
                elif isinstance(effect, core.Pause):
                    with self.lock:
                        self.report.retries += 1
                    self.note("warnings", f"{self.target.name}: {effect.reason}; waiting")
                    time.sleep(self.settings.backoff.delay(effect.attempt, random.random()))
                    value = None
                else:
                    value = perform_local(effect, db, self.root, counts)
        finally:
            gen.close()
            for text in counts.warnings:
                self.note("warnings", text)

    def folder(
        self, session: ImaplibSession | None, job: core.RestoreJob, db: RestoreDB
    ) -> ImaplibSession | None:
        where = f"{self.target.name}/{job.dest}"
        counts = core.RestoreCounts()  # kept across attempts, reported however the job ends
        try:
            return self._folder(session, job, where, counts, db)
        finally:
            with self.lock:
                self.report.add(counts)

    def _folder(
        self,
        session: ImaplibSession | None,
        job: core.RestoreJob,
        where: str,
        counts: core.RestoreCounts,
        db: RestoreDB,
    ) -> ImaplibSession | None:
        attempt = 0
        while True:
            try:
                if session is None:
                    session = self.open()
                self.drive(core.restore_folder(job, self.opts, counts), session, db)
            except (MailError, StorageError) as exc:
                attempt += 1
                if isinstance(exc, ImapLimitError):
                    self.stop = True
                    self.note(
                        "errors",
                        f"{where}: the server keeps refusing: {exc}; stopped (rerun to go on"
                        " where this run stopped)",
                    )
                    return session
                decision = retry.after_folder_failure(
                    exc, where, attempt, self.settings.backoff, random.random()
                )
                if not decision.keep_session and session is not None:
                    with contextlib.suppress(Exception):
                        session.close()
                    session = None
                if isinstance(decision, retry.Retry):
                    with self.lock:
                        self.report.retries += 1
                    time.sleep(decision.delay)
                    continue
                if isinstance(decision, retry.FailFolder):
                    self.note("errors", decision.message)
                else:
                    self.note("warnings", decision.warning)
                return session
            with self.lock:
                self.report.folders += 1
            return session

    def worker(
        self,
        session: ImaplibSession | None,
        queue: deque[core.RestoreJob],
        sem: threading.BoundedSemaphore,
    ) -> None:
        if session is None:
            sem.acquire()
        db: RestoreDB | None = None
        try:
            if session is None and queue and not self.stop:
                try:
                    session = self.connect(extra=True)
                except MailError as exc:
                    # a provider's connection cap: the connections already open do the work
                    self.note(
                        "warnings",
                        f"{self.target.name}: one more connection was refused ({exc}); going"
                        " on with fewer",
                    )
                    return
            db = RestoreDB(restore_db_path(self.root), target_id(self.target))
            while not self.stop:
                try:
                    job = queue.popleft()
                except IndexError:
                    return
                session = self.folder(session, job, db)
        except (MailError, StorageError) as exc:
            self.note("errors", str(exc))
        finally:
            if session is not None:
                with contextlib.suppress(Exception):
                    session.close()
            if db is not None:
                db.close()
            sem.release()


def restore_blocking(
    settings: MailSettings,
    root: Path,
    target: AccountSettings,
    jobs: Sequence[core.RestoreJob],
    *,
    kind: BlockingKind,
    report: RestoreReport | None = None,
) -> RestoreReport:
    """Restore ``jobs`` (from the archive at ``root``) into ``target`` with blocking connections."""
    start = time.monotonic()
    report = report or RestoreReport(root.name, target.name)
    report.messages += sum(len(j.items) for j in jobs)
    run = _Run(settings, root, target, report)
    sem = threading.BoundedSemaphore(settings.max_connections)
    try:
        run.secret = get_secret(target)
        if not jobs:
            return report
        sem.acquire()
        try:
            first = run.connect()
        except BaseException:
            sem.release()
            raise
        run.opts = core.RestoreOptions.from_capabilities(
            first.capabilities,
            retries=settings.retries,
            batch_messages=min(target.batch_messages, core.RestoreOptions.batch_messages),
            batch_bytes=min(target.batch_bytes, core.RestoreOptions.batch_bytes),
            depth=settings.pipeline_depth,
        )
        queue = deque(jobs)
        count = 1 if kind == "sequential" else min(target.connections, len(jobs))
        threads = [
            threading.Thread(target=run.worker, args=(None, queue, sem), name="restore")
            for _ in range(count - 1)
        ]
        for thread in threads:
            thread.start()
        try:
            run.worker(first, queue, sem)
        finally:
            for thread in threads:
                thread.join()
    except (MailError, StorageError) as exc:
        report.errors.append(str(exc))
    finally:
        clear_spill(root)
        report.seconds = time.monotonic() - start
    return report
