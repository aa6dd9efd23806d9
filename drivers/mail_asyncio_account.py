"""The asyncio engine's account side: connections, the folder queue, helpers and retries.

Each account opens one connection for LIST + a pipelined STATUS of all folders, then up to
``connections`` workers take folders (largest first) from a queue, each on its own connection.
A worker whose queue is empty helps the folder with the most body FETCHes left: it EXAMINEs that
folder too and becomes one more lane of its :class:`~drivers.mail_asyncio_folder.FetchLanes`, so the
last big folder is not left to a single connection.

Which failures are retried, how long to wait and what the report says is decided by
:mod:`mailsync.core.retry`, as in every mode; a connection dropped mid-folder is reopened and the
folder restarts from the state, which already holds every batch written so far: nothing is
fetched twice, nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from drivers.mail_asyncio_folder import (
    AccountReport,
    BodyBudget,
    FetchLanes,
    FolderEffects,
    IndexOffload,
    SessionFactory,
)
from foundation.errors import MailError, ModeError, StorageError
from mailsync import account
from mailsync.auth import Secret, get_secret
from mailsync.core import commands, flow, options, retry
from mailsync.core.plan import FolderState
from mailsync.core.schedule import folder_where
from mailsync.report import FolderOutcome
from mailsync.settings import AccountSettings, MailSettings
from mailsync.store import AccountArchive
from mailsync.transports.base import ImapSession

__all__ = ["AccountRun"]

# messages in never-synced folders above which the index's parser pool is started at once
_PRESTART_PARSER = 1000


class _Once:
    """Calls ``fn`` the first time it is called, then never again."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn: Callable[[], None] | None = fn

    def __call__(self) -> None:
        fn, self._fn = self._fn, None
        if fn is not None:
            fn()


class AccountRun(FolderEffects):
    """One account's backup: :meth:`run` returns its report (errors included, never raised)."""

    def __init__(
        self,
        account: AccountSettings,
        settings: MailSettings,
        out: Path,
        semaphore: asyncio.Semaphore,
        offload: IndexOffload,
        factory: SessionFactory,
    ) -> None:
        self.account = account
        self.settings = settings
        self.archive = AccountArchive(
            out / account.name, fsync=settings.fsync, method=settings.fsync_method
        )
        self.sem = semaphore
        self.offload = offload
        self.factory = factory
        self.report = AccountReport(account.name)
        self.secret: Secret | None = None
        self.sessions: list[ImapSession] = []
        self.opts = flow.SyncOptions()
        self.fetching: list[FetchLanes] = []  # folders with body FETCHes going: helpable
        self.budget = BodyBudget(settings.bodies_in_flight_bytes)
        self._may_help = True
        self._starting = 0  # folders taken from the queue that have not started fetching yet
        self._change: asyncio.Event | None = None

    # connections ------------------------------------------------------------------------------

    async def _open(self) -> ImapSession:
        """One attempt at a new session (the caller decides about retries)."""
        assert self.secret is not None
        session = await self.factory(
            self.account, self.secret, self.settings, self.archive.root / ".spill"
        )
        self.sessions.append(session)
        return session

    async def _connect(self) -> ImapSession:
        """A new session, retried as :func:`mailsync.core.retry.after_connect_failure` says."""
        attempt = 0
        while True:
            try:
                return await self._open()
            except MailError as exc:
                attempt += 1
                decision = retry.after_connect_failure(
                    exc, attempt, self.settings.backoff, random.random()
                )
                if isinstance(decision, retry.FailAccount):
                    raise retry.AccountFailed(decision.message) from None
                self.report.retries += 1
                await asyncio.sleep(decision.delay)

    def _tally(self) -> None:
        self.report.count_transport(s.stats for s in self.sessions)
        self.sessions.clear()

    async def _close(self, session: ImapSession | None) -> None:
        if session is not None:
            with contextlib.suppress(Exception):
                await session.aclose()

    async def _preopen(self) -> ImapSession:
        """A connection holding one permit of the global semaphore."""
        await self.sem.acquire()
        try:
            return await self._connect()
        except BaseException:
            self.sem.release()
            raise

    async def _drop_spare(self, task: asyncio.Task[ImapSession]) -> None:
        if not task.done():
            task.cancel()
        try:
            session = await task
        except (asyncio.CancelledError, Exception):
            return  # its permit was released by _preopen
        await self._close(session)
        self.sem.release()

    # the run ---------------------------------------------------------------------------------

    async def run(self) -> AccountReport:
        start = time.monotonic()
        try:
            self.secret = await asyncio.to_thread(get_secret, self.account)
            await self.archive.open()
            try:
                await self._run()
            finally:
                await self.archive.aclose()
        except (MailError, ModeError, StorageError) as exc:
            self.report.account_failed(exc)
        finally:
            self._tally()
            self.report.seconds = time.monotonic() - start
        return self.report

    async def _run(self) -> None:
        before = await self.archive.run(self.archive.folder_states)
        session = await self._preopen()
        # a first backup will want every connection: open them while LIST/STATUS run (saves
        # the login round trips on slow links); later runs open them only for changed folders
        spares = (
            [asyncio.create_task(self._preopen()) for _ in range(self.account.connections - 1)]
            if not before
            else []
        )
        try:
            await self._discover_and_sync(session, before, spares)
        finally:
            for task in spares:
                await self._drop_spare(task)
            # bodies spilled for responses that were dropped (cut connection, failed folder)
            await self.archive.run(self.archive.clear_spill)

    async def _discover_and_sync(
        self,
        session: ImapSession,
        before: dict[str, FolderState],
        spares: list[asyncio.Task[ImapSession]],
    ) -> None:
        caps = session.capabilities
        aioimaplib = self.settings.imap_client == "aioimaplib"
        self.opts = account.sync_options(self.account, self.settings, caps, aioimaplib=aioimaplib)
        try:
            jobs, gone = await self.drive(
                account.discover(self.account, caps, before, aioimaplib=aioimaplib),
                session,
                FetchLanes(),
            )
        except BaseException:
            await self._close(session)
            self.sem.release()
            raise
        if gone:
            await self.archive.run(self.archive.mark_folders_gone, gone)
        plan = account.plan_run(self.report, jobs, before)
        if plan.first_time > _PRESTART_PARSER:
            self.offload.prestart()
        queue = deque(plan.todo)
        if not queue:
            await self._close(session)
            self.sem.release()
            return
        # one folder per connection; a single big folder still gets every connection (helpers;
        # not with aioimaplib, whose EXAMINE does not select)
        self._may_help = not aioimaplib
        count = self.account.connections if self._may_help else len(queue)
        workers = [asyncio.create_task(self._worker(session, queue))]
        for _ in range(min(count, self.account.connections) - 1):
            workers.append(
                asyncio.create_task(self._worker(spares.pop() if spares else None, queue))
            )
        await asyncio.gather(*workers)

    async def _worker(
        self,
        initial: ImapSession | asyncio.Task[ImapSession] | None,
        queue: deque[flow.FolderJob],
    ) -> None:
        """Take folders from the queue, then help others, on one connection (one permit)."""
        session: ImapSession | None = None
        if isinstance(initial, asyncio.Task):
            try:
                session = await initial
            except MailError:
                session = None  # _preopen gave its permit back: take one below
            if session is None:
                await self.sem.acquire()
        elif initial is None:
            await self.sem.acquire()
        else:
            session = initial
        helped: list[FetchLanes] = []
        try:
            while True:
                if queue:
                    job = queue.popleft()
                    self._starting += 1
                    started = _Once(self._one_started)
                    try:
                        session, outcome = await self._sync_with_retries(session, job, started)
                    finally:
                        started()
                    self.report.folder_ended(job.name, outcome)
                    continue
                target = self._help_target(helped)
                if target is not None:
                    helped.append(target)
                    session = await self._help(session, target)
                elif self._starting and self._may_help:
                    await self._wait_change()  # a folder may still start its body FETCHes
                else:
                    break
        finally:
            await self._close(session)
            self.sem.release()

    # helping ---------------------------------------------------------------------------------

    def on_fetch_start(self, lanes: FetchLanes) -> None:
        self.fetching.append(lanes)
        if lanes.on_start is not None:
            lanes.on_start()

    def _one_started(self) -> None:
        self._starting -= 1
        if self._change is not None:  # wake the idle workers: something to help, or the end
            self._change.set()
            self._change = None

    async def _wait_change(self) -> None:
        if self._change is None:
            self._change = asyncio.Event()
        await self._change.wait()

    def _help_target(self, helped: list[FetchLanes]) -> FetchLanes | None:
        if not self._may_help:
            return None
        self.fetching = [f for f in self.fetching if f.queued]
        candidates = [f for f in self.fetching if f.helpable and not any(f is h for h in helped)]
        return max(candidates, key=lambda f: len(f.queued), default=None)

    async def _help(self, session: ImapSession | None, lanes: FetchLanes) -> ImapSession | None:
        """EXAMINE the folder of ``lanes`` on this connection and fetch some of its batches."""
        try:
            if session is None:  # one attempt: a helper is not worth a backoff
                session = await self._open()
            (res,) = await session.pipeline(
                [commands.examine(lanes.raw_name, literal_plus=self.opts.literal_plus)]
            )
        except MailError:
            await self._close(session)
            return None  # a helper only speeds things up: the folder goes on without it
        uidvalidity = None
        for resp in (*res.untagged, res.tagged):
            uidvalidity = flow.code_int(resp, "UIDVALIDITY") or uidvalidity
        if not res.ok or uidvalidity != lanes.uidvalidity or not lanes.queued:
            return session
        healthy = await asyncio.gather(*lanes.add_lane(session))
        if all(healthy):
            return session
        await self._close(session)
        return None

    def _size_budget(self) -> None:
        """Fit the body budget to the link's round trip as measured so far: the bytes asked for
        and not yet in are what keeps it full (:func:`mailsync.core.options.body_budget`)."""
        timed = [
            s.stats.fastest_round_trip
            for s in self.sessions
            if s.stats.fastest_round_trip is not None
        ]
        cap = self.settings.bodies_in_flight_bytes
        self.budget.limit = options.body_budget(min(timed, default=None), cap)

    # one folder --------------------------------------------------------------------------------

    async def _sync_with_retries(
        self, session: ImapSession | None, job: flow.FolderJob, started: Callable[[], None]
    ) -> tuple[ImapSession | None, FolderOutcome]:
        where = folder_where(self.account.name, job.name)
        attempt = 0
        while True:
            self._size_budget()
            lanes = FetchLanes(job.raw_name, self.opts.pipeline_depth, self.budget)
            lanes.on_start = started
            try:
                if session is None:
                    session = await self._open()
                result = await self.drive(flow.sync_folder(job, self.opts), session, lanes)
            except (MailError, StorageError) as exc:
                await lanes.settle()
                attempt += 1
                decision = retry.after_folder_failure(
                    exc, where, attempt, self.settings.backoff, random.random()
                )
                if isinstance(decision, retry.Retry):
                    self.report.failed_attempt(decision)  # the last decision: folder_ended
                if decision.keep_session:
                    return session, decision
                await self._close(session)
                session = None
                if not isinstance(decision, retry.Retry):
                    return None, decision
                await asyncio.sleep(decision.delay)
                continue
            except BaseException:
                await lanes.settle()
                raise
            lanes.release_unstored()  # a last result that stored nothing
            return session, result
