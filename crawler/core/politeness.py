"""Per-host politeness slots as plain data (after Scrapy's downloader ``Slot``).

A slot says how many requests a host may have in flight, how long to wait between two of them
(from the start of one and from the end of the last, whichever is later), and when the next may
start. Modes map this onto their own waiting primitive; the table
itself never sleeps. Idle slots whose wait has passed carry no information and are dropped, so the
table stays small on a crawl over millions of hosts; per-host delays from robots.txt live in a
separate map that only grows with hosts that ask for one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HostSlot", "SlotTable"]

# Sweep idle slots after this many finishes: keeps dropping amortised O(1).
_SWEEP_EVERY = 1024


@dataclass
class HostSlot:
    """Mutable state of one host: in-flight count and the earliest next start."""

    host: str
    concurrency: int
    delay: float
    active: int = 0
    next_ready: float = 0.0


class SlotTable:
    """All hosts' slots; ``host`` is the ``host:port`` key from ``crawler.core.urls.host_key``."""

    def __init__(self, per_host: int, delay: float) -> None:
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        if delay < 0:
            raise ValueError("delay must not be negative")
        self.per_host = per_host
        self.delay = delay
        self._slots: dict[str, HostSlot] = {}
        self._delays: dict[str, float] = {}
        self._finishes = 0

    def __len__(self) -> int:
        return len(self._slots)

    def slot(self, host: str) -> HostSlot:
        """The host's slot, created on demand."""
        s = self._slots.get(host)
        if s is None:
            s = HostSlot(host, self.per_host, self._delays.get(host, self.delay))
            self._slots[host] = s
        return s

    def can_start(self, host: str, now: float) -> bool:
        s = self._slots.get(host)
        return s is None or (s.active < s.concurrency and now >= s.next_ready)

    def wait_time(self, host: str, now: float) -> float:
        """Seconds until a start may be possible: 0 if now, inf while the host is at its limit."""
        s = self._slots.get(host)
        if s is None:
            return 0.0
        if s.active >= s.concurrency:
            # Only a finish frees the host; the caller waits on that, not on a clock.
            return float("inf")
        return max(0.0, s.next_ready - now)

    def start(self, host: str, now: float) -> None:
        s = self.slot(host)
        s.active += 1
        s.next_ready = max(s.next_ready, now + s.delay)

    def finish(self, host: str, now: float) -> None:
        s = self._slots.get(host)
        if s is None or s.active <= 0:
            raise ValueError(f"finish without start for {host}")
        s.active -= 1
        # the delay also runs from the end of a fetch (wget's --wait, Heritrix): counted from
        # the start only, a request that reached the server late (a loaded client, a slow
        # connect) left the server a shorter gap than the delay before the next one arrived
        if s.delay > 0:
            s.next_ready = max(s.next_ready, now + s.delay)
        if s.active == 0 and s.next_ready <= now:
            del self._slots[host]
        self._finishes += 1
        if self._finishes % _SWEEP_EVERY == 0:
            self.sweep(now)

    def set_delay(self, host: str, delay: float) -> None:
        """Apply a robots.txt Crawl-delay: the larger of it and the configured delay wins."""
        effective = max(self.delay, delay)
        if effective > self.delay:
            self._delays[host] = effective
        else:
            self._delays.pop(host, None)
        s = self._slots.get(host)
        if s is not None:
            s.delay = effective

    def set_backoff(self, host: str, until: float) -> None:
        """Pause the whole host until ``until`` (429/503 with Retry-After)."""
        s = self.slot(host)
        s.next_ready = max(s.next_ready, until)

    def sweep(self, now: float) -> int:
        """Drop idle slots whose wait has passed; return how many were dropped."""
        idle = [h for h, s in self._slots.items() if s.active == 0 and s.next_ready <= now]
        for h in idle:
            del self._slots[h]
        return len(idle)
