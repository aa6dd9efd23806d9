"""Maildir writing: one Maildir per folder, each message exactly as the server sent BODY[].

A message goes to ``tmp/`` first, gets INTERNALDATE as mtime, is synced with the rest of its
batch, then is renamed into ``new/`` or ``cur/`` (atomic on POSIX), and the renames are synced
before the state DB records the batch (``fsync_method``: one ``syncfs`` of the file system a step,
or one ``fdatasync`` per file and one ``fsync`` per directory; :mod:`foundation.durable`).
File names come from :func:`mailsync.core.maildir.message_filename`:
``<uidvalidity>.<uid>.mailsync,S=<size>:2,<flags>`` -- not time based, so a rerun after a crash maps
the same message to the same name and :meth:`MaildirStore.reconcile` can tell leftovers apart.

Bodies above the spill threshold never sit in memory: the transport streams them into a
:class:`SpillSink` file under ``<account>/.spill/``, which is then renamed into place.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from foundation.durable import SyncMethod, fdatasync_path, fsync_dir, syncfs, syncfs_usable
from foundation.errors import StorageError
from foundation.heap import HeapTrimmer
from mailsync.core.flow import StoreBatch
from mailsync.core.headers import MAX_HEADER_BYTES, HeaderInfo, parse_headers
from mailsync.core.maildir import message_filename, subdir_for
from mailsync.core.plan import FolderState
from mailsync.layout import (
    ArchiveLock,
    has_state,
    migrate_legacy_state,
    private_dirs,
    state_path,
)
from mailsync.search_index import IndexEntry, SearchIndex
from mailsync.state import FolderRecord, MessageRow, StateDB

__all__ = [
    "AccountArchive",
    "MaildirStore",
    "SpillSink",
    "SpilledLiteral",
    "StagedBatch",
    "StoreItem",
    "StoredMessage",
]

_R = TypeVar("_R")
_NAME_RE = re.compile(r"^(\d+)\.(\d+)\.")
_SYNC_THREADS = 16
_RECONCILE_BATCH = 2000  # file names of a folder checked against the state at a time


@dataclass(frozen=True)
class SpilledLiteral:
    """A literal the transport streamed to a file (too large for memory)."""

    path: Path
    size: int
    sha256: str

    def head(self, limit: int) -> bytes:
        with open(self.path, "rb") as fh:
            return fh.read(limit)


class SpillSink:
    """LiteralSink that streams a large literal to a temp file, hashing as it goes."""

    def __init__(self, directory: Path, size: int) -> None:
        private_dirs(directory)
        fd, name = tempfile.mkstemp(dir=directory, prefix="spill-", suffix=f".{size}")
        self._fh = os.fdopen(fd, "wb")
        self._path = Path(name)
        self._hash = hashlib.sha256()
        self._size = 0
        self.finished = False

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._hash.update(data)
        self._size += len(data)

    def finish(self) -> SpilledLiteral:
        self._fh.close()
        self.finished = True
        return SpilledLiteral(self._path, self._size, self._hash.hexdigest())

    def abandon(self) -> None:
        """The connection died mid-literal: close and remove the partial file."""
        if self.finished:
            return  # a complete literal belongs to a response now
        self.finished = True
        self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


# (uid, flags, mtime, body, internaldate): one message as AccountArchive.store_batch takes it
StoreItem = tuple[int, tuple[str, ...], float | None, bytes | SpilledLiteral, str | None]
# its (uid, flags, mtime, body), for its file; its (uid, flags, internaldate), for its row
_FileItem = tuple[int, tuple[str, ...], float | None, bytes | SpilledLiteral]
_RowItem = tuple[int, tuple[str, ...], str | None]


@dataclass(frozen=True)
class StoredMessage:
    uid: int
    size: int
    sha256: str
    path: str  # relative to the account root, POSIX style
    # the state's header fields, read from the body as it was written (None: not parsed)
    headers: HeaderInfo | None = None


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


@dataclass(frozen=True)
class StagedBatch:
    """A batch written to a folder's ``tmp/`` and not yet committed (see
    :meth:`MaildirStore.commit_staged`)."""

    base: Path  # the folder's Maildir
    moves: list[tuple[str, str]]  # (file name in tmp/, the subfolder it goes to: new or cur)
    stored: list[StoredMessage]


class MaildirStore:
    """Blocking Maildir writer for one account (run it in the account's writer thread)."""

    def __init__(self, root: Path, *, fsync: bool = True, method: SyncMethod = "syncfs") -> None:
        self.root = root
        self.fsync = fsync
        # one syncfs a step for the whole batch, where it reports write-back errors
        self.whole_fs = method == "syncfs" and syncfs_usable()
        self._ready: set[str] = set()
        self._sync_pool: ThreadPoolExecutor | None = None
        try:
            private_dirs(root)
        except OSError as exc:
            raise StorageError(f"{root}: cannot create archive folder: {exc.strerror}") from exc

    @property
    def spill_dir(self) -> Path:
        return self.root / ".spill"

    def folder_dir(self, relpath: str) -> Path:
        base = self.root / relpath
        if relpath not in self._ready:
            private_dirs(base)
            for sub in ("tmp", "new", "cur"):
                private_dirs(base / sub)
            self._ready.add(relpath)
        return base

    def write_batch(
        self,
        relpath: str,
        uidvalidity: int,
        messages: Iterable[_FileItem],
    ) -> list[StoredMessage]:
        """Write (uid, flags, mtime, body) items durably; returns where each one went.

        Every file is written to ``tmp/`` first, then all of them are synced at once, then
        renamed into place, then the directories are synced: durable before this returns.
        """
        staged = self.stage_batch(relpath, uidvalidity, messages)
        self.commit_staged(staged)
        return staged.stored

    def stage_batch(
        self,
        relpath: str,
        uidvalidity: int,
        messages: Iterable[_FileItem],
    ) -> StagedBatch:
        """The first half of :meth:`write_batch`: every file written to ``tmp/`` (not synced,
        not visible in the Maildir yet). Its bodies may be dropped once this returns."""
        base = self.folder_dir(relpath)
        staged = StagedBatch(base, [], [])
        try:
            # names relative to the folder's tmp/: one path component to resolve per call
            # instead of the archive's whole path, and no Path object per message
            tmp_fd = os.open(base / "tmp", _DIR_FLAGS)
            try:
                for uid, flags, mtime, body in messages:
                    name, sub, stored = self._stage(
                        tmp_fd, relpath, uidvalidity, uid, flags, mtime, body
                    )
                    staged.moves.append((name, sub))
                    staged.stored.append(stored)
            finally:
                os.close(tmp_fd)
        except OSError as exc:
            raise StorageError(f"{base}: cannot write message: {exc}") from exc
        return staged

    def commit_staged(self, staged: StagedBatch) -> None:
        """The second half of :meth:`write_batch`: sync the staged files, rename them into
        ``new/`` or ``cur/``, sync those directories. Touches only ``staged``'s files, so it
        may run in another thread while the next batch is staged."""
        base = staged.base
        try:
            if self.fsync:
                self._sync_files(base, [base / "tmp" / name for name, _ in staged.moves])
            subs = {sub for _, sub in staged.moves}
            fds = {sub: os.open(base / sub, _DIR_FLAGS) for sub in (*subs, "tmp")}
            try:
                tmp_fd = fds["tmp"]
                for name, sub in staged.moves:
                    os.replace(name, name, src_dir_fd=tmp_fd, dst_dir_fd=fds[sub])
            finally:
                for fd in fds.values():
                    os.close(fd)
            if self.fsync:
                if self.whole_fs and staged.moves:
                    syncfs(base)  # the renames: one journal commit for every folder
                else:
                    for sub in subs:
                        fsync_dir(base / sub)
        except OSError as exc:
            raise StorageError(f"{staged.base}: cannot write message: {exc}") from exc

    def _sync_files(self, base: Path, paths: list[Path]) -> None:
        if self.whole_fs and paths:
            syncfs(base)  # see foundation.durable: one call instead of one per file
            return
        # one fdatasync after another waits for one journal commit each (~3 ms on this kind of
        # disk: 130 ms for a batch of 45); in parallel the kernel folds them into a few commits
        # (~7 ms for the same batch, measured)
        if len(paths) <= 1:
            for path in paths:
                fdatasync_path(path)
            return
        if self._sync_pool is None:
            self._sync_pool = ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="fsync")
        for _ in self._sync_pool.map(fdatasync_path, paths):
            pass

    def close(self) -> None:
        """Stop the sync threads (the store stays usable: they restart on demand)."""
        if self._sync_pool is not None:
            self._sync_pool.shutdown(wait=True)
            self._sync_pool = None

    def _stage(
        self,
        tmp_fd: int,
        relpath: str,
        uidvalidity: int,
        uid: int,
        flags: tuple[str, ...],
        mtime: float | None,
        body: bytes | SpilledLiteral,
    ) -> tuple[str, str, StoredMessage]:
        size = body.size if isinstance(body, SpilledLiteral) else len(body)
        name = message_filename(uidvalidity, uid, size, flags)
        sub = subdir_for(flags)
        # the header fields come from the bytes at hand: parsing the file later cost a read
        # back, a process pool and its IPC, and a second state write (docs/mailsync.md)
        if isinstance(body, SpilledLiteral):
            digest = body.sha256
            headers = parse_headers(body.head(MAX_HEADER_BYTES + 4))
            os.replace(body.path, name, dst_dir_fd=tmp_fd)
            if mtime is not None:
                os.utime(name, (mtime, mtime), dir_fd=tmp_fd)
        else:
            digest = hashlib.sha256(body).hexdigest()
            headers = parse_headers(body)
            fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=tmp_fd)
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view) :]
                if mtime is not None:
                    os.utime(fd, (mtime, mtime))  # by descriptor: no second lookup of the name
            finally:
                os.close(fd)
        path = f"{relpath}/{sub}/{name}"
        return name, sub, StoredMessage(uid, size, digest, path, headers)

    def rename_flags(
        self,
        relpath: str,
        old_path: str,
        uidvalidity: int,
        uid: int,
        size: int,
        flags: tuple[str, ...],
    ) -> str:
        """Move a message to the name/subdir of its new flags; returns the new relative path."""
        name = message_filename(uidvalidity, uid, size, flags)
        new_path = f"{relpath}/{subdir_for(flags)}/{name}"
        if new_path != old_path:
            try:
                os.replace(self.root / old_path, self.root / new_path)
            except FileNotFoundError:
                return old_path  # reconcile() repairs a path the state got wrong
            except OSError as exc:
                raise StorageError(f"{self.root / old_path}: cannot rename: {exc}") from exc
        return new_path

    def reconcile(
        self,
        relpath: str,
        uidvalidity: int,
        known: Callable[[list[int]], Mapping[int, str]],
    ) -> tuple[dict[int, str], int]:
        """Repair what a crash may have left in a folder, for the current UIDVALIDITY.

        ``known(uids)`` maps those of ``uids`` the state archived to their paths there (asked
        for a bounded batch of file names at a time, so a folder of any size costs the same
        memory). Files in new/ or cur/ the state does not know (renamed in, but the crash came
        before the commit) are removed, so they are fetched again and end up exactly once; a
        known message found under another name (a flag rename whose commit was lost) yields a
        path fix. Empties tmp/. Returns (fixes, removed).
        """
        base = self.root / relpath
        if not base.exists():
            return {}, 0
        fixes: dict[int, str] = {}
        removed = 0
        batch: list[tuple[int, str, str]] = []  # (uid, relative path, absolute path)

        def settle() -> None:
            nonlocal removed
            paths = known([uid for uid, _, _ in batch])
            for uid, rel, full in batch:
                want = paths.get(uid)
                if want is None:
                    os.unlink(full)
                    removed += 1
                elif want != rel:
                    if (self.root / want).exists():
                        os.unlink(full)
                        removed += 1
                    else:
                        fixes[uid] = rel
            batch.clear()

        for sub in ("new", "cur"):
            d = base / sub
            if not d.is_dir():
                continue
            for entry in os.scandir(d):
                m = _NAME_RE.match(entry.name)
                if m is None or int(m.group(1)) != uidvalidity:
                    continue
                batch.append((int(m.group(2)), f"{relpath}/{sub}/{entry.name}", entry.path))
                if len(batch) >= _RECONCILE_BATCH:
                    settle()
        if batch:
            settle()
        tmp = base / "tmp"
        if tmp.is_dir():
            for entry in os.scandir(tmp):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        return fixes, removed

    def clear_spill(self) -> None:
        d = self.spill_dir
        if d.is_dir():
            for entry in os.scandir(d):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def _split_items(items: list[StoreItem]) -> tuple[list[_FileItem], list[_RowItem]]:
    """A batch's items as (uid, flags, mtime, body) for its files and (uid, flags,
    internaldate) for its rows."""
    return [(u, f, m, b) for u, f, m, b, _ in items], [(u, f, d) for u, f, _, _, d in items]


class AccountArchive:
    """One account's archive (Maildirs + state DB) behind a single writer thread.

    All file and SQLite work runs in that thread, in submission order, so the event loop never
    blocks on a disk and "files durable, then rows committed" holds for every batch.
    """

    def __init__(self, root: Path, *, fsync: bool = True, method: SyncMethod = "syncfs") -> None:
        self.root = root
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"writer-{root.name}")
        # the search index is another SQLite file: its writes (FTS5 tokenizing costs ~0.1 ms a
        # message) go beside the archive writer, never in the way of the next batch's files
        self._index_pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"index-{root.name}"
        )
        self._index_lock = threading.Lock()
        # syncs and renames a staged batch while the writer stages the next (astore_batch)
        self._commit_pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"commit-{root.name}"
        )
        self._state: StateDB | None = None
        self._index: SearchIndex | None = None
        self._store: MaildirStore | None = None
        self._fsync = fsync
        self._sync_method: SyncMethod = method
        # freed bodies otherwise stay in malloc's arenas: RSS crept up with the message count
        self._trimmer = HeapTrimmer()
        self._lock: ArchiveLock | None = None
        self._opened = False

    async def _call(self, fn: Callable[..., _R], *args: object) -> _R:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def open_blocking(self) -> None:
        """Open the Maildir store and the state DB in the calling thread.

        For drivers that serialise archive work themselves (the blocking modes): they then call
        the operations below directly, in one thread at a time, and :meth:`close_blocking`.

        An archive that exists is locked here (:class:`~mailsync.layout.ArchiveBusyError` if
        another run holds it). One that does not is created -- folder, lock, state DB -- only
        when the run first needs it (after the login): a run that fails before any work leaves
        nothing behind.
        """
        self._opened = True
        if has_state(self.root):
            self._create()

    def _create(self) -> None:
        if self._state is not None:
            return
        try:
            private_dirs(self.root)
        except OSError as exc:
            raise StorageError(
                f"{self.root}: cannot create archive folder: {exc.strerror}"
            ) from exc
        lock = ArchiveLock(self.root)
        lock.acquire()
        try:
            store = MaildirStore(self.root, fsync=self._fsync, method=self._sync_method)
            store.clear_spill()
            migrate_legacy_state(self.root)
            state = StateDB(state_path(self.root))
        except BaseException:
            lock.release()
            raise
        self._lock, self._store, self._state = lock, store, state

    def close_blocking(self) -> None:
        """Close what :meth:`open_blocking` opened (idempotent); the writer thread too."""
        try:
            self._close_files()
        finally:
            self._pool.shutdown(wait=False)
            self._commit_pool.shutdown(wait=False)
            self._index_pool.shutdown(wait=False)

    @property
    def created(self) -> bool:
        """True once the archive's files are open (created if they were missing)."""
        return self._state is not None

    @property
    def state(self) -> StateDB:
        assert self._opened, "archive not opened"
        self._create()
        assert self._state is not None
        return self._state

    @property
    def index(self) -> SearchIndex:
        """The search index beside the state DB (opened, and created, on first use); write
        through :meth:`add_to_index` / :meth:`aadd_to_index`, one writer at a time."""
        assert self._opened, "archive not opened"
        if self._index is None:
            if self._state is None:
                raise StorageError(f"{self.root}: the index opens after the archive")
            self._index = SearchIndex(self.root)
        return self._index

    def add_to_index(self, entries: list[IndexEntry]) -> None:
        """Index stored messages (blocking modes: from any thread, one at a time)."""
        if entries:
            with self._index_lock:
                self.index.add(entries)

    async def aadd_to_index(self, entries: list[IndexEntry]) -> None:
        """Index stored messages in the index writer thread (the asyncio engine)."""
        if entries:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._index_pool, self.add_to_index, entries)

    @property
    def store(self) -> MaildirStore:
        assert self._opened, "archive not opened"
        self._create()
        assert self._store is not None
        return self._store

    async def open(self) -> None:
        await self._call(self.open_blocking)

    async def aclose(self) -> None:
        # index writes still queued finish first (the files close after them)
        await asyncio.get_running_loop().run_in_executor(None, self._index_pool.shutdown, True)
        try:
            if self._state is not None or self._store is not None or self._lock is not None:
                await self._call(self._close_files)
        finally:
            self._commit_pool.shutdown(wait=True)
            self._pool.shutdown(wait=True)

    def _close_files(self) -> None:
        self._opened = False
        try:
            with self._index_lock:
                if self._index is not None:
                    self._index.close()
                    self._index = None
            if self._state is not None:
                self._state.close()
                self._state = None
            if self._store is not None:
                self._store.close()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def clear_spill(self) -> None:
        """Empty ``.spill/`` (bodies of dropped responses), if the archive exists."""
        if self._store is not None:
            self._store.clear_spill()

    async def run(self, fn: Callable[..., _R], *args: object) -> _R:
        """Run any blocking archive operation in the writer thread."""
        return await self._call(fn, *args)

    # operations (each runs in the writer thread) ----------------------------------------------

    def folder_records(self) -> dict[str, FolderRecord]:
        if not self.created:
            return {}  # nothing recorded yet: do not create the archive just to say so
        return self.state.folders()

    def folder_states(self) -> dict[str, FolderState]:
        """Each recorded folder's state after its last complete sync, by name: the "before" that
        :func:`mailsync.core.flow.discover` and :func:`mailsync.core.schedule.plan_folders` take
        (empty for an account never backed up)."""
        # a folder that left the server and came back (renamed away and back, same UIDVALIDITY)
        # has an unchanged STATUS but its messages marked deleted: it is synced in full again
        return {
            name: FolderState(name, r.uidvalidity, r.uidnext, r.highestmodseq, r.messages)
            for name, r in self.folder_records().items()
            if not r.gone
        }

    def mark_folders_gone(self, names: Iterable[str]) -> None:
        """Folders no longer on the server: marked gone, their messages deleted on the server
        (the files stay)."""
        gone = list(names)
        self.state.mark_folders_gone(gone)
        for name in gone:
            self.state.mark_deleted(name, None, ())

    def load_folder(self, name: str, relpath: str, uidvalidity: int) -> FolderRecord | None:
        """Reconcile crash leftovers, then return the folder record (its messages are compared
        chunk by chunk, :meth:`StateDB.diff_chunk`)."""
        record = self.state.folders().get(name)
        fixes, _ = self.store.reconcile(
            relpath, uidvalidity, lambda uids: self.state.paths_of(name, uidvalidity, uids)
        )
        for uid, path in fixes.items():
            self.state.update_path(name, uidvalidity, uid, path)
        return record

    def store_batch(
        self,
        name: str,
        relpath: str,
        uidvalidity: int,
        generation: int,
        items: list[StoreItem],
    ) -> list[StoredMessage]:
        """Write a batch's files durably, then record their state rows (blocking)."""
        files, rows = _split_items(items)
        stored = self.store.write_batch(relpath, uidvalidity, files)
        self._record_rows(name, uidvalidity, generation, rows, stored)
        return stored

    async def astore_batch(self, batch: StoreBatch, items: list[StoreItem]) -> list[StoredMessage]:
        """:meth:`store_batch` of ``batch``'s ``items`` in three steps, so that the next batch's
        files are written while this one's wait for the disk: to ``tmp/`` in the writer thread,
        synced and renamed into place in the commit thread, then the rows are recorded in the
        writer thread. Files durable before their rows, as in :meth:`store_batch`.

        Why: the writer thread was busy 9.3-9.8 s of a 10.6-12.7 s 1 GB backup, a third of it
        waiting in fdatasync; see docs/benchmarks/mail.md. ``items`` is emptied at once, and its
        bodies are let go once their files are in ``tmp/`` (a body copied into it, from a
        bytearray, is held by nothing else)."""
        store, uidvalidity = self.store, batch.uidvalidity
        files, rows = _split_items(items)
        items.clear()
        staged = await self._call(store.stage_batch, batch.relpath, uidvalidity, files)
        del files
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._commit_pool, store.commit_staged, staged)
        await self._call(
            self._record_rows, batch.name, uidvalidity, batch.generation, rows, staged.stored
        )
        return staged.stored

    def _record_rows(
        self,
        name: str,
        uidvalidity: int,
        generation: int,
        rows: list[_RowItem],
        stored: list[StoredMessage],
    ) -> None:
        flags = {u: f for u, f, _ in rows}
        dates = {u: d for u, _, d in rows}
        self.state.insert_messages(
            [
                MessageRow(
                    name,
                    uidvalidity,
                    generation,
                    s.uid,
                    s.size,
                    s.sha256,
                    flags[s.uid],
                    dates[s.uid],
                    s.path,
                )
                for s in stored
            ],
            [s.headers for s in stored],
        )
        self._trimmer.tick()

    def update_flags(
        self,
        name: str,
        relpath: str,
        uidvalidity: int,
        changes: Iterable[tuple[int, tuple[str, ...]]],
    ) -> None:
        changes = list(changes)
        rows = {r.uid: r for r in self.state.rows_for(name, uidvalidity, (u for u, _ in changes))}
        done = []
        for uid, flags in changes:
            row = rows.get(uid)
            if row is None:
                continue
            path = self.store.rename_flags(relpath, row.path, uidvalidity, uid, row.size, flags)
            done.append((uid, flags, path))
        if self._fsync and done:
            for sub in ("new", "cur"):
                fsync_dir(self.store.folder_dir(relpath) / sub)
        self.state.update_flags(name, uidvalidity, done)
