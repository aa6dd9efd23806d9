"""``--mode gevent``: greenlets with monkey-patched blocking requests, in a process of its own.

The parent (:func:`run_gevent`, called by :mod:`drivers.dispatch`) hands the job to
:func:`drivers.gevent_child.run_child`, which starts ``python -m drivers.gevent_entry
drivers.crawl_gevent:main JOB.json``; the entry patches the standard library before anything else
is imported, then the child runs the same coordinator as the threads mode with greenlets instead
of threads (patched ``threading`` makes the shared slot table's lock and condition
greenlet-aware). Parsing runs inline: a process pool under patched threads hangs (gevent's own
warning). The child opens the SQLite frontier itself, so this mode needs ``frontier = "sqlite"``;
it starts from the parent's counters (:meth:`CrawlStats.to_json`) and reports them back, which
the parent loads for the live progress display and the summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crawler.core.frontier import Frontier, FrontierItem
from crawler.core.urls import Scope
from crawler.settings import CrawlerSettings
from crawler.stats import CrawlStats
from crawler.work import Work
from drivers.crawl_coordinator import RunOutcome
from drivers.gevent_child import ChildJob, on_stop_signals, run_child
from foundation.errors import ModeError
from foundation.frozen import build, to_data
from foundation.limits import check_gevent_installed, check_greenlet_count

__all__ = ["GreenletBackend", "main", "run_gevent"]


class GreenletBackend:
    """``concurrency`` greenlets at most, in a Group (not a Pool: spawning into a full Pool from
    inside it deadlocks; the coordinator bounds the count itself)."""

    def __init__(self, settings: CrawlerSettings, scope: Scope | None) -> None:
        import gevent.pool
        import gevent.queue

        from crawler.transports.requests_fetch import RequestsFetcher
        from drivers.crawl_blocking import BlockingEffects

        self.capacity = check_greenlet_count(settings.concurrency)
        self._fetcher = RequestsFetcher(timeout=settings.timeout)
        self._effects = BlockingEffects(settings, scope, self._fetcher)
        self._done: gevent.queue.Queue[Work | BaseException] = gevent.queue.Queue()
        self._group = gevent.pool.Group()
        self._empty = gevent.queue.Empty

    def start(self) -> None:
        pass

    def _run(self, item: FrontierItem) -> None:
        try:
            self._done.put(self._effects.crawl(item))
        except BaseException as exc:  # handed to the coordinator, which re-raises it
            self._done.put(exc)

    def watch_waiting(self, note: Callable[[str, str, float], None]) -> None:
        self._effects.on_waiting = note

    def submit(self, item: FrontierItem) -> None:
        self._group.spawn(self._run, item)

    def flush(self) -> None:
        """Nothing is buffered: ``submit`` hands the URL on at once."""

    def results(self, timeout: float) -> list[Work]:
        out: list[Work] = []
        try:
            got = self._done.get(timeout=timeout)
        except self._empty:
            return out
        while True:
            if isinstance(got, BaseException):
                raise got
            out.append(got)
            try:
                got = self._done.get_nowait()
            except self._empty:
                return out

    def close(self, abandon: bool) -> None:
        if abandon:
            self._group.kill(block=True, timeout=5)
        else:
            self._group.join()
        self._fetcher.close()


# -- the child process ----------
def main(argv: list[str]) -> int:
    """Child entry (already monkey-patched by :mod:`drivers.gevent_entry`)."""
    from crawler.frontier_sqlite import SqliteFrontier
    from drivers.crawl_coordinator import Coordinator

    job = ChildJob.read(argv)
    settings = build(CrawlerSettings, job.data["settings"])
    scope = Scope(**job.data["scope"]) if job.data["scope"] else None
    stats = CrawlStats.from_json(job.data["stats"])  # the parent's counters (and ETA hint)
    frontier = SqliteFrontier(Path(job.data["frontier"]))
    last = 0.0

    def tick() -> None:
        nonlocal last
        if time.monotonic() - last > 0.5:
            last = time.monotonic()
            job.progress(stats.to_json())

    try:
        coordinator = Coordinator(
            settings, frontier, GreenletBackend(settings, scope), scope=scope, stats=stats,
            on_tick=tick,
        )  # fmt: skip
        on_stop_signals(coordinator.stop)
        result = coordinator.run()
    finally:
        frontier.close()
    job.finish(
        {"stats": stats.to_json(), "interrupted": result.interrupted, "repaired": result.repaired}
    )
    return 0


# -- the parent side ----------
def run_gevent(
    settings: CrawlerSettings, frontier: Frontier, scope: Scope | None, stats: CrawlStats
) -> RunOutcome:
    """Run the crawl in a gevent child process; block until it ends (Ctrl-C is forwarded)."""
    check_gevent_installed()
    check_greenlet_count(settings.concurrency)
    path = getattr(frontier, "path", None)
    if path is None:
        raise ModeError(
            "mode 'gevent' runs in a process of its own and needs frontier = 'sqlite' "
            "(a memory frontier cannot be shared with it)"
        )
    flush = getattr(frontier, "flush", None)
    if flush is not None:
        flush()  # the seeds must be committed before the child opens the database
    job: dict[str, Any] = {
        "settings": to_data(settings),
        "frontier": str(path),
        "stats": stats.to_json(),
        "scope": None if scope is None else {
            "kind": scope.kind, "seeds": list(scope.seeds),
            "allow": list(scope.allow), "deny": list(scope.deny),
        },
    }  # fmt: skip
    try:
        run = run_child("drivers.crawl_gevent:main", job, what="crawl", on_progress=stats.load_json)
    finally:
        reload_counts = getattr(frontier, "reload_counts", None)
        if reload_counts is not None:  # the child changed the table under this handle
            reload_counts()
    stats.load_json(run.result["stats"])
    stats.in_flight = 0
    return RunOutcome(
        stats, interrupted=bool(run.result["interrupted"]) or run.interrupted,
        repaired=dict(run.result["repaired"]),
    )  # fmt: skip
