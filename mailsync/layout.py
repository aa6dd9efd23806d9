"""An account archive's own files: where they live, how they stay private, how a run locks them.

``<out>/<account>/.fetchlab/`` holds the state DB (``state.sqlite`` and SQLite's ``-wal`` /
``-shm``), the search index (``index.sqlite``, see :mod:`mailsync.search_index`) and ``lock``.
No server folder can reach it: :mod:`mailsync.core.names` never maps a folder level to a name
starting with ``.`` (a leading dot is escaped as ``%2E``), so neither ``.fetchlab`` nor ``.spill``
(bodies being received) can be a Maildir folder, while a folder named ``state.sqlite`` is an
ordinary Maildir. Archives of earlier versions kept the state DB at
``<account>/state.sqlite``: :func:`migrate_legacy_state` moves it in.

Everything mailsync creates in an archive is private whatever the umask: folders 0700, files 0600
(the state DB holds every From, To and Subject).

One run at a time: a backup holds an exclusive ``flock`` on ``.fetchlab/lock`` for the whole run,
``verify`` and ``folders`` a shared one; the holder's PID is written into the file so the one
refused can name it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from foundation.errors import StorageError
from mailsync.core.names import INTERNAL_DIR

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "INTERNAL_DIR",
    "ArchiveBusyError",
    "ArchiveLock",
    "check_free",
    "existing_state",
    "has_state",
    "index_path",
    "lock_path",
    "migrate_legacy_state",
    "private_dirs",
    "private_file",
    "state_path",
    "unwritable_reason",
]

DIR_MODE = 0o700
FILE_MODE = 0o600
STATE_NAME = "state.sqlite"
INDEX_NAME = "index.sqlite"  # the search index (mailsync.search_index), rebuilt from the files
_STATE_FILES = (STATE_NAME + "-wal", STATE_NAME + "-shm", STATE_NAME)  # the main file last


class ArchiveBusyError(StorageError):
    """Another run holds the archive's lock (its PID is in the message)."""


def internal_dir(root: Path) -> Path:
    return root / INTERNAL_DIR


def state_path(root: Path) -> Path:
    return internal_dir(root) / STATE_NAME


def index_path(root: Path) -> Path:
    return internal_dir(root) / INDEX_NAME


def lock_path(root: Path) -> Path:
    return internal_dir(root) / "lock"


def has_state(root: Path) -> bool:
    """True when ``root`` holds a state DB (at its place or, from an older version, at the top)."""
    return state_path(root).is_file() or (root / STATE_NAME).is_file()


def existing_state(root: Path) -> Path | None:
    """The state DB to read (its place, else an older version's), None when there is none."""
    for path in (state_path(root), root / STATE_NAME):
        if path.is_file():
            return path
    return None


def private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700 whatever the umask (an existing
    ``path`` is set to 0700 too; existing parents are left alone)."""
    missing: list[Path] = []
    p = path
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            if not d.is_dir():  # a file in the way: never chmod it
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(d)) from None
        os.chmod(d, DIR_MODE)  # at once: a umask like 0o277 would leave it unwritable
    if not missing:
        os.chmod(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty if missing; either way 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def migrate_legacy_state(root: Path) -> bool:
    """Move an older version's ``<root>/state.sqlite`` (and its ``-wal`` / ``-shm``) into
    ``.fetchlab/``; returns True when something moved.

    Only regular files move (a Maildir folder named ``state.sqlite`` stays), and only while the
    new place holds no state DB; the WAL moves before the main file, so a crash half-way leaves
    the main file at the old place and the next open finishes the move. Run it under the lock.
    """
    old_main = root / STATE_NAME
    if not old_main.is_file() or state_path(root).exists():
        return False
    private_dirs(internal_dir(root))
    for name in _STATE_FILES:
        old = root / name
        if old.is_file() and not old.is_symlink():
            os.replace(old, internal_dir(root) / name)
            os.chmod(internal_dir(root) / name, FILE_MODE)
    return True


class ArchiveLock:
    """An OS file lock (``flock``) on ``<root>/.fetchlab/lock``, released when the process ends
    however it ends. ``shared``: for readers (verify, folders), which may run together."""

    def __init__(self, root: Path, *, shared: bool = False) -> None:
        self.root = root
        self.shared = shared
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once or raise :class:`ArchiveBusyError` naming the holder's PID."""
        path = lock_path(self.root)
        try:
            private_dirs(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise StorageError(f"{path}: cannot create the lock file: {exc.strerror}") from exc
        try:
            os.fchmod(fd, FILE_MODE)
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StorageError(f"{path}: cannot lock: {exc.strerror}") from exc
            who = f"PID {holder}" if holder else "another process"
            raise ArchiveBusyError(
                f"{self.root}: archive in use by another mailsync run ({who}); "
                "wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                if not self.shared:
                    os.ftruncate(fd, 0)
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> ArchiveLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def check_free(root: Path) -> None:
    """Raise :class:`ArchiveBusyError` if a run holds ``root``'s lock now (creates nothing)."""
    if not lock_path(root).is_file():
        return
    probe = ArchiveLock(root)
    probe.acquire()
    probe.release()


def unwritable_reason(out: Path) -> str | None:
    """Why mailsync could not create archives under ``out`` (None: it can). Creates nothing."""
    p = out.absolute()
    while not p.exists():
        if p.parent == p:
            return "no existing parent"
        p = p.parent
    if not p.is_dir():
        return f"{p} is not a folder"
    if not os.access(p, os.W_OK | os.X_OK):
        return f"{p} is not writable"
    return None
