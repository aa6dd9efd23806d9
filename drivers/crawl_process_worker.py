"""A worker process of ``--mode processes`` (:mod:`drivers.crawl_processes` starts and feeds
it): an asyncio loop with its own aiohttp session fetches and parses the URLs it is sent,
writes their records to its own WARC series and sends the coordinator an
:class:`~crawler.work.ArchivedWork` for each, in write order.

A module of its own, which the coordinator names but never imports: asyncio, the flow's effects,
the WARC writer and (at the first fetcher) aiohttp stay out of its memory.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from crawler.core.frontier import FrontierItem
from crawler.core.scheduler import LinkFilter, link_depth, retries_later
from crawler.core.urls import Scope
from crawler.page_steps import follows_links, sitemap_links
from crawler.pages import page_row
from crawler.settings import CrawlerSettings
from crawler.work import (
    ArchivedWork,
    Fetched,
    ForgetLinks,
    HostBackoff,
    HostWaiting,
    Queued,
    ShipRobots,
    Work,
    WorkerFailed,
)
from crawler.worker_archive import WorkerArchive
from drivers.crawl_async_effects import AsyncEffects
from drivers.crawl_asyncio import shared_hosts
from drivers.crawl_places import HostPlaces
from drivers.crawl_run import SWITCH_INTERVAL
from foundation.pool_worker import ignore_sigint
from foundation.runtime import raise_nofile_limit, run
from foundation.worker_pipe import PipeSender

# a worker's results wait at most this long to leave together: 20,000-page site at the default
# flags, against one message per loop tick: ~9 % less CPU a page (fewer messages), the same
# pace, as the coordinator hands freed host places out before committing (see _loop there)
RESULTS_EVERY = 0.002  # seconds


__all__ = ["RESULTS_EVERY", "archive_work", "worker_main"]


# A worker filters the links it sends with its own LinkFilter: only new in-scope links cross to
# the coordinator, whose own filter stays the one that decides (this one saves the IPC and the
# coordinator's CPU: a page's ~40 links are mostly known).


def archive_work(
    settings: CrawlerSettings,
    work: Work,
    archive: WorkerArchive,
    links: Callable[[tuple[str, ...]], tuple[str, ...]] = tuple,
) -> ArchivedWork:
    """Write one URL's records (unless it is to be retried) and say where they are; ``links``
    picks the page's links to send (all of them by default)."""
    item, outcome, parsed = work.item, work.outcome, work.parsed
    archive.hold_robots(work.robots_records)
    if retries_later(item, outcome.retry_later, settings.retries):
        return ArchivedWork(
            item,
            archive.worker,
            None,
            robots=work.robots,
            retries=outcome.retries,
            retry_later=outcome.retry_later,
        )
    row, _ = page_row(item, outcome, parsed)
    final = outcome.final
    sitemap = final is not None and sitemap_links(settings, final)
    # links past max_depth must not enter the worker's memory of links met (see link_depth)
    follow = follows_links(settings, outcome, parsed) and (
        link_depth(item, sitemap, settings.max_depth) is not None
    )
    rec = archive.write_records(outcome.hops)
    if rec.sha1 is not None:
        row["sha1"] = rec.sha1
    # the same keys, in the same order, as crawler.warc.ArchiveWriter.write adds them
    row["revisit"] = rec.revisit
    row["warc"] = rec.warc
    row["warc_offset"] = rec.start
    row["warc_end"] = rec.end
    return ArchivedWork(
        item,
        archive.worker,
        row,
        links=links(parsed.links) if follow and parsed is not None else (),
        sitemap=sitemap,
        robots=work.robots,
        digests=rec.digests,
        retries=outcome.retries,
        responses=len(outcome.hops),
        body_bytes=sum(len(h.body) for h in outcome.hops),
    )


def worker_main(
    settings: CrawlerSettings,
    scope: Scope | None,
    index: int,
    inq: Any,
    outq: Connection,
    concurrency: int,
) -> None:
    """Top-level (picklable) body of worker process ``index``; results leave on ``outq``, this
    worker's own pipe (see :mod:`foundation.worker_pipe`)."""
    ignore_sigint()  # (started with it blocked: foundation.child_process)
    sys.setswitchinterval(SWITCH_INTERVAL)  # the loop hands results to the sender's thread
    sender = PipeSender(outq, "crawl-outbox")
    try:
        run(_worker(settings, scope, index, inq, sender, concurrency), settings.loop)
    finally:
        sender.close()


async def _worker(
    settings: CrawlerSettings,
    scope: Scope | None,
    index: int,
    inq: Any,
    outq: PipeSender,
    concurrency: int,
) -> None:
    raise_nofile_limit(concurrency + 256)
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[list[object] | None] = asyncio.Queue()

    def reader() -> None:  # blocking pipe reads stay off the loop, and never wait for it
        while True:
            try:
                batch = inq.recv()
            except EOFError:
                batch = None
            loop.call_soon_threadsafe(inbox.put_nowait, batch)
            if batch is None:
                return

    threading.Thread(target=reader, name="crawl-inbox", daemon=True).start()
    archive = WorkerArchive(
        settings.out,
        index,
        max_file_bytes=settings.warc_max_bytes,
        gzip_level=settings.warc_gzip_level,
        sync_in_thread=True,  # written on the loop: the periodic fsync must not stop it
    )
    try:
        archive.open()
    except Exception as exc:
        outq.put([WorkerFailed("(opening the archive)", f"{type(exc).__name__}: {exc}")])
        return
    from crawler.transports.aiohttp_fetch import AiohttpFetcher  # the coordinator needs none

    fetcher = AiohttpFetcher(
        concurrency=concurrency, per_host=settings.per_host, timeout=settings.timeout
    )
    tasks: set[asyncio.Task[None]] = set()
    link_filter = LinkFilter(scope)
    # results leave in one message every RESULTS_EVERY seconds at most, not one per loop tick:
    # IPC costs per message (pickling, the sender thread's wake-up, the coordinator's read),
    # not per byte here
    out: list[object] = []

    def send() -> None:
        if out:  # (empty when the end of the worker sent them before their timer)
            batch = out.copy()
            out.clear()
            outq.put(batch)

    def emit(result: object) -> None:
        if not out:
            loop.call_later(RESULTS_EVERY, send)
        out.append(result)

    effects = AsyncEffects(
        settings,
        scope,
        fetcher,
        on_backoff=lambda host, until: emit(HostBackoff(host, until)),
        shared=shared_hosts(settings),
    )
    effects.on_waiting = lambda host, why, until: emit(HostWaiting(host, why, until))

    places = HostPlaces()

    async def one(item: FrontierItem, limit: int | None) -> None:
        await places.take(item.host, limit)
        held = True

        def fetched(done: FrontierItem) -> None:
            nonlocal held
            held = False
            places.give_back(done.host)
            emit(Fetched(done, index))

        try:
            work = await effects.crawl(item, fetched)
            # written and queued with no await between: results leave in write order
            emit(archive_work(settings, work, archive, link_filter))
        except Exception as exc:  # a bug or a full disk: the coordinator stops the crawl
            emit(WorkerFailed(item.url, f"{type(exc).__name__}: {exc}"))
        finally:
            if held:
                places.give_back(item.host)

    def begin(item: FrontierItem, limit: int | None) -> None:
        task = asyncio.create_task(one(item, limit))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        while (batch := await inbox.get()) is not None:
            for msg in batch:
                if isinstance(msg, FrontierItem):
                    begin(msg, None)
                elif isinstance(msg, Queued):
                    begin(msg.item, msg.limit)
                elif isinstance(msg, ShipRobots):
                    effects.install_robots(msg.host, msg.rules)
                elif isinstance(msg, HostBackoff):
                    effects.backoff(msg.host, msg.until)
                elif isinstance(msg, ForgetLinks):
                    link_filter = LinkFilter(scope)  # one() reads the name at each call
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        send()  # the last results go now, not when their timer would have fired
        await fetcher.aclose()
        if effects.shared is not None:
            await effects.shared.aclose()
        archive.close()
