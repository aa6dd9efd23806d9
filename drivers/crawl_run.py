"""What every crawl mode shares around a run: its result, the seeding, the storage check, the
GIL switch interval of the processes that run an event loop beside threads.

Kept apart from :mod:`drivers.crawl_asyncio` so that the command line and the processes mode's
coordinator, which fetch nothing themselves, need not import the asyncio engine (asyncio, the
offload pool, the Redis client: ~5 MB of RSS in a process that never uses them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawler.core.frontier import Frontier, NewURL
from crawler.stats import CrawlStats
from foundation.errors import StorageError

__all__ = ["SWITCH_INTERVAL", "EngineResult", "seed_frontier", "storage_check"]

# seconds, for the processes mode's workers and their coordinator: a thread that hands data
# over (a pipe's sender or reader; once the asyncio engine's WARC writer) releases the GIL at every
# SQLite step or pipe write, and getting it back waited up to the 5 ms default (cProfile: 1.0
# ms per pipe write at 5 ms, 0.16 ms at 1 ms; the engine went 668 -> 764 pages/s, medians of 3
# interleaved runs on the 2,000-page site; a worker's put to its sender 0.4 ms at 5 ms)
SWITCH_INTERVAL = 0.001


@dataclass
class EngineResult:
    stats: CrawlStats
    interrupted: bool = False
    repaired: dict[str, Any] = field(default_factory=dict)


def seed_frontier(frontier: Frontier, urls: Iterable[str]) -> int:
    """Add the seed URLs at depth 0 (already canonical); returns how many were new."""
    return frontier.add(NewURL(u, 0, None) for u in urls)


def storage_check(out: Path) -> None:
    """Fail early (exit 2) when the output folder cannot be created or written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StorageError(f"output folder {out} is not writable: {exc.strerror or exc}") from exc
