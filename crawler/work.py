"""One URL's result as it travels from whoever fetched it to whoever commits it.

A worker (an asyncio task, a thread, a greenlet, the sequential loop, or a coroutine in a worker
process) turns a :class:`~crawler.core.frontier.FrontierItem` into a :class:`Work`: the flow's
outcome and the parsed page. In the processes mode each worker writes its own WARC records and
sends an :class:`ArchivedWork` instead. Both are picklable: they cross process boundaries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crawler.core.flow import FetchResult, Outcome
from crawler.core.frontier import FrontierItem
from crawler.core.robots import RobotsRules
from crawler.page_steps import parse_input, wants_parse
from crawler.parse import ParsedPage, ParseInput, parse_any
from crawler.settings import CrawlerSettings

__all__ = [
    "ArchivedWork",
    "Fetched",
    "ForgetLinks",
    "HostBackoff",
    "HostWaiting",
    "Queued",
    "ShipRobots",
    "Work",
    "WorkerFailed",
    "parse_outcome",
]


@dataclass(frozen=True)
class Work:
    """One URL's result, from a worker to the coordinator (picklable: crosses processes)."""

    item: FrontierItem
    outcome: Outcome
    parsed: ParsedPage | None
    # robots.txt verdicts fetched while crawling this URL (the coordinator seeds sitemaps)
    robots: tuple[tuple[str, RobotsRules], ...] = ()
    # robots.txt responses fetched since the worker's last Work, to archive (every hop)
    robots_records: tuple[FetchResult, ...] = ()


@dataclass(frozen=True)
class ArchivedWork:
    """One URL whose records a worker process already wrote to its own WARC series: what the
    coordinator needs to commit it, without the bodies (:mod:`drivers.crawl_processes`)."""

    item: FrontierItem
    worker: int
    # the pages.jsonl row, WARC fields included; None: nothing archived, retry the URL later
    row: dict[str, Any] | None
    links: tuple[str, ...] = ()  # links to add to the frontier (empty when not following)
    sitemap: bool = False  # the links come from a sitemap (added at the item's own depth)
    robots: tuple[tuple[str, RobotsRules], ...] = ()
    # (payload digest, target URI, WARC-Date, offset) of each response record written: the
    # coordinator adds them to the shared digest index once the row is committed
    digests: tuple[tuple[str, str, str, int], ...] = ()
    retries: int = 0
    retry_later: float | None = None
    responses: int = 0
    body_bytes: int = 0


def parse_outcome(
    settings: CrawlerSettings,
    outcome: Outcome,
    parse_fn: Callable[[ParseInput], ParsedPage] = parse_any,
) -> ParsedPage | None:
    """Parse the final response when the engine would; None when it would not."""
    final = outcome.final
    if final is None or not 200 <= final.status < 300 or not wants_parse(settings, final):
        return None
    return parse_fn(parse_input(settings, final))


# -- the other messages between the processes mode's coordinator and its workers --
@dataclass(frozen=True)
class Fetched:
    """Worker to coordinator: ``item``'s fetching ended (its body is in, or it failed), so its
    host's place is free while the worker parses and writes it. Without it the place was held
    through parse, write and the trip back: 8 per host left the processes mode waiting at
    0 ms latency."""

    item: FrontierItem
    worker: int


@dataclass(frozen=True)
class Queued:
    """Coordinator to worker: a URL of a host spread over the workers, sent ahead of a free
    place. The worker runs at most ``limit`` URLs of the host at once (its share of
    ``per_host``) and starts this one when one of them has its body in: the next fetch does not
    wait for the round trip to the coordinator and back (see
    :class:`crawler.core.routing.HostRouter`)."""

    item: FrontierItem
    limit: int


@dataclass(frozen=True)
class HostWaiting:
    """Worker to coordinator: ``host``'s URLs wait until wall-clock ``until`` because of
    ``why`` (robots.txt retries after a failed connect), for the live display."""

    host: str
    why: str
    until: float


@dataclass(frozen=True)
class HostBackoff:
    """Both ways: a 429/503 paused ``host`` until wall-clock ``until`` (Retry-After); the
    coordinator forwards a worker's pause to the host's other workers."""

    host: str
    until: float


@dataclass(frozen=True)
class ForgetLinks:
    """Coordinator to worker: forget the links met so far (a shared frontier's Redis restarted
    and may have lost links added in its last second: met again, they must be sent again)."""


@dataclass(frozen=True)
class ShipRobots:
    """Coordinator to worker: the verdict another worker fetched for a host spread over several
    workers (robots.txt is fetched once per host)."""

    host: str
    rules: RobotsRules


@dataclass(frozen=True)
class WorkerFailed:
    """Worker to coordinator: a bug or a full disk while handling ``url``; the crawl stops."""

    url: str
    error: str
