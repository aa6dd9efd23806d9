"""``mailsync restore`` in the asyncio mode (and inside each worker of the processes mode).

The target account gets up to ``connections`` connections (each counted against
``max_connections``); each takes destination folders from a queue and drives
:func:`mailsync.core.restore.restore_folder` on it: IMAP commands on the native pipelining
transport, the restore table and the archive's files in one worker thread (the loop never waits on
a disk). A folder whose connection breaks is tried again on a new connection with the backoff of
:mod:`mailsync.core.retry`; its generator starts over from the restore table, so nothing already
recorded is sent twice. A server limit that outlasts the backoff stops the whole restore: the
other folders would only meet it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

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
from mailsync.transports.base import ImapSession
from mailsync.transports.factory import SessionFactory, open_account_session

__all__ = ["restore_asyncio"]

_R = TypeVar("_R")
_T = TypeVar("_T")


class _Run:
    def __init__(
        self,
        settings: MailSettings,
        root: Path,
        target: AccountSettings,
        factory: SessionFactory,
        report: RestoreReport,
    ) -> None:
        self.settings = settings
        self.root = root
        self.target = target
        self.factory = factory
        self.report = report
        self.secret: Secret | None = None
        self.opts = core.RestoreOptions()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-io")
        self.db: RestoreDB | None = None
        self.stop = False
        self.spill = spill_dir(root)

    async def io(self, fn: Callable[..., _T], *args: object) -> _T:
        """``fn(*args)`` on the run's one I/O thread (the restore table, the archive's files)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def open(self) -> ImapSession:
        assert self.secret is not None
        return await self.factory(self.target, self.secret, self.settings, self.spill)

    async def connect(self, extra: bool = False) -> ImapSession:
        """A session, retried with the backoff; ``extra`` (a connection beyond the first): a
        connection cap's refusal (NO [LIMIT]) is not waited out, the open ones do the work."""
        attempt = 0
        while True:
            try:
                return await self.open()
            except MailError as exc:
                if extra and retry.is_connection_cap(exc):
                    raise
                attempt += 1
                decision = retry.after_connect_failure(
                    exc, attempt, self.settings.backoff, random.random()
                )
                if isinstance(decision, retry.FailAccount):
                    raise retry.AccountFailed(decision.message) from None
                self.report.retries += 1
                await asyncio.sleep(decision.delay)

    async def drive(
        self, gen: Generator[core.RestoreEffect, object, _R], session: ImapSession
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
                    value = tuple(await session.pipeline(effect.commands))
                elif isinstance(effect, core.Pause):
                    self.report.retries += 1
                    self.report.warnings.append(f"{self.target.name}: {effect.reason}; waiting")
                    await asyncio.sleep(
                        self.settings.backoff.delay(effect.attempt, random.random())
                    )
                    value = None
                else:
                    assert self.db is not None
                    value = await self.io(perform_local, effect, self.db, self.root, counts)
        finally:
            gen.close()
            self.report.warnings += counts.warnings

    async def folder(self, session: ImapSession | None, job: core.RestoreJob) -> ImapSession | None:
        where = f"{self.target.name}/{job.dest}"
        counts = core.RestoreCounts()  # kept across attempts, reported however the job ends
        try:
            return await self._folder(session, job, where, counts)
        finally:
            self.report.add(counts)

    async def _folder(
        self,
        session: ImapSession | None,
        job: core.RestoreJob,
        where: str,
        counts: core.RestoreCounts,
    ) -> ImapSession | None:
        attempt = 0
        while True:
            try:
                if session is None:
                    session = await self.open()
                await self.drive(core.restore_folder(job, self.opts, counts), session)
            except (MailError, StorageError) as exc:
                attempt += 1
                if isinstance(exc, ImapLimitError):
                    self.stop = True
                    self.report.errors.append(
                        f"{where}: the server keeps refusing: {exc}; stopped (rerun to go on"
                        " where this run stopped)"
                    )
                    return session
                decision = retry.after_folder_failure(
                    exc, where, attempt, self.settings.backoff, random.random()
                )
                if not decision.keep_session and session is not None:
                    with contextlib.suppress(Exception):
                        await session.aclose()
                    session = None
                if isinstance(decision, retry.Retry):
                    self.report.retries += 1
                    await asyncio.sleep(decision.delay)
                    continue
                if isinstance(decision, retry.FailFolder):
                    self.report.errors.append(decision.message)
                else:
                    self.report.warnings.append(decision.warning)
                return session
            self.report.folders += 1
            return session

    async def worker(
        self, session: ImapSession | None, queue: deque[core.RestoreJob], sem: asyncio.Semaphore
    ) -> None:
        async with contextlib.AsyncExitStack() as stack:
            if session is None:
                await sem.acquire()
            stack.callback(sem.release)
            if session is None and queue and not self.stop:
                try:
                    session = await self.connect(extra=True)
                except MailError as exc:
                    # a provider's connection cap: the connections already open do the work
                    self.report.warnings.append(
                        f"{self.target.name}: one more connection was refused ({exc}); going on"
                        " with fewer"
                    )
                    return
            try:
                while queue and not self.stop:
                    session = await self.folder(session, queue.popleft())
            finally:
                if session is not None:
                    with contextlib.suppress(Exception):
                        await session.aclose()


async def restore_asyncio(
    settings: MailSettings,
    root: Path,
    target: AccountSettings,
    jobs: Sequence[core.RestoreJob],
    *,
    factory: SessionFactory = open_account_session,
    report: RestoreReport | None = None,
    secret: Secret | None = None,
) -> RestoreReport:
    """Restore ``jobs`` (from the archive at ``root``) into ``target``; ``secret``: the
    password or token already read (a worker process gets it from its parent), else read here."""
    start = time.monotonic()
    report = report or RestoreReport(root.name, target.name)
    report.messages += sum(len(j.items) for j in jobs)
    run = _Run(settings, root, target, factory, report)
    sem = asyncio.Semaphore(settings.max_connections)
    try:
        run.secret = secret if secret is not None else get_secret(target)
        run.db = await run.io(RestoreDB, restore_db_path(root), target_id(target))
        if not jobs:
            return report
        await sem.acquire()
        try:
            first = await run.connect()
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
        extra = min(target.connections, len(jobs)) - 1
        await asyncio.gather(
            run.worker(first, queue, sem), *(run.worker(None, queue, sem) for _ in range(extra))
        )
    except (MailError, StorageError) as exc:
        report.errors.append(str(exc))
    finally:
        if run.db is not None:
            await run.io(run.db.close)
        run.pool.shutdown(wait=True)
        clear_spill(root)
        report.seconds = time.monotonic() - start
    return report
