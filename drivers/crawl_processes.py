"""``--mode processes``: "processes plus coroutines". P worker processes, each an asyncio loop
with its own aiohttp session, fetch, parse and **write their own WARC series**; this process
coordinates (frontier, politeness grants, pages.jsonl).

Routing, with per-host politeness exact across workers, is
:class:`crawler.core.routing.HostRouter`'s (pinned and spread hosts, robots.txt fetched once,
pauses forwarded).

Archive: each worker writes its records to ``warc/fetchlab-w{N}-*.warc.gz``
(:class:`~crawler.worker_archive.WorkerArchive`, flushed to the OS) and then sends the coordinator a
small :class:`~crawler.work.ArchivedWork` (the row, the links, the digests); the
coordinator adds the links, writes the pages.jsonl line, marks the URL done, in each worker's
write order: a URL is complete only once its records are written. Workers ignore SIGINT: Ctrl-C
is the coordinator's to handle.

A worker that dies (SIGKILL, the OOM killer, a crash) ends the crawl at once with a
:class:`~foundation.errors.WorkerDiedError` naming it, its PID and its signal or exit status; the
other workers are killed (what they finish could not be committed) and the next run's repair cuts
the records no pages.jsonl line names, so ``--resume``, in any mode, finishes the crawl.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from crawler.core.frontier import FrontierItem
from crawler.core.routing import HostRouter
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
from foundation.errors import ModeError, WorkerDiedError
from foundation.lifeline import run_watched
from foundation.limits import check_process_count
from foundation.offload import main_module_hidden
from foundation.pool_worker import ignore_sigint, sigint_held
from foundation.runtime import raise_nofile_limit, run
from foundation.worker_pipe import PipeSender, death_note

SWITCH_INTERVAL = 0.001  # seconds (as the engine's): see worker_main
# a worker's results wait at most this long to leave together: 20,000-page site at the default
# flags, against one message per loop tick: ~9 % less CPU a page (fewer messages), the same
# pace, as the coordinator hands freed host places out before committing (see _loop there)
RESULTS_EVERY = 0.002  # seconds
DRAIN = 64  # batches read from one worker's pipe in one ``results`` call (the others get a turn)

__all__ = ["ProcessBackend", "archive_work", "worker_main"]


# -- the worker process ----------
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
    ignore_sigint()  # (started with it blocked: ProcessBackend.start)
    # the loop hands results to the sender's thread: at the default 5 ms interval each
    # hand-off waited for the GIL (cProfile: 0.4 ms per put)
    sys.setswitchinterval(SWITCH_INTERVAL)
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


# -- the coordinator's side ----------
class ProcessBackend:
    """Starts the workers, routes URLs (see the module docstring), collects their results."""

    writes_records = True  # the coordinator commits ArchivedWork, it writes no records itself

    def __init__(self, settings: CrawlerSettings, scope: Scope | None, workers: int) -> None:
        self.capacity = settings.concurrency
        self._n = check_process_count(workers)
        self.router = HostRouter(
            self._n,
            per_host=settings.per_host,
            delay=settings.delay,
            robots=settings.robots,
            user_agent=settings.user_agent,
            capacity=settings.concurrency,
        )
        self.host_limit = self.router.host_limit  # the coordinator's per-host cap
        self._on_waiting: Callable[[str, str, float], None] | None = None
        # spawn: never fork a process with threads. Not the fork server (with the workers'
        # modules preloaded, as until 2026-12): it sat idle for the whole crawl holding all of
        # them, ~50 MB of a ~270 MB crawl; spawned, each worker imports them itself (~0.25 s of
        # CPU, once) and this process never imports the HTTP client (docs/benchmarks/crawl.md)
        ctx = multiprocessing.get_context("spawn")
        # to each worker a pipe its reader thread drains at once (so sending never blocks for
        # long), batched per dispatch round; back, a pipe from each (see foundation.worker_pipe: a
        # worker that dies is then seen at once, by name, and cannot jam the others)
        pipes = [ctx.Pipe(duplex=False) for _ in range(self._n)]
        backs = [ctx.Pipe(duplex=False) for _ in range(self._n)]
        self._inqs = [w for _, w in pipes]
        self._outqs = [r for r, _ in backs]
        self._theirs = [r for r, _ in pipes] + [w for _, w in backs]
        self._outbox: list[list[object]] = [[] for _ in range(self._n)]
        self._switch = sys.getswitchinterval()
        self._died = False
        self._out = settings.out
        self._procs = [
            ctx.Process(
                # it must end with this process, whatever ends this one (SIGKILL included)
                target=run_watched,
                args=(
                    os.getpid(),
                    worker_main,
                    settings,
                    scope,
                    k,
                    pipes[k][0],
                    backs[k][1],
                    settings.concurrency,
                ),
                name=f"crawl-worker-{k}",
                daemon=True,
            )
            for k in range(self._n)
        ]

    def start(self) -> None:
        # this process hands the GIL to the queue's reader as often as the workers do
        sys.setswitchinterval(SWITCH_INTERVAL)
        # the workers must not import this program's __main__ (the CLI and all it imports)
        with main_module_hidden(), sigint_held():
            for proc in self._procs:
                proc.start()
        for end in self._theirs:  # the workers hold their own copies now
            end.close()

    def submit(self, item: FrontierItem) -> None:
        route = self.router.route(item.host)
        if route.robots is not None:
            self._outbox[route.worker].append(ShipRobots(item.host, route.robots))
        self._outbox[route.worker].append(
            item if route.limit is None else Queued(item, route.limit)
        )

    def forget_links(self) -> None:
        """Every worker forgets the links it met (the shared frontier's server restarted)."""
        for box in self._outbox:
            box.append(ForgetLinks())

    def flush(self) -> None:
        """Send each worker what :meth:`submit` queued for it."""
        self._send()

    def _send(self) -> None:
        for k, box in enumerate(self._outbox):
            if box:
                try:
                    self._inqs[k].send(box)
                except OSError:  # its end of the pipe is closed: the worker is gone
                    raise self._death(k) from None
                self._outbox[k] = []

    def watch_waiting(self, note: Callable[[str, str, float], None]) -> None:
        self._on_waiting = note

    def _death(self, k: int) -> WorkerDiedError:
        """The error that ends the crawl when worker ``k`` died; the others are then stopped
        at once by :meth:`close` (nothing they finish can be committed any more)."""
        self._died = True
        note = death_note(f"crawl worker {k}", self._procs[k])
        return WorkerDiedError(
            f"{note}; the archive is consistent: resume with crawler crawl --resume {self._out}"
        )

    def _take(self, batch: list[object], out: list[ArchivedWork | Fetched]) -> None:
        for got in batch:
            if isinstance(got, Fetched):
                self.router.returned(got.worker, got.item.host)
                out.append(got)
            elif isinstance(got, HostBackoff):
                self._backoff(got.host, got.until)
            elif isinstance(got, HostWaiting):
                if self._on_waiting is not None:
                    self._on_waiting(got.host, got.why, got.until)
            else:
                out.append(self._take_one(got))

    def _backoff(self, host: str, until: float) -> None:
        """A worker got a 429/503 with a pause: the host's other workers pause too."""
        for k in self.router.pause_to(host):
            self._outbox[k].append(HostBackoff(host, until))

    def _take_one(self, got: object) -> ArchivedWork:
        if not isinstance(got, ArchivedWork):
            assert isinstance(got, WorkerFailed), got
            raise ModeError(f"a crawl worker process failed on {got.url}: {got.error}")
        for host, rules in got.robots:  # (its host place came back with its Fetched)
            self.router.learn(host, rules)
        return got

    def results(self, timeout: float) -> list[ArchivedWork | Fetched]:
        self._send()
        out: list[ArchivedWork | Fetched] = []
        # a worker that dies closes its pipe: end-of-file makes the pipe ready, so a death is
        # seen here at once, after whatever it had sent whole
        for conn in wait(self._outqs, timeout):
            assert isinstance(conn, Connection)
            k = self._outqs.index(conn)
            try:
                for _ in range(DRAIN):
                    self._take(conn.recv(), out)
                    if not conn.poll():
                        break
            except (EOFError, OSError):
                raise self._death(k) from None
        return out

    def close(self, abandon: bool) -> None:
        abandon = abandon or self._died
        for k, inq in enumerate(self._inqs):
            with contextlib.suppress(OSError, ValueError):
                if not abandon and self._outbox[k]:
                    inq.send(self._outbox[k])
                inq.send(None)
        # after a death, no wait: what the others finish could not be committed (its records
        # are cut off by the repair of the next run, like those of the dead worker)
        # abandoned (a stop past its grace): what is in flight goes back to the frontier, so the
        # workers get only a moment to leave on their own
        deadline = time.monotonic() + (0.0 if self._died else 0.2 if abandon else 30.0)
        for proc in self._procs:
            if proc.pid is None:
                continue
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for conn in (*self._inqs, *self._outqs):
            conn.close()
        sys.setswitchinterval(self._switch)
