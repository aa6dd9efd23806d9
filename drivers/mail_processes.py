"""``mailsync backup --mode processes``: folders spread over worker processes, one archive writer.

This process discovers the account's folders (LIST + one pipelined STATUS) like the blocking
driver, then starts up to ``connections`` worker processes. Each worker runs an asyncio loop with
the native pipelining transport and takes folders from a shared queue; it drives
:func:`mailsync.core.flow.sync_folder` itself (IMAP work, the response parsing that costs CPU,
the sliding window of body FETCHes) and sends every archive effect (load, store, flags, save)
back here, where one thread performs them in order on the account's archive: the only writer.
Message bodies cross the process boundary once (spilled ones as a file path). Workers ignore
SIGINT; their results and their transport counters come back as messages, each worker on its own
pipe (:mod:`foundation.worker_pipe`).

A worker that dies (SIGKILL, the OOM killer, a crash) is seen at once (its pipe ends): the
account's backup stops there with one error naming the account, the worker, its PID and its
signal or exit status; the other workers are stopped at once. Every archive effect is done here
in order, so the archive is consistent, and the next backup (any mode) resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import multiprocessing
import os
import random
import threading
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, TypeVar

from drivers.mail_blocking import AccountRun
from foundation.errors import MailError, StorageError, WorkerDiedError
from foundation.lifeline import run_watched
from foundation.pool_worker import ignore_sigint, sigint_held
from foundation.worker_pipe import PipeSender, death_note
from mailsync.auth import Secret
from mailsync.core import flow, retry
from mailsync.core.schedule import folder_where
from mailsync.report import AccountReport, FolderOutcome
from mailsync.settings import AccountSettings, MailSettings
from mailsync.transports.base import ImapSession, TransportStats
from mailsync.transports.imaplib_client import ImaplibSession

__all__ = ["ProcessAccountRun", "backup_processes", "folder_worker"]

_R = TypeVar("_R")


# -- the messages between the workers and the writer (picklable, typed) ----------
@dataclass(frozen=True)
class ArchiveRequest:
    """Worker to writer: perform ``effect`` on the archive; the answer carries ``rid``."""

    worker: int
    rid: int
    effect: flow.Effect


@dataclass(frozen=True)
class ArchiveReply:
    """Writer to worker: the effect's value, or (``ok`` False) the storage error's text."""

    rid: int
    ok: bool
    value: object


@dataclass(frozen=True)
class FolderDone:
    """Worker to writer: a folder ended, with its result or the decision of its last failure."""

    worker: int
    folder: str
    outcome: FolderOutcome


@dataclass(frozen=True)
class WorkerExit:
    """Worker to writer: the worker's last message, with the transport counters of each of its
    connections and its folder attempts tried again."""

    worker: int
    stats: tuple[TransportStats, ...]
    retries: int


WorkerMessage = ArchiveRequest | FolderDone | WorkerExit


# -- the worker process ----------
def folder_worker(
    index: int,
    settings: MailSettings,
    account: AccountSettings,
    secret: Secret,
    opts: flow.SyncOptions,
    spill_dir: Path,
    jobs: Any,
    requests: Connection,
    replies: Any,
) -> None:
    """Top-level (picklable) body of a worker process; ``requests`` is its own pipe."""
    from foundation.runtime import run

    ignore_sigint()  # (started with it blocked: see the start of the workers)
    sender = PipeSender(requests, "archive-requests")
    try:
        worker = _Worker(index, settings, account, secret, opts, spill_dir, sender, replies)
        run(worker.main(jobs), settings.loop)
    finally:
        sender.close()


class _Worker:
    def __init__(
        self,
        index: int,
        settings: MailSettings,
        account: AccountSettings,
        secret: Secret,
        opts: flow.SyncOptions,
        spill_dir: Path,
        requests: PipeSender,
        replies: Any,
    ) -> None:
        self.index = index
        self.settings = settings
        self.account = account
        self.secret = secret
        self.opts = opts
        self.spill_dir = spill_dir
        self.requests = requests
        self.replies = replies
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[object]] = {}
        self.stats: list[TransportStats] = []  # of the connections closed
        self.retries = 0

    async def main(self, jobs: Any) -> None:
        loop = asyncio.get_running_loop()

        def reader() -> None:  # replies from the writer, onto the loop
            while (msg := self.replies.get()) is not None:
                loop.call_soon_threadsafe(self._resolve, msg)

        threading.Thread(target=reader, name="archive-replies", daemon=True).start()
        session: ImapSession | None = None
        try:
            while (job := await asyncio.to_thread(jobs.get)) is not None:
                session, outcome = await self._sync_with_retries(session, job)
                self.requests.put(FolderDone(self.index, job.name, outcome))
        finally:
            if session is not None:
                await self._close(session)
            self.requests.put(WorkerExit(self.index, tuple(self.stats), self.retries))

    def _resolve(self, reply: ArchiveReply) -> None:
        fut = self._waiting.pop(reply.rid)
        if reply.ok:
            fut.set_result(reply.value)
        else:
            fut.set_exception(StorageError(str(reply.value)))

    async def _remote(self, effect: flow.Effect) -> object:
        rid = next(self._ids)
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        self.requests.put(ArchiveRequest(self.index, rid, effect))
        return await fut

    async def _connect(self) -> ImapSession:
        from drivers.mail_asyncio import open_account_session

        return await open_account_session(self.account, self.secret, self.settings, self.spill_dir)

    async def _close(self, session: ImapSession) -> None:
        self.stats.append(dataclasses.replace(session.stats))  # as it was before the LOGOUT
        with contextlib.suppress(Exception):
            await session.aclose()

    async def _sync_with_retries(
        self, session: ImapSession | None, job: flow.FolderJob
    ) -> tuple[ImapSession | None, FolderOutcome]:
        where = folder_where(self.account.name, job.name)
        attempt = 0
        while True:
            try:
                if session is None:
                    session = await self._connect()
                result = await self._drive(flow.sync_folder(job, self.opts), session)
            except (MailError, StorageError) as exc:
                attempt += 1
                decision = retry.after_folder_failure(
                    exc, where, attempt, self.settings.backoff, random.random()
                )
                if decision.keep_session:  # the writer counts a failure in the report
                    return session, decision
                if session is not None:
                    await self._close(session)
                session = None
                if not isinstance(decision, retry.Retry):
                    return None, decision
                self.retries += 1
                await asyncio.sleep(decision.delay)
                continue
            return session, result

    async def _drive(self, gen: Generator[flow.Effect, object, _R], session: ImapSession) -> _R:
        value: object = None
        fetches: deque[asyncio.Task[list[flow.CommandResult]]] = deque()
        queued: deque[flow.Command] = deque()

        def launch() -> None:
            if queued:
                fetches.append(asyncio.create_task(session.pipeline([queued.popleft()])))

        try:
            while True:
                try:
                    effect = gen.send(value)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                if isinstance(effect, flow.Send):
                    value = tuple(await session.pipeline(effect.commands))
                elif isinstance(effect, flow.StartFetch):
                    queued.extend(effect.commands)
                    for _ in range(effect.window):
                        launch()
                    value = None
                elif isinstance(effect, flow.NextFetch):
                    (value,) = await fetches.popleft()
                    launch()  # refill the window before the batch is stored
                else:
                    value = await self._remote(effect)
        finally:
            gen.close()
            for task in fetches:  # a folder that stopped early: its FETCHes still complete
                with contextlib.suppress(Exception):
                    await task


# -- the coordinator (the one writer) ----------
class ProcessAccountRun(AccountRun):
    def _distribute(self, session: ImaplibSession, todo: list[flow.FolderJob]) -> None:
        # the discovery connection is not shared with a worker process: close it
        self._close(session)
        if not todo:
            self.sem.release()
            return
        workers = min(self.account.connections, len(todo))
        held = 1  # the slot the discovery connection had
        for _ in range(workers - 1):
            self.sem.acquire()
            held += 1
        try:
            self._serve(todo, workers)
        finally:
            for _ in range(held):
                self.sem.release()

    def _serve(self, todo: list[flow.FolderJob], workers: int) -> None:
        assert self.secret is not None
        ctx = multiprocessing.get_context("forkserver")  # never fork a process with threads
        jobs = ctx.Queue()
        backs = [ctx.Pipe(duplex=False) for _ in range(workers)]
        replies = [ctx.Queue() for _ in range(workers)]
        for job in todo:
            jobs.put(job)
        for _ in range(workers):
            jobs.put(None)
        procs = [
            ctx.Process(
                # the fork server's child: it must watch this process to end with it
                target=run_watched,
                args=(
                    os.getpid(),
                    folder_worker,
                    k,
                    self.settings,
                    self.account,
                    self.secret,
                    self.opts,
                    self.archive.root / ".spill",
                    jobs,
                    backs[k][1],
                    replies[k],
                ),
                name=f"mail-worker-{self.account.name}-{k}",
                daemon=True,
            )
            for k in range(workers)
        ]
        finished = False
        try:
            with sigint_held():  # a Ctrl-C during a worker's start-up must not kill it
                for proc in procs:
                    proc.start()
            for _, theirs in backs:  # the workers hold their own copies now
                theirs.close()
            self._loop(procs, [mine for mine, _ in backs], replies)
            finished = True
        except WorkerDiedError as exc:
            left = len(todo) - self.report.folders_done
            with self._report_lock:
                self.report.errors.append(
                    f"account {self.account.name}: {exc}; {left} folder(s) not finished; the "
                    "archive is consistent: run the backup again to resume"
                )
        finally:
            for k, proc in enumerate(procs):
                with contextlib.suppress(OSError, ValueError):
                    replies[k].put(None)
                if proc.pid is None:
                    continue
                # a worker died, or Ctrl-C / SIGTERM / an error stopped this loop: nothing more
                # of theirs can be archived (the archive is consistent as it is): stop them now
                # (they waited for replies that would never come: ~10 s each)
                if not finished:
                    proc.terminate()
                proc.join(10 if finished else 2)
                if proc.is_alive():
                    proc.kill()
                    proc.join(5)
            for mine, theirs in backs:
                mine.close()
                theirs.close()
            for q in (jobs, *replies):
                q.cancel_join_thread()
                q.close()

    def _loop(
        self, procs: Sequence[Any], conns: Sequence[Connection], replies: Sequence[Any]
    ) -> None:
        live = dict(enumerate(conns))
        while live:
            # a worker that dies ends its pipe: end-of-file makes it ready at once
            for conn in wait(list(live.values()), timeout=1.0):
                assert isinstance(conn, Connection)
                k = conns.index(conn)
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    raise WorkerDiedError(death_note(f"mail worker {k}", procs[k])) from None
                if isinstance(msg, WorkerExit):
                    del live[k]
                self._handle(msg, replies)

    def _handle(self, msg: WorkerMessage, replies: Sequence[Any]) -> None:
        if isinstance(msg, ArchiveRequest):
            try:
                value = self.perform_archive(msg.effect)
            except (StorageError, MailError, OSError) as exc:
                replies[msg.worker].put(
                    ArchiveReply(msg.rid, False, f"{type(exc).__name__}: {exc}")
                )
            else:
                replies[msg.worker].put(ArchiveReply(msg.rid, True, value))
        elif isinstance(msg, FolderDone):
            with self._report_lock:
                self.report.folder_ended(msg.folder, msg.outcome)
        else:
            self.report.count_transport(msg.stats)
            self.report.retries += msg.retries


def backup_processes(
    settings: MailSettings,
    accounts: Sequence[AccountSettings],
    out: Path,
    *,
    on_start: Callable[[list[AccountReport]], None] | None = None,
) -> list[AccountReport]:
    """Back up ``accounts`` one after another, each spread over worker processes."""
    semaphore = threading.BoundedSemaphore(settings.max_connections)
    runs = [ProcessAccountRun(a, settings, out, semaphore, "threads") for a in accounts]
    if on_start is not None:  # the live reports: the progress display reads them
        on_start([r.report for r in runs])
    return [r.run() for r in runs]
