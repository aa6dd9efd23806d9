"""The crawler's settings section (``[crawler]`` in the TOML file). Frozen and validated once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from foundation.frozen import FrozenModel
from foundation.mode import Mode

__all__ = ["CrawlerSettings"]


class CrawlerSettings(FrozenModel):
    out: Path = Path("crawl-out")
    mode: Mode = Mode.ASYNCIO
    loop: Literal["uvloop", "asyncio"] = "uvloop"
    follow: bool = False
    scope: Literal["host", "domain", "prefix"] = "host"
    max_depth: int | None = Field(default=None, ge=0)
    max_pages: int | None = Field(default=None, ge=1)
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    sitemaps: bool = False
    concurrency: int = Field(default=256, ge=1, le=100_000)
    per_host: int = Field(default=8, ge=1, le=10_000)
    delay: float = Field(default=0.0, ge=0, le=3600)
    timeout: float = Field(default=30.0, gt=0, le=3600)
    retries: int = Field(default=3, ge=0, le=100)
    max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_decoded_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    user_agent: str = "fetchlab-crawler/0.1 (+https://example.invalid/fetchlab)"
    robots: bool = True
    robots_retry: float = Field(default=60.0, ge=0, le=86400)
    # "sqlite", "memory", or redis://HOST:PORT/DB: a job shared by workers (docs/distributed.md)
    frontier: str = "sqlite"
    job: str | None = None  # the job's name on a redis:// frontier
    worker: str | None = None  # this worker's name in the job (default: host name + out folder)
    claim_idle: float = Field(default=60.0, gt=0, le=86400)  # s before a dead worker's URLs move
    warc_max_bytes: int = Field(default=1_000_000_000, ge=1_000_000)
    warc_gzip_level: int = Field(default=3, ge=1, le=9)
    # also pack the archive into <out>/<name of out>.wacz when the crawl finishes
    wacz: bool = False
    # one: the main process (event loop + writer thread) is the bottleneck, and one parser
    # process parses ~2,400 pages/s; a second only competed for the cores (docs/crawler.md)
    parse_workers: int = Field(default=1, ge=0, le=256)
    parse_batch: int = Field(default=16, ge=1, le=1024)
    max_pending_parse: int = Field(default=256, ge=1)

    @field_validator("frontier")
    @classmethod
    def _frontier_kind(cls, value: str) -> str:
        if value in ("sqlite", "memory") or value.startswith(("redis://", "rediss://", "unix://")):
            return value
        raise ValueError(f"frontier must be sqlite, memory or redis://HOST:PORT/DB, not {value!r}")

    @property
    def shared(self) -> bool:
        """The frontier is a Redis job shared with other workers."""
        return self.frontier.startswith(("redis://", "rediss://", "unix://"))

    @field_validator("allow", "deny")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        return value
