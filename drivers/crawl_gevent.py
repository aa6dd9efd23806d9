"""``--mode gevent``: greenlets with monkey-patched blocking requests, in a process of its own.

The parent (:func:`run_gevent`, called by :mod:`drivers.dispatch`) writes the job to a file and
starts ``python -m drivers.gevent_entry drivers.crawl_gevent:main JOB.json``; the entry patches the
standard library before anything else is imported, then the child runs the same coordinator as
the threads mode with greenlets instead of threads (patched ``threading`` makes the shared slot
table's lock and condition greenlet-aware). Parsing runs inline: a process pool under patched
threads hangs (gevent's own warning). The child opens the SQLite frontier itself, so this mode
needs ``frontier = "sqlite"``; it reports its counters to a file that the parent reads for the
live progress display and the summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crawler.core.frontier import Frontier, FrontierItem
from crawler.core.urls import Scope
from crawler.settings import CrawlerSettings
from crawler.stats import CrawlStats
from crawler.work import Work
from drivers.crawl_coordinator import RunOutcome
from drivers.gevent_entry import start_child
from foundation.errors import ModeError
from foundation.limits import check_gevent_installed, check_greenlet_count

__all__ = ["GreenletBackend", "main", "run_gevent"]

_STAT_FIELDS = ("done", "failed", "bytes", "responses", "retries", "revisits", "skipped")
_LIVE_FIELDS = ("in_flight", "queued", "previous")


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

    def submit(self, item: FrontierItem) -> None:
        self._group.spawn(self._run, item)

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
def _dump_stats(stats: CrawlStats, path: Path, **extra: Any) -> None:
    data: dict[str, Any] = {k: getattr(stats, k) for k in (*_STAT_FIELDS, *_LIVE_FIELDS)}
    data["errors"] = dict(stats.errors)
    data["failed_urls"] = stats.failed_urls
    data.update(extra)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), "utf-8")
    os.replace(tmp, path)  # the parent never reads a half-written file


def main(argv: list[str]) -> int:
    """Child entry (already monkey-patched by :mod:`drivers.gevent_entry`)."""
    from crawler.frontier_sqlite import SqliteFrontier
    from drivers.crawl_coordinator import Coordinator

    job = json.loads(Path(argv[0]).read_text("utf-8"))
    settings = CrawlerSettings.model_validate(job["settings"])
    scope = Scope(**job["scope"]) if job["scope"] else None
    progress = Path(job["progress"])
    stats = CrawlStats()
    frontier = SqliteFrontier(Path(job["frontier"]))
    last = 0.0

    def tick() -> None:
        nonlocal last
        if time.monotonic() - last > 0.5:
            last = time.monotonic()
            _dump_stats(stats, progress)

    try:
        coordinator = Coordinator(
            settings, frontier, GreenletBackend(settings, scope), scope=scope, stats=stats,
            on_tick=tick,
        )  # fmt: skip
        _install_stop_signals(coordinator.stop)
        result = coordinator.run()
    finally:
        frontier.close()
    _dump_stats(
        stats, Path(job["result"]), interrupted=result.interrupted, repaired=result.repaired
    )
    return 0


def _install_stop_signals(stop: Callable[[], None]) -> None:
    """SIGINT / SIGTERM call ``stop`` in the hub instead of raising KeyboardInterrupt in whatever
    greenlet runs (gevent's hub would print it and carry on). A terminal's Ctrl-C reaches this
    process and the parent, which forwards it: the copy within a second is the same keypress;
    a later one means "stop now"."""
    import gevent

    first = 0.0

    def on_signal() -> None:
        nonlocal first
        now = time.monotonic()
        if first and now - first < 1.0:
            return
        first = first or now
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, on_signal)


# -- the parent side ----------
def _load_into(stats: CrawlStats, path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    for key in (*_STAT_FIELDS, *_LIVE_FIELDS):
        setattr(stats, key, int(data.get(key, 0)))
    stats.errors = Counter(data.get("errors", {}))
    stats.failed_urls = [(str(u), str(why)) for u, why in data.get("failed_urls", [])]
    return data


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
    with tempfile.TemporaryDirectory(prefix="fetchlab-gevent-") as tmp:
        job_path, result, progress = (Path(tmp) / n for n in ("job.json", "result", "progress"))
        scope_data = None
        if scope is not None:
            scope_data = {
                "kind": scope.kind,
                "seeds": list(scope.seeds),
                "allow": list(scope.allow),
                "deny": list(scope.deny),
            }
        job = {
            "settings": settings.model_dump(mode="json"),
            "scope": scope_data,
            "frontier": str(path),
            "result": str(result),
            "progress": str(progress),
        }
        job_path.write_text(json.dumps(job), "utf-8")
        proc = start_child("drivers.crawl_gevent:main", str(job_path))
        interrupted = False
        try:
            while proc.poll() is None:
                try:
                    time.sleep(0.25)
                except KeyboardInterrupt:
                    # a terminal's Ctrl-C reached the child too; a programmatic one may not have
                    interrupted = True
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGINT)
                _load_into(stats, progress)
        finally:
            if proc.poll() is None:  # the parent itself is dying: do not leave the child behind
                proc.kill()
                proc.wait()
        reload_counts = getattr(frontier, "reload_counts", None)
        if reload_counts is not None:  # the child changed the table under this handle
            reload_counts()
        data = _load_into(stats, result)
        if data is None:
            raise ModeError(f"the gevent crawl process failed (exit status {proc.returncode})")
        stats.in_flight = 0
        return RunOutcome(
            stats, interrupted=bool(data.get("interrupted")) or interrupted,
            repaired=dict(data.get("repaired", {})),
        )  # fmt: skip
