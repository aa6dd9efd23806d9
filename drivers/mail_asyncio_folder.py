"""The asyncio engine's folder side: performing a folder sync's effects on a session and archive.

:class:`FetchLanes` holds one folder's body FETCHes: the commands wait in order in one queue and
are taken by *lanes* -- the folder's own connection and, once their own folders are done, other
connections of the account that EXAMINE the same folder (same UIDVALIDITY) and help. Each lane
keeps ``depth`` commands in flight; the flow reads the results in command order and at most
``depth x lanes`` results may be fetched ahead of it, and no more bytes of bodies than the
account's :class:`BodyBudget` allows over all its folders. One big folder is so
fetched over every connection of the account (mbsync keeps a folder on one connection).

Within one connection a lane takes commands in increasing order, so a body that a server credits
to an earlier pipelined command (Dovecot interleaves concurrent FETCHes) is still read by the
flow no later than its own batch: the flow's routing by UID keeps working over several lanes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Generator
from typing import TypeVar

from foundation.offload import BatchOffload
from mailsync import effects
from mailsync.core import flow
from mailsync.core.mime import IndexDoc
from mailsync.report import AccountReport
from mailsync.settings import MailSettings
from mailsync.store import AccountArchive, StoredMessage
from mailsync.stored_parse import parse_doc
from mailsync.transports.base import ImapSession
from mailsync.transports.factory import SessionFactory

__all__ = [
    "AccountReport",
    "BodyBudget",
    "FetchLanes",
    "FolderEffects",
    "IndexOffload",
    "SessionFactory",
]

_R = TypeVar("_R")
_STORE_BACKLOG = 1  # batches a folder may have waiting for the writer before fetching pauses
# stored batches a folder may have waiting for the index's parser before its writes (and so its
# fetches) pause: unbounded, a parser slower than the disk (one process on a loaded machine) let
# the waiting batches grow RSS from 119 to 182 MB over 200,000 messages
_INDEX_BACKLOG = 4


async def _bounded(tasks: list[asyncio.Task[None]], running: int) -> None:
    """Drop the finished ``tasks`` (raising the first failure) and wait while more than
    ``running`` of them are still running: the bound on a folder's writes, and on its batches
    waiting for the parser."""
    while True:
        for done in [t for t in tasks if t.done()]:
            tasks.remove(done)
            done.result()
        if len(tasks) <= running:
            return
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)


class IndexOffload:
    """The search index's MIME walk of each stored message (:func:`parse_doc`; the state's
    header fields are read by the store as it writes): on the event loop for the first messages
    of a run, then in the process pool. A small re-sync (+100 new) never pays the pool's start
    (~0.5 s and ~36 MB); a big backup gets the other cores for the parser (~0.1 ms of CPU per
    message). A backup that does not index (``index = false``) starts nothing."""

    def __init__(self, settings: MailSettings, inline_first: int = 256) -> None:
        self._settings = settings
        self.enabled = settings.index
        self._pool: BatchOffload[str, IndexDoc] | None = None
        self._inline_left = inline_first if settings.header_workers > 0 else 0

    def prestart(self) -> None:
        """Start the pool now: a big backup is coming (its start then overlaps the folder
        listings instead of stalling every connection when the 257th message arrives)."""
        if self._pool is None and self.enabled and self._settings.header_workers > 0:
            self._inline_left = 0
            self._start()

    def _start(self) -> BatchOffload[str, IndexDoc]:
        if self._pool is None:
            s = self._settings
            self._pool = BatchOffload(
                parse_doc,
                workers=s.header_workers,
                batch_size=s.header_batch,
                max_pending=s.header_batch * 8,
            )
        return self._pool

    async def submit(self, path: str) -> IndexDoc:
        """The index document of the stored message file at ``path``."""
        if self._inline_left > 0:
            self._inline_left -= 1
            return parse_doc(path)
        return await self._start().submit(path)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None


_Slot = tuple[flow.Command, int, "asyncio.Future[flow.CommandResult]"]


class BodyBudget:
    """The bytes of message bodies one account may have asked for and not yet written to their
    files, over all its folders and connections. Without it that was up to depth x lanes
    batches a folder (4 x 4 x 2 MB) on top of the writes: the main process's largest use of
    memory in a big backup (tracemalloc: 43 MB of literals 5 s into a 1 GB backup). Until
    2026-12-07 a batch's bytes were given back when the flow read its answer, so batches parsed
    and waiting for the writer (two a folder) were held beyond it. Bodies waiting here stay in
    the server and the kernel's socket buffers instead. A batch always fits when nothing is
    held, so one larger than the budget still goes (alone)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: no bound
        self.held = 0
        self._waiting: list[FetchLanes] = []

    def fits(self, size: int) -> bool:
        return not self.limit or not self.held or self.held + size <= self.limit

    def take(self, size: int) -> None:
        self.held += size

    def give(self, size: int) -> None:
        self.held -= size
        waiting, self._waiting = self._waiting, []
        for lanes in waiting:
            lanes.notify()

    def wait(self, lanes: FetchLanes) -> None:
        """Wake ``lanes``'s slots when bytes are given back."""
        if lanes not in self._waiting:
            self._waiting.append(lanes)


class FetchLanes:
    """One folder sync's work in flight: body FETCHes (over lanes) and message writes."""

    def __init__(
        self, raw_name: bytes = b"", depth: int = 2, budget: BodyBudget | None = None
    ) -> None:
        self.raw_name = raw_name
        self.depth = max(1, depth)
        self.budget = budget or BodyBudget(0)
        self.uidvalidity: int | None = None
        self.on_start: Callable[[], None] | None = None  # the driver's hook at StartFetch
        self.queued: deque[_Slot] = deque()
        self.results: deque[tuple[int, asyncio.Future[flow.CommandResult]]] = deque()
        self.lanes = 0
        self.slots: list[asyncio.Task[bool]] = []  # the folder's own lane
        self.stores: list[asyncio.Task[None]] = []
        self.indexing: list[asyncio.Task[None]] = []
        self._taken = 0
        self._consumed = 0
        self._unstored = 0  # bytes of results the flow has read and no write has taken yet
        self._changed: asyncio.Event | None = None

    @property
    def helpable(self) -> bool:
        """Enough work left that another connection's EXAMINE round trip pays off."""
        return self.uidvalidity is not None and len(self.queued) >= 2 * self.depth

    def start(self, effect: flow.StartFetch, session: ImapSession) -> None:
        loop = asyncio.get_running_loop()
        self.depth = max(1, effect.window)
        self.uidvalidity = effect.uidvalidity
        # a folder's listing chunks, then its bodies: each run starts on the folder's own lane
        # alone (the listing's slots have ended: its queue was drained)
        self.lanes = 0
        sizes = effect.sizes or (0,) * len(effect.commands)
        for cmd, size in zip(effect.commands, sizes, strict=True):
            fut: asyncio.Future[flow.CommandResult] = loop.create_future()
            self.queued.append((cmd, size, fut))
            self.results.append((size, fut))
        self.slots = self.add_lane(session)

    def add_lane(self, session: ImapSession) -> list[asyncio.Task[bool]]:
        """Start ``depth`` slots taking commands for ``session``; each task returns False when
        the connection failed (the failed command's result carries the error)."""
        self.lanes += 1
        self.notify()
        # tasks start in creation order, and a slot writes its command before its first await
        return [asyncio.create_task(self._slot(session)) for _ in range(self.depth)]

    async def next(self) -> flow.CommandResult:
        # the flow asks for the next result only after it yielded the last one's StoreBatch, if
        # it had one: bytes not handed to a write by now are a result that stored nothing (its
        # bodies missing, or credited to a later batch's write)
        self.release_unstored()
        size, fut = self.results.popleft()
        try:
            res = await fut
        except BaseException:
            self.budget.give(size)
            raise
        finally:
            self._consumed += 1
            self.notify()
        # its bodies stay counted until their write is done (see hand_to_store)
        self._unstored += size
        return res

    def hand_to_store(self) -> int:
        """The bytes of the results read since the last write: the write about to start gives
        them back when it is done. Counting bodies until they are in their files, not only until
        the flow has them, bounds all of an account's bodies in memory by the budget: batches
        parsed and waiting for the writer were up to two a folder beyond it (~16 MB, the largest
        part of a 1 GB backup's peak above its imports; docs/benchmarks/mail.md)."""
        size, self._unstored = self._unstored, 0
        return size

    def release_unstored(self) -> None:
        """Give back the bytes of results that no write took (at the folder's end too)."""
        if self._unstored:
            self.budget.give(self.hand_to_store())

    def _room(self) -> bool:
        if not self.queued:
            return True
        if self._taken - self._consumed >= self.depth * self.lanes:
            return False
        if self.budget.fits(self.queued[0][1]):
            return True
        self.budget.wait(self)
        return False

    def notify(self) -> None:
        # wake every slot waiting for room; later waiters wait on a fresh event
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _slot(self, session: ImapSession) -> bool:
        while True:
            while not self._room():
                if self._changed is None:
                    self._changed = asyncio.Event()
                await self._changed.wait()
            if not self.queued:
                return True
            cmd, size, fut = self.queued.popleft()
            self._taken += 1
            self.budget.take(size)
            try:
                (res,) = await session.pipeline([cmd])
            except asyncio.CancelledError:
                fut.cancel()
                raise
            except Exception as exc:
                if not fut.done():
                    fut.set_exception(exc)
                    fut.exception()  # seen: a folder that failed first may never read it
                return False
            if not fut.done():
                fut.set_result(res)

    async def settle(self) -> None:
        """Drop the FETCHes not read yet, let the writes already started finish."""
        self.release_unstored()
        for _, _, fut in self.queued:
            fut.cancel()
        self.queued.clear()
        for size, fut in self.results:
            fut.cancel()
            if self._consumed < self._taken:  # taken from the budget, never read by the flow
                self._consumed += 1
                self.budget.give(size)
        self.results.clear()
        self.notify()  # helpers' slots waiting for room see the empty queue and leave
        for task in self.slots:
            task.cancel()
        if self.slots:
            await asyncio.gather(*self.slots, return_exceptions=True)
        self.slots.clear()
        if self.stores:
            await asyncio.gather(*self.stores, return_exceptions=True)
            self.stores.clear()
        if self.indexing:
            await asyncio.gather(*self.indexing, return_exceptions=True)
            self.indexing.clear()

    async def writes_done(self) -> None:
        """Wait for every batch write and index write of the folder; raise the first failure."""
        outcomes = await asyncio.gather(*self.stores, return_exceptions=True)
        outcomes += await asyncio.gather(*self.indexing, return_exceptions=True)
        self.stores.clear()
        self.indexing.clear()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome


class FolderEffects:
    """Performs the effects of :mod:`mailsync.core.flow` generators for one account."""

    archive: AccountArchive
    report: AccountReport
    offload: IndexOffload

    def on_fetch_start(self, lanes: FetchLanes) -> None:
        """Called when a folder starts its body FETCHes (the account lets others help)."""

    async def drive(
        self,
        gen: Generator[flow.Effect, object, _R],
        session: ImapSession,
        lanes: FetchLanes,
    ) -> _R:
        value: object = None
        try:
            while True:
                try:
                    effect = gen.send(value)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                value = None  # a FETCH's answer (bodies) must not outlive its use by the flow
                value = await self._perform(effect, session, lanes)
        finally:
            gen.close()

    async def _perform(
        self, effect: flow.Effect, session: ImapSession, lanes: FetchLanes
    ) -> object:
        arch = self.archive
        if isinstance(effect, flow.Send):
            return tuple(await session.pipeline(effect.commands))
        if isinstance(effect, flow.StartFetch):
            lanes.start(effect, session)
            if effect.uidvalidity is not None:  # body FETCHes: other connections may help
                self.on_fetch_start(lanes)
            return None
        if isinstance(effect, flow.NextFetch):
            return await lanes.next()
        if isinstance(effect, flow.StoreBatch):
            held = lanes.hand_to_store()
            lanes.stores.append(asyncio.create_task(self._store(effect, lanes, held)))
            await _bounded(lanes.stores, _STORE_BACKLOG)  # a failed write stops the folder here
            return None
        if isinstance(effect, effects.ARCHIVE_EFFECTS):
            if isinstance(effect, flow.SaveFolder):
                await lanes.writes_done()  # the folder's STATUS is recorded after its batches
            fn, args = effects.archive_call(arch, effect)
            return effects.archive_answer(effect, await arch.run(fn, *args))
        raise AssertionError(f"unknown effect {effect!r}")

    async def _store(self, effect: flow.StoreBatch, lanes: FetchLanes, held: int) -> None:
        items = effects.store_items(effect.messages)
        dates = effects.item_dates(items)
        arch = self.archive
        # the next batch's files are written while this one's are synced (astore_batch); it
        # empties `items` and lets their bodies go once their files are in tmp/ (a body that
        # came as a bytearray was copied into them)
        try:
            stored = await arch.astore_batch(effect, items)
        finally:
            lanes.budget.give(held)  # wakes the lanes that wait for the budget
        self.report.stored(stored)
        if not self.offload.enabled:
            return
        # messages are parsed for the index on the side, up to _INDEX_BACKLOG batches behind
        # the writes (the task gets names and paths only: holding `effect` would keep the
        # bodies); finished ones are dropped as it goes: a folder of 200,000 messages would
        # otherwise keep 1,000 done tasks until its end
        await _bounded(lanes.indexing, _INDEX_BACKLOG - 1)
        task = self._index(effect.name, effect.uidvalidity, stored, dates)
        lanes.indexing.append(asyncio.create_task(task))

    async def _index(
        self,
        folder: str,
        uidvalidity: int,
        stored: list[StoredMessage],
        dates: dict[int, float | None],
    ) -> None:
        arch = self.archive
        outcomes = await asyncio.gather(
            *(self.offload.submit(p) for p in effects.stored_paths(arch.root, stored)),
            return_exceptions=True,
        )
        docs = [effects.doc_or_failed(o) for o in outcomes]
        await arch.aadd_to_index(effects.index_entries(folder, uidvalidity, stored, docs, dates))
