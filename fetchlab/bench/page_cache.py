"""Every timed run of a benchmark starts from the same page cache.

This kind of machine is a virtual machine whose host takes free guest memory back (virtio
free page reporting, order 9, and a DAMON ``pageout`` scheme in the guest): what a run writes
lands in page-cache pages, and the kernel CPU that costs depended on how much the runs before
it had left cached. Measured on the mail bench's corpus (20,000 messages, 1 GB, stock Dovecot,
2026-12-07): the same mailsync backup took 1.7-1.8 s of system CPU first, 2.7 s after one
mbsync run had written its gigabyte, 4.6-5.1 s after two; ``perf`` put
``copy_folio_from_iter_atomic`` (the copy into the page cache) at 28.8 % of the samples
against 3.4 %; mbsync's own system CPU ranged 3.3-10 s the same way. With the page cache
dropped and the server's data read back before every run, mailsync took 1.66-1.72 s (wall
4.66-4.94 s) and mbsync 3.5-3.6 s (wall 8.30-8.59 s) run after run: the order of the tools no
longer decides their figures.

So before each timed run: ``sync``, drop the page cache (``/proc/sys/vm/drop_caches``: root),
and read the server's data back so the server is not reading its disk; without root the
outputs already set aside are evicted instead (``posix_fadvise(DONTNEED)``, file by file),
which leaves everything else cached.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DROP_CACHES", "CacheReset", "fresh_page_cache"]

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
CHUNK = 1 << 20


@dataclass(frozen=True)
class CacheReset:
    """What :func:`fresh_page_cache` did: ``dropped`` (the whole page cache, then ``warmed``
    bytes read back) or not (``evicted`` files of the set-aside outputs instead)."""

    dropped: bool
    warmed: int = 0
    evicted: int = 0

    @property
    def label(self) -> str:
        """One line for a benchmark's table header."""
        if self.dropped:
            return "page cache dropped and the server's data read back before every timed run"
        return (
            "outputs set aside evicted from the page cache before every timed run"
            " (no root for drop_caches)"
        )


def _regular_files(roots: Iterable[Path]) -> Iterable[str]:
    for root in roots:
        if root.is_file():
            yield str(root)
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                # a server's folder holds sockets and FIFOs: opening a FIFO would block
                if os.path.isfile(path) and not os.path.islink(path):
                    yield path


def _read_all(roots: Iterable[Path]) -> int:
    total = 0
    for path in _regular_files(roots):
        try:
            with open(path, "rb", buffering=0) as f:
                while chunk := f.read(CHUNK):
                    total += len(chunk)
        except OSError:
            continue  # a file the server removed meanwhile, or cannot be read: not ours to warm
    return total


def _evict(roots: Iterable[Path]) -> int:
    count = 0
    for path in _regular_files(roots):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            count += 1
        finally:
            os.close(fd)
    return count


def fresh_page_cache(
    warm: Iterable[Path], set_aside: Path, drop_caches: Path = DROP_CACHES
) -> CacheReset:
    """Sync, then drop the page cache and read ``warm`` back (the server's data), or, when
    dropping is not allowed, evict every file under ``set_aside`` (the finished outputs)."""
    os.sync()  # dirty pages can be neither dropped nor evicted
    try:
        drop_caches.write_text("1\n", "ascii")
    except OSError:
        return CacheReset(dropped=False, evicted=_evict([set_aside]))
    return CacheReset(dropped=True, warmed=_read_all(warm))
