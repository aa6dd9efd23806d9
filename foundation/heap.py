"""Hand freed heap memory back to the operating system during a long run.

A backup frees as much as it allocates (message bodies, listing lines, parse results), but
glibc's malloc keeps freed memory in its arenas (one per thread that allocates: the writer, the
index and the fsync threads) when it is not at the top of a heap, so RSS creeps up with the
number of messages even though nothing is kept: 88 -> 95 MB over a 200,000-message backup whose
Python objects and SQLite caches stayed flat (docs/benchmarks/memory.md). ``malloc_trim(0)``
releases those free pages of every arena; called every few dozen batches it keeps RSS at 85-89 MB
for the same backup. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

__all__ = ["HeapTrimmer", "trim_heap"]

_TRIM: Callable[[int], int] | None = None
_LOADED = False


def trim_heap() -> bool:
    """Release the free memory of the C heap to the OS; False where that is not possible."""
    global _TRIM, _LOADED
    if not _LOADED:
        _LOADED = True
        if sys.platform.startswith("linux"):
            try:
                # the symbols already loaded in this process: ctypes.util.find_library forks
                # the whole process to run `ldconfig -p`, in the middle of a backup
                libc = ctypes.CDLL(None)
                _TRIM = libc.malloc_trim  # absent from musl
            except (OSError, AttributeError):
                _TRIM = None
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class HeapTrimmer:
    """Calls :func:`trim_heap` every ``every`` calls of :meth:`tick` (one per stored batch):
    a trim walks the heap (~1 ms), so not after every batch."""

    def __init__(self, every: int = 32) -> None:
        self.every = max(1, every)
        self._count = 0

    def tick(self) -> None:
        self._count += 1
        if self._count >= self.every:
            self._count = 0
            trim_heap()
