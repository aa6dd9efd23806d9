"""The data shaping around a crawl flow that every mode's driver does the same way: the flow's
and the scheduler's configuration from the settings, which responses are parsed and with what,
whether a page's links are followed, and how a finished URL is counted. The decisions themselves
are :mod:`crawler.core.scheduler`'s; the behaviour of one URL is :mod:`crawler.core.flow`'s.

No asyncio, threading or transport import: the gevent child and the worker processes import this
as the asyncio engine does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawler.core.flow import FetchResult, FlowConfig, Outcome
from crawler.core.frontier import Frontier
from crawler.core.retry import RetryPolicy
from crawler.core.scheduler import SchedulerConfig
from crawler.core.urls import Scope
from crawler.parse import ParsedPage, ParseInput, is_html, is_sitemap
from crawler.settings import CrawlerSettings

if TYPE_CHECKING:  # only for annotations: the worker processes need no rich tables
    from crawler.stats import CrawlStats

__all__ = [
    "FAILED_URLS",
    "complete_all",
    "count_page",
    "count_written",
    "flow_config",
    "follows_links",
    "parse_input",
    "scheduler_config",
    "sitemap_links",
    "wants_parse",
]

FAILED_URLS = 1000  # failed URLs kept for the summary


def scheduler_config(settings: CrawlerSettings) -> SchedulerConfig:
    """What the crawl scheduler decides with, for every mode."""
    return SchedulerConfig(
        per_host=settings.per_host,
        max_pages=settings.max_pages,
        retries=settings.retries,
        robots_retry=settings.robots_retry,
        max_depth=settings.max_depth,
        follow=settings.follow,
        sitemaps=settings.sitemaps,
        delay=settings.delay,
        user_agent=settings.user_agent,
        # a shared job: lease no more than can start soon, the other workers want work too
        lease_batch=settings.concurrency if settings.shared else None,
    )


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
