"""The blocking mailsync driver behind the threads, gevent and sequential modes.

It drives the same generators as the asyncio engine (:func:`mailsync.core.flow.discover` and
:func:`~mailsync.core.flow.sync_folder`) over the blocking imaplib transport
(:mod:`mailsync.transports.imaplib_client`) and writes through the same
:class:`~mailsync.store.AccountArchive` operations, so every mode leaves the same Maildirs and
state rows and any mode resumes what another left. Accounts run side by side and each spreads its
folders over ``connections`` workers (threads; greenlets when gevent has patched ``threading``;
one after another in the sequential mode), every connection counted against one global
``max_connections`` semaphore. Archive operations of an account are serialized by one lock: one
writer at a time, "files durable, then rows committed" per batch, as in the engine.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Literal, TypeVar

from foundation.errors import ImapProtocolError, MailError, StorageError
from mailsync import account, effects
from mailsync.auth import Secret, get_secret
from mailsync.core import flow, retry
from mailsync.core.schedule import folder_where
from mailsync.report import AccountReport, FolderOutcome
from mailsync.settings import AccountSettings, MailSettings
from mailsync.store import AccountArchive
from mailsync.stored_parse import parse_doc
from mailsync.transports.imaplib_client import ImaplibSession, open_blocking_session

__all__ = ["HANDLED_EFFECTS", "AccountRun", "BlockingKind", "backup_blocking"]

BlockingKind = Literal["threads", "gevent", "sequential"]
_R = TypeVar("_R")
# every effect of mailsync.core.flow this driver performs (a unit test compares it with the flow)
HANDLED_EFFECTS = (
    flow.Send,
    flow.StartFetch,
    flow.NextFetch,
    flow.LoadFolder,
    flow.DiffChunk,
    flow.StoreBatch,
    flow.UpdateFlags,
    flow.NewGeneration,
    flow.SaveFolder,
)


class _Window:
    """The sliding window of body FETCHes (:class:`flow.StartFetch` / :class:`flow.NextFetch`)."""

    def __init__(self) -> None:
        self.queued: deque[flow.Command] = deque()
        self.inflight: deque[str] = deque()

    def launch(self, session: ImaplibSession) -> None:
        if self.queued:
            command = self.queued.popleft()
            if not isinstance(command, bytes):
                raise ImapProtocolError("a body FETCH with literal parts cannot be windowed")
            self.inflight.append(session.send(command))


class AccountRun:
    def __init__(
        self,
        account: AccountSettings,
        settings: MailSettings,
        out: Path,
        semaphore: threading.BoundedSemaphore,
        kind: BlockingKind,
    ) -> None:
        self.account = account
        self.settings = settings
        self.kind = kind
        self.archive = AccountArchive(
            out / account.name, fsync=settings.fsync, method=settings.fsync_method
        )
        self.sem = semaphore
        self.report = AccountReport(account.name)
        self.secret: Secret | None = None
        self.opts = flow.SyncOptions()
        self._lock = threading.Lock()  # one archive writer at a time
        self._report_lock = threading.Lock()
        self._sessions: list[ImaplibSession] = []

    def _archive(self, fn: Callable[..., _R], *args: object) -> _R:
        with self._lock:
            return fn(*args)

    def _open(self) -> ImaplibSession:
        """One attempt at a new session (the caller decides about retries)."""
        assert self.secret is not None
        session = open_blocking_session(
            self.account,
            self.secret,
            timeout=self.settings.timeout,
            spill_dir=self.archive.root / ".spill",
            spill_threshold=self.settings.spill_threshold,
        )
        with self._report_lock:
            self._sessions.append(session)
        return session

    def _connect(self) -> ImaplibSession:
        """A new session, retried as :func:`mailsync.core.retry.after_connect_failure` says."""
        attempt = 0
        while True:
            try:
                return self._open()
            except MailError as exc:
                attempt += 1
                decision = retry.after_connect_failure(
                    exc, attempt, self.settings.backoff, random.random()
                )
                if isinstance(decision, retry.FailAccount):
                    raise retry.AccountFailed(decision.message) from None
                with self._report_lock:
                    self.report.retries += 1
                time.sleep(decision.delay)

    def _close(self, session: ImaplibSession | None) -> None:
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()

    def run(self) -> AccountReport:
        start = time.monotonic()
        try:
            self.secret = get_secret(self.account)
            # the archive's own writer thread is for the asyncio engine; here the lock above
            # serializes the same operations
            self.archive.open_blocking()
            try:
                self._run()
            finally:
                with contextlib.suppress(Exception):
                    self.archive.close_blocking()
        except (MailError, StorageError) as exc:
            self.report.account_failed(exc)
        finally:
            self.report.count_transport(s.stats for s in self._sessions)
            self.report.seconds = time.monotonic() - start
        return self.report

    def _run(self) -> None:
        before = self._archive(self.archive.folder_states)
        self.sem.acquire()
        try:
            session = self._connect()
        except BaseException:
            self.sem.release()
            raise
        caps = session.capabilities
        self.opts = account.sync_options(self.account, self.settings, caps)
        try:
            jobs, gone = self._drive(account.discover(self.account, caps, before), session)
        except BaseException:
            self._close(session)
            self.sem.release()
            raise
        if gone:
            self._archive(self.archive.mark_folders_gone, gone)
        plan = account.plan_run(self.report, jobs, before)
        self._distribute(session, list(plan.todo))

    def _distribute(self, session: ImaplibSession, todo: list[flow.FolderJob]) -> None:
        """Sync ``todo`` on ``session`` plus up to ``connections - 1`` more workers (it owns
        ``session`` and one semaphore slot from here on)."""
        queue = deque(todo)
        if not queue or self.kind == "sequential":
            self._worker(session, queue, held=True)
            return
        crashes: list[BaseException] = []

        def extra_worker() -> None:
            try:
                self._worker(None, queue, held=False)
            except BaseException as exc:  # a bug: re-raised below, once every worker stopped
                crashes.append(exc)
                queue.clear()

        extra = [
            threading.Thread(target=extra_worker, name=f"mail-{self.account.name}")
            for _ in range(min(self.account.connections, len(todo)) - 1)
        ]
        for thread in extra:
            thread.start()
        try:
            self._worker(session, queue, held=True)
        except BaseException:
            queue.clear()
            raise
        finally:
            # the archive closes after this returns: no worker may still be writing to it
            for thread in extra:
                thread.join()
        if crashes:
            raise crashes[0]

    def _worker(
        self, session: ImaplibSession | None, queue: deque[flow.FolderJob], *, held: bool
    ) -> None:
        if not held:
            self.sem.acquire()
        try:
            while True:
                try:
                    job = queue.popleft()  # deque.popleft is atomic: no lock needed
                except IndexError:
                    return
                session, outcome = self._sync_with_retries(session, job)
                with self._report_lock:
                    self.report.folder_ended(job.name, outcome)
        finally:
            self._close(session)
            self.sem.release()

    def _sync_with_retries(
        self, session: ImaplibSession | None, job: flow.FolderJob
    ) -> tuple[ImaplibSession | None, FolderOutcome]:
        where = folder_where(self.account.name, job.name)
        attempt = 0
        while True:
            try:
                if session is None:
                    session = self._open()
                result = self._drive(flow.sync_folder(job, self.opts), session)
            except (MailError, StorageError) as exc:
                attempt += 1
                decision = retry.after_folder_failure(
                    exc, where, attempt, self.settings.backoff, random.random()
                )
                if isinstance(decision, retry.Retry):
                    with self._report_lock:  # the last decision: folder_ended
                        self.report.failed_attempt(decision)
                if decision.keep_session:
                    return session, decision
                self._close(session)
                session = None
                if not isinstance(decision, retry.Retry):
                    return None, decision
                time.sleep(decision.delay)
                continue
            return session, result

    # effects ---------------------------------------------------------------------------------
    def _drive(self, gen: Generator[flow.Effect, object, _R], session: ImaplibSession) -> _R:
        value: object = None
        window = _Window()
        try:
            while True:
                try:
                    effect = gen.send(value)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                value = self._perform(effect, session, window)
        finally:
            gen.close()
            # a folder that stopped early (NO on a FETCH) leaves commands in flight: read their
            # answers now, or they would be credited to the next folder's commands
            for tag in window.inflight:
                with contextlib.suppress(MailError):
                    session.wait(tag)

    def _perform(self, effect: flow.Effect, session: ImaplibSession, window: _Window) -> object:
        if isinstance(effect, flow.Send):
            return tuple(session.pipeline(effect.commands))
        if isinstance(effect, flow.StartFetch):
            window.queued.extend(effect.commands)
            for _ in range(effect.window):
                window.launch(session)
            return None
        if isinstance(effect, flow.NextFetch):
            result = session.wait(window.inflight.popleft())
            window.launch(session)  # refill the window before the flow stores this batch
            return result
        return self.perform_archive(effect)

    def perform_archive(self, effect: flow.Effect) -> object:
        """Perform an effect on the account's archive (every effect but the IMAP ones)."""
        arch = self.archive
        if isinstance(effect, flow.StoreBatch):
            items = effects.store_items(effect.messages)
            stored = self._archive(effects.store_batch, arch, effect, items)
            with self._report_lock:
                self.report.stored(stored)
            if not self.settings.index:
                return None  # the header fields were recorded with the rows
            # the MIME walk for the search index inline: in the threads mode on the worker,
            # under the GIL (a mode's real cost)
            docs = [parse_doc(p) for p in effects.stored_paths(arch.root, stored)]
            # the index has its own lock: another worker's batch can be stored meanwhile
            arch.add_to_index(
                effects.index_entries(
                    effect.name, effect.uidvalidity, stored, docs, effects.item_dates(items)
                )
            )
            return None
        if isinstance(effect, effects.ARCHIVE_EFFECTS):
            # a SaveFolder: every batch of its folder was stored synchronously before it came
            fn, args = effects.archive_call(arch, effect)
            return effects.archive_answer(effect, self._archive(fn, *args))
        raise AssertionError(f"unknown effect {effect!r}")


def backup_blocking(
    settings: MailSettings,
    accounts: Sequence[AccountSettings],
    out: Path,
    *,
    kind: BlockingKind,
    on_start: Callable[[list[AccountReport]], None] | None = None,
) -> list[AccountReport]:
    """Back up ``accounts`` with blocking connections; one report per account, in order."""
    semaphore = threading.BoundedSemaphore(settings.max_connections)
    runs = [AccountRun(a, settings, out, semaphore, kind) for a in accounts]
    if on_start is not None:
        on_start([r.report for r in runs])
    if kind == "sequential" or len(runs) == 1:
        return [r.run() for r in runs]
    reports: list[AccountReport | None] = [None] * len(runs)

    def one(i: int) -> None:
        reports[i] = runs[i].run()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(runs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r if r is not None else runs[i].report for i, r in enumerate(reports)]
