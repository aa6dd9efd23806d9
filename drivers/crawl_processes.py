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

import contextlib
import multiprocessing
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait

from crawler.core.frontier import FrontierItem
from crawler.core.routing import HostRouter
from crawler.core.urls import Scope
from crawler.settings import CrawlerSettings
from crawler.work import (
    ArchivedWork,
    Fetched,
    ForgetLinks,
    HostBackoff,
    HostWaiting,
    Queued,
    ShipRobots,
    WorkerFailed,
)
from drivers.crawl_run import SWITCH_INTERVAL
from foundation.child_process import ChildProcess
from foundation.errors import ModeError, WorkerDiedError
from foundation.limits import check_process_count
from foundation.worker_pipe import death_note

WORKER = "drivers.crawl_process_worker:worker_main"  # by name: this process never imports it
DRAIN = 64  # batches read from one worker's pipe in one ``results`` call (the others get a turn)

__all__ = ["ProcessBackend"]


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
        # started afresh (never forked from a process with threads) as plain children, not
        # multiprocessing's: see foundation.child_process. Not the fork server with the workers'
        # modules preloaded either (until 2026-12): it sat idle for the whole crawl holding all
        # of them, ~50 MB of a ~270 MB crawl; each worker imports them itself (~0.25 s of CPU,
        # once) and this process never imports the HTTP client (docs/benchmarks/crawl.md)
        # to each worker a pipe its reader thread drains at once (so sending never blocks for
        # long), batched per dispatch round; back, a pipe from each (see foundation.worker_pipe: a
        # worker that dies is then seen at once, by name, and cannot jam the others)
        pipes = [multiprocessing.Pipe(duplex=False) for _ in range(self._n)]
        backs = [multiprocessing.Pipe(duplex=False) for _ in range(self._n)]
        self._inqs = [w for _, w in pipes]
        self._outqs = [r for r, _ in backs]
        self._theirs = [r for r, _ in pipes] + [w for _, w in backs]
        self._outbox: list[list[object]] = [[] for _ in range(self._n)]
        self._switch = sys.getswitchinterval()
        self._died = False
        self._out = settings.out
        self._procs = [
            ChildProcess(
                WORKER,
                (settings, scope, k, pipes[k][0], backs[k][1], settings.concurrency),
                name=f"crawl-worker-{k}",
            )
            for k in range(self._n)
        ]

    def start(self) -> None:
        # this process hands the GIL to the queue's reader as often as the workers do
        sys.setswitchinterval(SWITCH_INTERVAL)
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
