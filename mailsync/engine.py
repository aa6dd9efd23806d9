"""The asyncio driver: accounts in parallel, folders spread over K connections per account.

One global semaphore bounds every IMAP connection of the run (``max_connections``); each account
opens one connection for LIST + a pipelined STATUS of all folders, then up to ``connections``
workers take folders (largest first) from a queue and run :func:`mailsync.core.flow.sync_folder`
on their connection. A dropped connection is reopened with exponential backoff and the folder
restarts from the state, which already holds every batch written so far: nothing is fetched
twice, nothing is lost. Headers are parsed off the loop in a bounded process pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from mailsync.auth import Secret, get_oauth_token, get_password
from mailsync.core import flow
from mailsync.core.headers import HeaderInfo, parse_headers
from mailsync.core.parser import FetchResp, parse_internaldate
from mailsync.core.plan import FolderState, LocalMsg, normalize_flags
from mailsync.settings import AccountSettings, MailSettings
from mailsync.state import FolderRecord
from mailsync.store import AccountArchive, SpilledLiteral, StoredMessage
from mailsync.transports.base import ImapSession
from modes._exceptions import (
    FolderGone,
    ImapAuthError,
    ImapCommandError,
    ImapConnectError,
    ImapProtocolError,
    ImapTLSError,
    MailError,
    ModeError,
    StorageError,
)
from modes.offload import BatchOffload

__all__ = ["AccountReport", "SessionFactory", "backup_accounts", "open_account_session"]

SessionFactory = Callable[[AccountSettings, Secret, MailSettings, Path], Awaitable[ImapSession]]
_R = TypeVar("_R")
_HEADER_CAP = 256 * 1024
_STORE_BACKLOG = 1  # batches a folder may have waiting for the writer before fetching pauses


@dataclass
class AccountReport:
    """One account's outcome; the CLI prints it as a row of the summary table."""

    account: str
    folders: int = 0
    synced: int = 0
    skipped: int = 0
    new_messages: int = 0
    new_bytes: int = 0
    flag_updates: int = 0
    gone: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    commands: int = 0
    round_trips: int = 0
    wire_bytes: int = 0
    expected: int = 0  # messages the planned folders hold (for progress / ETA)
    folders_done: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


async def open_account_session(
    account: AccountSettings, secret: Secret, settings: MailSettings, spill_dir: Path
) -> ImapSession:
    """The default session factory: our own pipelining transport, or aioimaplib when asked."""
    if settings.imap_client == "aioimaplib":
        from mailsync.transports.aioimaplib_client import open_session as open_aioimaplib

        return await open_aioimaplib(account, secret, settings, spill_dir)
    from mailsync.transports.connection import open_session, spill_factory

    return await open_session(
        account,
        secret,
        op_timeout=settings.timeout,
        compress=settings.compress,
        literal_factory=spill_factory(spill_dir),
        spill_threshold=settings.spill_threshold,
    )


def _header_block(body: bytes) -> bytes:
    end = body.find(b"\r\n\r\n", 0, _HEADER_CAP)
    if end < 0:
        end = body.find(b"\n\n", 0, _HEADER_CAP)
    return body[: end + 4] if end >= 0 else body[:_HEADER_CAP]


def _mtime(internaldate: str | None) -> float | None:
    if not internaldate:
        return None
    try:
        return parse_internaldate(internaldate).timestamp()
    except (MailError, ValueError, OverflowError):
        return None


@dataclass
class _FolderCtx:
    """Work a folder sync has in flight: body FETCH commands and message writes."""

    stores: list[asyncio.Task[None]] = field(default_factory=list)
    headers: list[asyncio.Task[None]] = field(default_factory=list)
    fetches: deque[asyncio.Task[list[flow.CommandResult]]] = field(default_factory=deque)
    queued: deque[flow.Command] = field(default_factory=deque)

    def launch(self, session: ImapSession) -> None:
        # a task writes its command as soon as it starts; tasks start in creation order
        if self.queued:
            cmd = self.queued.popleft()
            self.fetches.append(asyncio.create_task(session.pipeline([cmd])))


class _LazyOffload:
    """The header-parser pool, started on first use: a no-change re-sync never pays for it."""

    def __init__(self, settings: MailSettings) -> None:
        self._settings = settings
        self._pool: BatchOffload[bytes, HeaderInfo] | None = None

    async def submit(self, head: bytes) -> HeaderInfo:
        if self._pool is None:
            s = self._settings
            self._pool = BatchOffload(
                parse_headers,
                workers=s.header_workers,
                batch_size=s.header_batch,
                max_pending=s.header_batch * 8,
            )
        return await self._pool.submit(head)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None


class _AccountRun:
    def __init__(
        self,
        account: AccountSettings,
        settings: MailSettings,
        out: Path,
        semaphore: asyncio.Semaphore,
        offload: _LazyOffload,
        factory: SessionFactory,
    ) -> None:
        self.account = account
        self.settings = settings
        self.archive = AccountArchive(out / account.name, fsync=settings.fsync)
        self.sem = semaphore
        self.offload = offload
        self.factory = factory
        self.report = AccountReport(account.name)
        self.secret: Secret | None = None
        self.sessions: list[ImapSession] = []
        self.opts = flow.SyncOptions()

    # connections ------------------------------------------------------------------------------

    async def _connect(self) -> ImapSession:
        assert self.secret is not None
        session = await self.factory(
            self.account, self.secret, self.settings, self.archive.root / ".spill"
        )
        self.sessions.append(session)
        return session

    def _tally(self) -> None:
        for s in self.sessions:
            self.report.commands += s.stats.commands
            self.report.round_trips += s.stats.round_trips
            self.report.wire_bytes += s.stats.wire_in
        self.sessions.clear()

    async def _close(self, session: ImapSession | None) -> None:
        if session is not None:
            with contextlib.suppress(Exception):
                await session.aclose()

    # the run ---------------------------------------------------------------------------------

    async def run(self) -> AccountReport:
        start = time.monotonic()
        acct = self.account
        try:
            self.secret = await asyncio.to_thread(
                get_oauth_token if acct.auth == "xoauth2" else get_password, acct
            )
            await self.archive.open()
            try:
                await self._run()
            finally:
                await self.archive.aclose()
        except (MailError, ModeError) as exc:
            msg = str(exc)
            prefix = f"account {acct.name}: "
            self.report.errors.append(msg if msg.startswith(prefix) else prefix + msg)
        except StorageError as exc:
            self.report.errors.append(f"account {acct.name}: archive: {exc}")
        finally:
            self._tally()
            self.report.seconds = time.monotonic() - start
        return self.report

    async def _run(self) -> None:
        records = await self.archive.run(self.archive.folder_records)
        before = {
            name: FolderState(name, r.uidvalidity, r.uidnext, r.highestmodseq, r.messages)
            for name, r in records.items()
        }
        session = await self._preopen()
        # a first backup will want every connection: open them while LIST/STATUS run (saves
        # the login round trips on slow links); later runs open them only for changed folders
        spares = (
            [asyncio.create_task(self._preopen()) for _ in range(self.account.connections - 1)]
            if not records
            else []
        )
        try:
            await self._discover_and_sync(session, before, spares)
        finally:
            for task in spares:
                await self._drop_spare(task)
            # bodies spilled for responses that were dropped (cut connection, failed folder)
            await self.archive.run(self.archive.store.clear_spill)

    async def _discover_and_sync(
        self,
        session: ImapSession,
        before: dict[str, FolderState],
        spares: list[asyncio.Task[ImapSession]],
    ) -> None:
        caps = session.capabilities
        self.opts = flow.SyncOptions(
            batch_messages=self.account.batch_messages,
            batch_bytes=self.account.batch_bytes,
            # aioimaplib serialises commands itself: one body FETCH at a time
            pipeline_depth=1
            if self.settings.imap_client == "aioimaplib"
            else (self.settings.pipeline_depth),
            condstore="CONDSTORE" in caps,
            literal_plus="LITERAL+" in caps,
            listing_chunk=500 if self.settings.imap_client == "aioimaplib" else None,
        )
        try:
            jobs, gone = await self._drive(
                flow.discover(caps, self.account.include, self.account.exclude, before),
                session,
                _FolderCtx(),
            )
        except BaseException:
            await self._close(session)
            self.sem.release()
            raise
        if gone:
            await self.archive.run(self._mark_folders_gone, gone)
        todo = [j for j in jobs if not flow.is_unchanged(j, before)]
        self.report.folders = len(jobs)
        self.report.skipped = len(jobs) - len(todo)
        self.report.expected = sum((j.status.messages or 0) for j in todo if j.status)
        todo.sort(key=lambda j: -(j.status.messages or 0 if j.status else 0))
        queue = deque(todo)
        if not queue:
            await self._close(session)
            self.sem.release()
            return
        workers = [asyncio.create_task(self._worker(session, queue))]
        for _ in range(min(self.account.connections, len(todo)) - 1):
            workers.append(
                asyncio.create_task(self._worker(spares.pop() if spares else None, queue))
            )
        await asyncio.gather(*workers)

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

    def _mark_folders_gone(self, names: list[str]) -> None:
        self.archive.state.mark_folders_gone(names)
        for name in names:
            self.archive.state.mark_deleted(name, None, ())

    async def _worker(
        self,
        initial: ImapSession | asyncio.Task[ImapSession] | None,
        queue: deque[flow.FolderJob],
    ) -> None:
        """Take folders from the queue until it is empty, on one connection (one permit)."""
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
        try:
            while queue:
                job = queue.popleft()
                session = await self._sync_with_retries(session, job)
                self.report.folders_done += 1
        finally:
            await self._close(session)
            self.sem.release()

    async def _sync_with_retries(
        self, session: ImapSession | None, job: flow.FolderJob
    ) -> ImapSession | None:
        where = f"{self.account.name}/{job.name}"
        attempt = 0
        while True:
            pending = _FolderCtx()
            try:
                if session is None:
                    session = await self._connect()
                result = await self._drive(flow.sync_folder(job, self.opts), session, pending)
            except ImapTLSError as exc:  # retrying cannot make a certificate trusted
                self.report.errors.append(f"{where}: {exc}")
                return None
            except FolderGone as exc:
                await self._settle(pending)
                self.report.warnings.append(f"{where}: folder gone from the server ({exc.text})")
                return session
            except (ImapConnectError, ImapProtocolError) as exc:
                await self._settle(pending)
                await self._close(session)
                session = None
                attempt += 1
                if attempt > self.settings.retries:
                    self.report.errors.append(f"{where}: {exc} (gave up after {attempt} tries)")
                    return None
                delay = min(5.0, 0.2 * 2 ** (attempt - 1)) * (0.5 + random.random())
                await asyncio.sleep(delay)
                continue
            except ImapAuthError as exc:
                self.report.errors.append(f"{where}: {exc}")
                await self._settle(pending)
                return session
            except (ImapCommandError, StorageError) as exc:
                await self._settle(pending)
                self.report.errors.append(f"{where}: {exc}")
                return session
            self.report.synced += 1
            self.report.flag_updates += result.flag_updates
            self.report.gone += result.gone
            if result.missing:
                self.report.warnings.append(
                    f"{where}: {len(result.missing)} messages vanished while fetching"
                )
            return session

    async def _settle(self, ctx: _FolderCtx) -> None:
        # drop body FETCHes still in flight (the connection is dropped or the folder failed),
        # and let writes already started finish, so the state reflects every stored batch
        for task in ctx.fetches:
            task.cancel()
        if ctx.fetches:
            await asyncio.gather(*ctx.fetches, return_exceptions=True)
        ctx.fetches.clear()
        ctx.queued.clear()
        if ctx.stores:
            await asyncio.gather(*ctx.stores, return_exceptions=True)
            ctx.stores.clear()
        if ctx.headers:
            await asyncio.gather(*ctx.headers, return_exceptions=True)
            ctx.headers.clear()

    # effects ---------------------------------------------------------------------------------

    async def _drive(
        self,
        gen: Generator[flow.Effect, object, _R],
        session: ImapSession,
        pending: _FolderCtx,
    ) -> _R:
        value: object = None
        try:
            while True:
                try:
                    effect = gen.send(value)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                value = await self._perform(effect, session, pending)
        finally:
            gen.close()

    async def _perform(self, effect: flow.Effect, session: ImapSession, ctx: _FolderCtx) -> object:
        arch = self.archive
        if isinstance(effect, flow.Send):
            return tuple(await session.pipeline(effect.commands))
        if isinstance(effect, flow.StartFetch):
            ctx.queued.extend(effect.commands)
            for _ in range(effect.window):
                ctx.launch(session)
            return None
        if isinstance(effect, flow.NextFetch):
            (res,) = await ctx.fetches.popleft()
            ctx.launch(session)  # refill the window before the flow stores this batch
            return res
        if isinstance(effect, flow.StoreBatch):
            stores = ctx.stores
            stores.append(asyncio.create_task(self._store(effect, ctx)))
            live = [t for t in stores if not t.done()]
            if len(live) > _STORE_BACKLOG:
                await asyncio.wait(live[: len(live) - _STORE_BACKLOG])
            for t in [t for t in stores if t.done()]:
                stores.remove(t)
                t.result()  # a failed write stops the folder here
            return None
        if isinstance(effect, flow.LoadFolder):
            record, rows = await arch.run(
                arch.load_folder, effect.name, effect.relpath, effect.uidvalidity
            )
            return flow.LocalFolder(
                uidvalidity=record.uidvalidity if record else None,
                generation=record.generation if record else 0,
                messages={
                    uid: LocalMsg(uid, r.size, r.flags, r.sha256, r.path, r.deleted_on_server)
                    for uid, r in rows.items()
                },
            )
        if isinstance(effect, flow.UpdateFlags):
            await arch.run(
                arch.update_flags, effect.name, effect.relpath, effect.uidvalidity, effect.changes
            )
            return None
        if isinstance(effect, flow.MarkGone):
            await arch.run(arch.state.mark_deleted, effect.name, effect.uidvalidity, effect.uids)
            return None
        if isinstance(effect, flow.NewGeneration):
            await arch.run(arch.state.mark_generation_gone, effect.name, effect.old_uidvalidity)
            return None
        if isinstance(effect, flow.SaveFolder):
            outcomes = await asyncio.gather(*ctx.stores, return_exceptions=True)
            outcomes += await asyncio.gather(*ctx.headers, return_exceptions=True)
            ctx.stores.clear()
            ctx.headers.clear()
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            st = effect.state
            rec = FolderRecord(
                st.name,
                effect.relpath,
                st.uidvalidity,
                effect.generation,
                st.uidnext,
                st.highestmodseq,
                st.messages,
            )
            await arch.run(arch.state.save_folder, rec, time.time())
            return None
        raise AssertionError(f"unknown effect {effect!r}")

    async def _store(self, effect: flow.StoreBatch, ctx: _FolderCtx) -> None:
        items: list[tuple[int, tuple[str, ...], float | None, bytes | SpilledLiteral, str | None]]
        items = []
        heads: dict[int, bytes] = {}
        for msg in effect.messages:
            body = _body(msg)
            assert msg.uid is not None
            if isinstance(body, bytes):
                heads[msg.uid] = _header_block(body)
            items.append(
                (
                    msg.uid,
                    normalize_flags(msg.flags or ()),
                    _mtime(msg.internaldate),
                    body,
                    msg.internaldate,
                )
            )
        arch = self.archive
        stored = await arch.run(
            arch.store_batch,
            effect.name,
            effect.relpath,
            effect.uidvalidity,
            effect.generation,
            items,
        )
        self.report.new_messages += len(stored)
        self.report.new_bytes += sum(s.size for s in stored)
        # headers are parsed on the side: the fetch window waits for the disk, not the parser
        # (the task gets names and header blocks only: holding `effect` would keep the bodies)
        task = self._headers(effect.name, effect.uidvalidity, stored, heads)
        ctx.headers.append(asyncio.create_task(task))

    async def _headers(
        self, folder: str, uidvalidity: int, stored: list[StoredMessage], heads: dict[int, bytes]
    ) -> None:
        arch = self.archive
        for s in stored:
            if s.uid not in heads:  # spilled: read the head back from the stored file
                heads[s.uid] = _header_block(await arch.run(_read_head, arch.root / s.path))
        infos = [
            h if isinstance(h, HeaderInfo) else HeaderInfo(None, None, None, None, None, repr(h))
            for h in await asyncio.gather(
                *(self.offload.submit(heads[s.uid]) for s in stored), return_exceptions=True
            )
        ]
        rows = [
            (
                folder,
                uidvalidity,
                s.uid,
                h.message_id,
                h.from_,
                h.to,
                h.subject,
                h.date,
                h.error,
            )
            for s, h in zip(stored, infos, strict=True)
        ]
        await arch.run(arch.state.set_headers, rows)


def _read_head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(_HEADER_CAP)


def _body(msg: FetchResp) -> bytes | SpilledLiteral:
    body = msg.body
    if isinstance(body, SpilledLiteral | bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    raise ImapProtocolError(f"UID {msg.uid}: unexpected body type {type(body).__name__}")


async def backup_accounts(
    settings: MailSettings,
    accounts: Sequence[AccountSettings],
    out: Path,
    *,
    factory: SessionFactory = open_account_session,
    on_start: Callable[[list[AccountReport]], None] | None = None,
) -> list[AccountReport]:
    """Back up ``accounts`` concurrently; one report per account, in the given order."""
    semaphore = asyncio.Semaphore(settings.max_connections)
    offload = _LazyOffload(settings)
    runs = [_AccountRun(a, settings, out, semaphore, offload, factory) for a in accounts]
    if on_start is not None:
        on_start([r.report for r in runs])
    try:
        return list(await asyncio.gather(*(r.run() for r in runs)))
    finally:
        await offload.aclose()
