"""Making many new files durable at once: ``syncfs(2)`` where it reports errors, else per file.

A backup writes thousands of small files and must not record one before its bytes are on disk.
One ``fdatasync`` per file waits for one journal commit each; sixteen in parallel let ext4 fold
them into a few commits, but still cost a system call, a thread switch and a flush request per
file: ~2-3 s of wall and ~3 s of kernel CPU for a 20,000-message, 1 GB backup on this kind of
machine. ``syncfs`` on the folder writes back every dirty page of that file system and commits
its journal once: the same guarantee for a whole batch in one call (measured: 7.1 s against
9.7 s and 8.2 s of CPU against 11.6 s for that backup, docs/benchmarks/mail.md). The price is
that it also writes back other programs' dirty data on the same file system: a batch then
waits for them too (:data:`SyncMethod` ``"files"`` avoids that).

``syncfs`` returns write-back errors only since Linux 5.8 (before, an I/O error was lost): on an
older kernel, or without the call (not Linux, not glibc), :func:`syncfs_usable` is False and the
callers sync file by file. This is how PostgreSQL's ``recovery_init_sync_method = syncfs`` and
git's ``core.fsyncMethod = batch`` trade per-file syncs for one, with the same caveats.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

__all__ = ["SyncMethod", "fdatasync_path", "fsync_dir", "syncfs", "syncfs_usable"]

# how a batch of new files is made durable: one syncfs of their file system (where it reports
# write-back errors, else as "files") or one fdatasync per file and one fsync per directory
SyncMethod = Literal["syncfs", "files"]
_MIN_KERNEL = (5, 8)
_RELEASE = re.compile(r"(\d+)\.(\d+)")
_SYNCFS: Callable[[int], int] | None = None
_LOADED = False


def _kernel_at_least(release: str, wanted: tuple[int, int]) -> bool:
    m = _RELEASE.match(release)
    return m is not None and (int(m[1]), int(m[2])) >= wanted


def _load() -> Callable[[int], int] | None:
    global _SYNCFS, _LOADED
    if not _LOADED:
        _LOADED = True
        if sys.platform.startswith("linux") and _kernel_at_least(platform.release(), _MIN_KERNEL):
            try:
                # the symbols already loaded: find_library forks `ldconfig -p` (foundation.heap)
                libc = ctypes.CDLL(None, use_errno=True)
                _SYNCFS = libc.syncfs
            except (OSError, AttributeError):
                _SYNCFS = None
    return _SYNCFS


def syncfs_usable() -> bool:
    """True where :func:`syncfs` syncs a file system and reports its write-back errors."""
    return _load() is not None


def syncfs(path: Path) -> None:
    """Write back and commit the whole file system that holds the directory ``path``; raises
    OSError on a write-back error (call only where :func:`syncfs_usable`)."""
    fn = _load()
    if fn is None:
        raise OSError(f"{path}: syncfs is not usable here")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


def fdatasync_path(path: Path) -> None:
    """``fdatasync`` the file at ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """``fsync`` the directory ``path`` (its entries: a rename into it is then durable)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
