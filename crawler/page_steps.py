"""What the asyncio engine and every other mode's driver share: the data shaping around the flow.

The flow (:mod:`crawler.core.flow`) owns the behaviour; each mode only performs its effects with
its own I/O (awaits, blocking calls, greenlets, worker processes). What is left between the two,
the flow's configuration, which responses are parsed, the robots.txt cache, which links and
sitemaps enter the frontier and how a page is counted, is the same in every mode and lives here,
so the modes cannot drift apart.

No asyncio, threading or transport import: the gevent child and the worker processes import this
as the asyncio engine does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from crawler.core.flow import FetchResult, FlowConfig, Outcome
from crawler.core.frontier import Frontier, NewURL
from crawler.core.parse import ParsedPage, ParseInput, is_html, is_sitemap
from crawler.core.politeness import SlotTable
from crawler.core.retry import RetryPolicy
from crawler.core.robots import TEMPORARY_TTL, RobotsRules
from crawler.core.urls import Scope, canonicalize
from crawler.settings import CrawlerSettings
from foundation.errors import InvalidURLError

if TYPE_CHECKING:  # only for annotations: the worker processes need no rich tables
    from crawler.stats import CrawlStats

__all__ = [
    "FAILED_URLS",
    "ROBOTS_CACHE",
    "SEEN_CACHE",
    "LinkFilter",
    "cached_robots",
    "complete_all",
    "count_page",
    "count_written",
    "flow_config",
    "follows_links",
    "parse_input",
    "remember_robots",
    "sitemap_links",
    "sitemap_seeds",
    "slot_wait",
    "wants_parse",
]

ROBOTS_CACHE = 10_000  # hosts whose robots.txt verdict stays in memory
SEEN_CACHE = 100_000  # links per generation of a duplicate-link cache (~10 MB)
FAILED_URLS = 1000  # failed URLs kept for the summary


def flow_config(settings: CrawlerSettings, scope: Scope | None) -> FlowConfig:
    """The flow configuration every mode drives its flows with."""
    return FlowConfig(
        user_agent=settings.user_agent,
        policy=RetryPolicy(retries=settings.retries),
        obey_robots=settings.robots,
        max_bytes=settings.max_bytes,
        timeout=settings.timeout,
        redirect_scope=scope.allows if scope is not None and settings.follow else None,
    )


# ----------------------------------------------------------------------------------- parsing
def wants_parse(settings: CrawlerSettings, final: FetchResult) -> bool:
    ctype = final.header("Content-Type")
    if settings.sitemaps and is_sitemap(final.url, ctype):
        return True
    return is_html(ctype)


def sitemap_links(settings: CrawlerSettings, final: FetchResult) -> bool:
    """True when ``final`` is a sitemap whose URLs are added at the sitemap's own depth."""
    return settings.sitemaps and is_sitemap(final.url, final.header("Content-Type"))


def parse_input(settings: CrawlerSettings, final: FetchResult) -> ParseInput:
    """What the parser gets for a final response (:func:`wants_parse` said yes)."""
    return ParseInput(
        url=final.url,
        status=final.status,
        content_type=final.header("Content-Type"),
        content_encoding=final.header("Content-Encoding"),
        body=final.body,
        max_decoded=settings.max_decoded_bytes,
    )


def follows_links(settings: CrawlerSettings, outcome: Outcome, parsed: ParsedPage | None) -> bool:
    """True when the parsed page's links go to the frontier: a parse error becomes the URL's
    outcome (page_row) and a truncated body's links are not trusted."""
    final = outcome.final
    return (
        parsed is not None
        and not parsed.error
        and settings.follow
        and final is not None
        and not final.truncated
    )


# ------------------------------------------------------------------------------ politeness
def slot_wait(wait: float) -> float:
    """How long a fetch waiting for a host's slot sleeps before it looks again: woken earlier
    when a fetch of the host ends, and never blind for more than a second."""
    return 1.0 if wait == float("inf") else min(max(wait, 0.001), 1.0)


def cached_robots(
    cache: OrderedDict[str, RobotsRules], host: str, now: float, retry: float = TEMPORARY_TTL
) -> RobotsRules | None:
    """The host's cached verdict while it is fresh (marked recently used); None: fetch it."""
    rules = cache.get(host)
    if rules is None or rules.is_stale(now, retry=retry):
        return None
    cache.move_to_end(host)
    return rules


def remember_robots(
    cache: OrderedDict[str, RobotsRules],
    slots: SlotTable,
    host: str,
    rules: RobotsRules,
    user_agent: str,
) -> bool:
    """Cache a fetched verdict (least recently used out) and apply its Crawl-delay to the host's
    slot; True when it has one."""
    cache[host] = rules
    if len(cache) > ROBOTS_CACHE:
        cache.popitem(last=False)
    delay = rules.crawl_delay(user_agent)
    if delay:
        slots.set_delay(host, delay)
        return True
    return False


# ----------------------------------------------------------------------------------- links
class LinkFilter:
    """A memory of the links already met, plus the scope: only new in-scope links are returned.

    Most links of a site were met before: this skips the scope check and the frontier's SQL for
    them (the canonical string is the key: its hash is cached, no digest to compute; measured: 40%
    of the coordinator's CPU without it). Two generations keep memory bounded and recent links
    known.
    """

    def __init__(self, scope: Scope | None, size: int = SEEN_CACHE) -> None:
        self.scope = scope
        self.size = size
        self._new: set[str] = set()
        self._old: set[str] = set()

    def __call__(self, links: Iterable[str]) -> tuple[str, ...]:
        new, old, scope = self._new, self._old, self.scope
        out = []
        for link in links:
            if link in new or link in old:
                continue
            new.add(link)
            if scope is None or scope.allows(link):
                out.append(link)
        if len(new) > self.size:
            self._old, self._new = new, set()
        return tuple(out)


def sitemap_seeds(url: str, rules: RobotsRules, scope: Scope | None) -> list[NewURL]:
    """The in-scope sitemaps of ``url``'s host (robots.txt's and /sitemap.xml), as seeds."""
    found: list[NewURL] = []
    for raw in (*rules.sitemaps(), "/sitemap.xml"):
        try:
            sm = canonicalize(raw, base=url)
        except InvalidURLError:
            continue
        if scope is None or scope.allows(sm):
            found.append(NewURL(sm, 0, None))
    return found


def complete_all(frontier: Frontier, urls: list[str]) -> None:
    """Mark ``urls`` done, in one transaction when the frontier can (``complete_many``)."""
    complete_many = getattr(frontier, "complete_many", None)
    if complete_many is not None:
        complete_many(urls)
    else:
        for url in urls:
            frontier.complete(url)


# ----------------------------------------------------------------------------------- counts
def count_page(
    stats: CrawlStats,
    url: str,
    row: dict[str, Any],
    *,
    body_bytes: int,
    responses: int,
    revisit: bool,
) -> None:
    """Count one committed URL (its pages.jsonl ``row``) in ``stats``."""
    stats.bytes += body_bytes
    stats.responses += responses
    stats.revisits += revisit
    error_class = row["error_class"]
    if error_class is None:
        stats.done += 1
        return
    stats.failed += 1
    stats.errors[error_class] += 1
    if len(stats.failed_urls) < FAILED_URLS:
        stats.failed_urls.append((url, f"{error_class}: {row['error']}"))


def count_written(
    stats: CrawlStats,
    url: str,
    row: dict[str, Any],
    hops: tuple[FetchResult, ...],
    written_row: dict[str, Any],
) -> None:
    """Count one URL whose ``hops`` the driver just archived (``written_row``: the line written,
    which says whether the response was stored as a revisit)."""
    count_page(
        stats,
        url,
        row,
        body_bytes=sum(len(h.body) for h in hops),
        responses=len(hops),
        revisit=bool(written_row.get("revisit")),
    )
