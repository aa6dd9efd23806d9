"""The lease-based frontier interface and its in-memory backend.

A URL moves ``queued -> leased -> done | failed``; ``retry`` puts a leased URL back in the queue
with a not-before time. Leases are not timed: after a crash every leased URL is simply queued
again by ``release_leases`` at start-up, so a page is fetched at least once, never lost. Any
backend that keeps this contract (memory, SQLite, later Redis) plugs into the engine unchanged;
``tests/unit/test_frontier.py`` runs one contract suite over all of them.

Order: highest ``priority`` first, then lowest ``depth`` (breadth first), then first added.

How far ``pages.jsonl`` is applied to a frontier is :mod:`crawler.core.checkpoint`'s business.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from crawler.core.urls import fingerprint, host_key

__all__ = [
    "DONE",
    "FAILED",
    "LEASED",
    "QUEUED",
    "Frontier",
    "FrontierCounts",
    "FrontierItem",
    "MemoryFrontier",
    "NewURL",
]

# State codes, shared with the SQLite backend's column.
QUEUED, LEASED, DONE, FAILED = 0, 1, 2, 3


@dataclass(frozen=True)
class NewURL:
    """A URL (exact form) to add, with its link depth and where it was found."""

    url: str
    depth: int
    parent: str | None = None
    priority: int = 0


@dataclass(frozen=True)
class FrontierItem:
    """A leased URL: fetch it, then complete, retry or fail it."""

    url: str
    depth: int
    host: str
    attempts: int
    parent: str | None


@dataclass(frozen=True)
class FrontierCounts:
    queued: int
    leased: int
    done: int
    failed: int

    @property
    def total(self) -> int:
        return self.queued + self.leased + self.done + self.failed


@runtime_checkable
class Frontier(Protocol):
    """What the engine needs from a crawl queue. URLs are absolute, in exact form; the dedup key
    is the fingerprint of their canonical form."""

    def add(self, urls: Iterable[NewURL]) -> int:
        """Queue the URLs never seen before (by fingerprint); return how many were new."""
        ...

    def lease(self, n: int, now: float) -> list[FrontierItem]:
        """Up to ``n`` queued URLs whose not-before time has come, now marked leased."""
        ...

    def complete(self, url: str) -> None:
        """A leased URL is done."""
        ...

    def retry(self, url: str, not_before: float) -> None:
        """A leased URL goes back to the queue, one attempt more, not before ``not_before``."""
        ...

    def fail(self, url: str) -> None:
        """A leased URL failed for good."""
        ...

    def release_leases(self) -> int:
        """Queue every leased URL again (start-up after a crash, Ctrl-C); return how many."""
        ...

    def next_ready_at(self) -> float | None:
        """Earliest not-before time among queued URLs; None when nothing is queued."""
        ...

    def states(self, urls: Sequence[str]) -> dict[str, int]:
        """The state code of each URL the frontier knows (unknown URLs are left out)."""
        ...

    def counts(self) -> FrontierCounts: ...

    def close(self) -> None: ...


class _Entry:
    __slots__ = ("attempts", "depth", "not_before", "parent", "priority", "seq", "state", "url")

    def __init__(self, new: NewURL, seq: int) -> None:
        self.url = new.url
        self.depth = new.depth
        self.parent = new.parent
        self.priority = new.priority
        self.seq = seq
        self.attempts = 0
        self.not_before = 0.0
        self.state = QUEUED


class MemoryFrontier:
    """Frontier in a dict and two heaps: fast, lost on exit. For tests and small list crawls.

    Not thread-safe: a threaded driver calls it from one thread or under its own lock. Has the
    SQLite backend's extras too (``complete_many``, ``flush``, ``get_meta``/``set_meta``).
    """

    def __init__(self) -> None:
        self._meta: dict[str, str] = {}
        self._entries: dict[bytes, _Entry] = {}
        # Ready heap ordered like the SQLite index: (-priority, depth, seq, fingerprint).
        self._ready: list[tuple[int, int, int, bytes]] = []
        # Waiting heap of retried URLs: (not_before, seq, fingerprint).
        self._waiting: list[tuple[float, int, bytes]] = []
        self._seq = 0
        self._counts = [0, 0, 0, 0]
        self._closed = False

    def _push_ready(self, e: _Entry, fp: bytes) -> None:
        heapq.heappush(self._ready, (-e.priority, e.depth, e.seq, fp))

    def add(self, urls: Iterable[NewURL]) -> int:
        self._check_open()
        new = 0
        for u in urls:
            fp = fingerprint(u.url)
            if fp in self._entries:
                continue
            self._seq += 1
            e = _Entry(u, self._seq)
            self._entries[fp] = e
            self._push_ready(e, fp)
            new += 1
        self._counts[QUEUED] += new
        return new

    def lease(self, n: int, now: float) -> list[FrontierItem]:
        self._check_open()
        while self._waiting and self._waiting[0][0] <= now:
            _, _, fp = heapq.heappop(self._waiting)
            e = self._entries[fp]
            if e.state == QUEUED:
                self._push_ready(e, fp)
        out: list[FrontierItem] = []
        while self._ready and len(out) < n:
            *_, fp = heapq.heappop(self._ready)
            e = self._entries[fp]
            if e.state != QUEUED:
                continue  # a stale heap entry (state changed since it was pushed)
            if e.not_before > now:
                heapq.heappush(self._waiting, (e.not_before, e.seq, fp))
                continue
            e.state = LEASED
            out.append(FrontierItem(e.url, e.depth, host_key(e.url), e.attempts, e.parent))
        self._counts[QUEUED] -= len(out)
        self._counts[LEASED] += len(out)
        return out

    def _leased(self, url: str) -> tuple[bytes, _Entry]:
        self._check_open()
        fp = fingerprint(url)
        e = self._entries.get(fp)
        if e is None or e.state != LEASED:
            raise KeyError(f"not leased: {url}")
        return fp, e

    def _finish(self, url: str, state: int) -> None:
        _, e = self._leased(url)
        e.state = state
        self._counts[LEASED] -= 1
        self._counts[state] += 1

    def complete(self, url: str) -> None:
        self._finish(url, DONE)

    def complete_many(self, urls: Iterable[str]) -> None:
        for url in urls:
            self._finish(url, DONE)

    def fail(self, url: str) -> None:
        self._finish(url, FAILED)

    def retry(self, url: str, not_before: float) -> None:
        fp, e = self._leased(url)
        e.state = QUEUED
        e.attempts += 1
        e.not_before = not_before
        self._counts[LEASED] -= 1
        self._counts[QUEUED] += 1
        if not_before > 0:
            heapq.heappush(self._waiting, (not_before, e.seq, fp))
        else:
            self._push_ready(e, fp)

    def release_leases(self) -> int:
        self._check_open()
        released = 0
        for fp, e in self._entries.items():
            if e.state == LEASED:
                e.state = QUEUED
                self._push_ready(e, fp)
                released += 1
        self._counts[LEASED] -= released
        self._counts[QUEUED] += released
        return released

    def next_ready_at(self) -> float | None:
        self._check_open()
        if not self._counts[QUEUED]:
            return None
        # Any ready-heap entry that is still queued is ready now (not_before 0 or passed).
        while self._ready and self._entries[self._ready[0][3]].state != QUEUED:
            heapq.heappop(self._ready)
        first = self._entries[self._ready[0][3]].not_before if self._ready else float("inf")
        first = min(first, self._min_waiting())
        return None if first == float("inf") else first

    def _min_waiting(self) -> float:
        while self._waiting and self._entries[self._waiting[0][2]].state != QUEUED:
            heapq.heappop(self._waiting)
        return self._waiting[0][0] if self._waiting else float("inf")

    def states(self, urls: Sequence[str]) -> dict[str, int]:
        self._check_open()
        out: dict[str, int] = {}
        for url in urls:
            e = self._entries.get(fingerprint(url))
            if e is not None:
                out[url] = e.state
        return out

    def counts(self) -> FrontierCounts:
        return FrontierCounts(*self._counts)

    def flush(self) -> None:
        self._check_open()

    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("frontier is closed")
