"""What every crawl mode shares around a run: its result, the seeding, the storage check.

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

__all__ = ["EngineResult", "seed_frontier", "storage_check"]


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
