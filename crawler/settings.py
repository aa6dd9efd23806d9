"""The crawler's settings section (``[crawler]`` in the TOML file). Frozen and validated once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta

from foundation.frozen import FrozenModel
from foundation.mode import Mode

__all__ = ["CrawlerSettings"]


class CrawlerSettings(FrozenModel, frozen=True, kw_only=True):
    out: Path = Path("crawl-out")
    mode: Mode = Mode.ASYNCIO
    loop: Literal["uvloop", "asyncio"] = "uvloop"
    follow: bool = False
    scope: Literal["host", "domain", "prefix"] = "host"
    max_depth: Annotated[int, Meta(ge=0)] | None = None
    max_pages: Annotated[int, Meta(ge=1)] | None = None
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    sitemaps: bool = False
    concurrency: Annotated[int, Meta(ge=1, le=100_000)] = 256
    per_host: Annotated[int, Meta(ge=1, le=10_000)] = 8
    delay: Annotated[float, Meta(ge=0, le=3600)] = 0.0
    timeout: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    retries: Annotated[int, Meta(ge=0, le=100)] = 3
    max_bytes: Annotated[int, Meta(ge=1024)] = 50 * 1024 * 1024
    max_decoded_bytes: Annotated[int, Meta(ge=1024)] = 20 * 1024 * 1024
    user_agent: str = "fetchlab-crawler/0.1 (+https://example.invalid/fetchlab)"
    robots: bool = True
    robots_retry: Annotated[float, Meta(ge=0, le=86400)] = 60.0
    # "sqlite", "memory", or redis://HOST:PORT/DB: a job shared by workers (docs/distributed.md)
    frontier: str = "sqlite"
    job: str | None = None  # the job's name on a redis:// frontier
    worker: str | None = None  # this worker's name in the job (default: host name + out folder)
    claim_idle: Annotated[float, Meta(gt=0, le=86400)] = 60.0  # s before a dead worker's URLs move
    warc_max_bytes: Annotated[int, Meta(ge=1_000_000)] = 1_000_000_000
    warc_gzip_level: Annotated[int, Meta(ge=1, le=9)] = 3
    # also pack the archive into <out>/<name of out>.wacz when the crawl finishes
    wacz: bool = False
    # one: the main process (event loop and archive writer) is the bottleneck, and one parser
    # process parses ~5,000 pages/s; a second only competed for the cores (docs/crawler.md)
    parse_workers: Annotated[int, Meta(ge=0, le=256)] = 1
    parse_batch: Annotated[int, Meta(ge=1, le=1024)] = 16
    max_pending_parse: Annotated[int, Meta(ge=1)] = 256

    def problems(self) -> Iterator[tuple[str | None, str]]:
        if self.frontier not in ("sqlite", "memory") and not self.shared:
            yield (
                "frontier",
                f"frontier must be sqlite, memory or redis://HOST:PORT/DB, not {self.frontier!r}",
            )
        for key in ("allow", "deny"):
            for pattern in getattr(self, key):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    yield key, f"bad regular expression {pattern!r}: {exc}"

    @property
    def shared(self) -> bool:
        """The frontier is a Redis job shared with other workers."""
        return self.frontier.startswith(("redis://", "rediss://", "unix://"))
