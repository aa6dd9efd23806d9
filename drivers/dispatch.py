"""Run a crawl or a mail backup in the mode its settings name: the entry points the CLIs need.

    from drivers.dispatch import run_crawl, run_backup
    result = run_crawl(settings, frontier, scope, stats)     # -> drivers.crawl_run.EngineResult
    reports = run_backup(mail_settings, accounts, out)       # -> list[mailsync AccountReport]

``settings.mode`` picks the driver: ``asyncio`` (the engine, on ``settings.loop``), ``threads``,
``sequential``, ``gevent`` (a child process of its own) or ``processes`` (worker processes, each
an asyncio loop writing its own WARC series, coordinated by this process, which writes
pages.jsonl). Every mode runs the same flow and writes the same archive format through the
engine's record code, so a run stopped in one mode resumes in any other. Mode limits are checked
first (:func:`check_crawl_mode`, :func:`check_mail_mode`) and raise
:class:`~foundation.errors.ModeError` with the reason. mailsync's ``processes`` mode spreads an
account's folders over worker processes (one per connection).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from crawler.core.frontier import Frontier
from crawler.core.urls import Scope
from crawler.settings import CrawlerSettings
from crawler.stats import CrawlStats
from drivers.crawl_run import EngineResult
from foundation.errors import ModeError
from foundation.frozen import replace
from foundation.limits import (
    MAX_MAIL_PROCESSES,
    check_gevent_installed,
    check_greenlet_count,
    check_process_count,
    check_thread_count,
)
from foundation.mode import Mode

if TYPE_CHECKING:  # mailsync is imported only when a backup runs, the coordinator when a crawl
    from drivers.crawl_coordinator import Backend, RunOutcome
    from mailsync.report import AccountReport
    from mailsync.settings import AccountSettings, MailSettings

__all__ = [
    "MODES",
    "check_crawl_mode",
    "check_mail_mode",
    "crawl_processes",
    "run_backup",
    "run_crawl",
]

MODES = tuple(Mode)


def crawl_processes(settings: CrawlerSettings) -> int:
    """Worker processes of the processes mode: ``$FETCHLAB_PROCESSES``, else one per CPU."""
    raw = os.environ.get("FETCHLAB_PROCESSES")
    if raw:
        try:
            return int(raw)
        except ValueError:
            raise ModeError(f"FETCHLAB_PROCESSES must be a number, not {raw!r}") from None
    return max(1, os.cpu_count() or 1)


def check_crawl_mode(settings: CrawlerSettings) -> None:
    """Raise ModeError when ``settings`` ask for something the mode cannot do (before any I/O)."""
    mode = settings.mode
    if mode not in MODES:
        raise ModeError(f"unknown mode {mode!r}: choose from {', '.join(MODES)}")
    if settings.shared and mode not in ("asyncio", "processes"):
        raise ModeError(
            f"a redis:// frontier (a shared job) runs in mode asyncio or processes, not {mode!r}"
        )
    if mode == "threads":
        check_thread_count(settings.concurrency)
    elif mode == "gevent":
        check_gevent_installed()
        check_greenlet_count(settings.concurrency)
        if settings.frontier != "sqlite":
            raise ModeError(
                "mode 'gevent' runs in a process of its own and needs frontier = 'sqlite'"
            )
    elif mode == "processes":
        check_process_count(crawl_processes(settings))


def run_crawl(
    settings: CrawlerSettings,
    frontier: Frontier,
    scope: Scope | None = None,
    stats: CrawlStats | None = None,
    *,
    mode: Mode | str | None = None,
) -> EngineResult:
    """Crawl ``frontier`` into ``settings.out`` in ``mode`` (default: ``settings.mode``)."""
    if mode is not None and mode != settings.mode:
        settings = replace(settings, mode=Mode(mode))
    check_crawl_mode(settings)
    stats = stats if stats is not None else CrawlStats()
    if settings.mode == "asyncio":
        return _run_asyncio(settings, frontier, scope, stats)
    if settings.mode == "gevent":
        from drivers.crawl_gevent import run_gevent

        return _result(run_gevent(settings, frontier, scope, stats))
    # (here, not at the top: a mail backup would carry the crawl's WARC writer, parsers and
    # their libraries, ~4 MB)
    from drivers.crawl_coordinator import Coordinator

    backend: Backend
    if settings.mode == "threads":
        from drivers.crawl_threads import ThreadBackend

        backend = ThreadBackend(settings, scope)
    elif settings.mode == "sequential":
        from drivers.crawl_sequential import InlineBackend

        backend = InlineBackend(settings, scope)
    else:
        from drivers.crawl_processes import ProcessBackend

        backend = ProcessBackend(settings, scope, crawl_processes(settings))
    coordinator = Coordinator(settings, frontier, backend, scope=scope, stats=stats)
    if threading.current_thread() is not threading.main_thread():
        return _result(coordinator.run())
    # SIGINT and SIGTERM stop the coordinator as a flag, seen at the next turn of its loop
    # (<= 0.25 s). Raised as an exception, Ctrl-C could land inside the coordinator's
    # bookkeeping (the processes mode then lost results whose records its workers had written)
    # or inside a lock (the sequential mode's fetch, in this thread, then hung in urllib3's
    # pool): the sequential backend is told to give up its fetch instead (``interrupt``).
    interrupt: Callable[[], None] | None = getattr(backend, "interrupt", None)

    def on_signal(*_: object) -> None:
        coordinator.stop()
        if interrupt is not None:
            interrupt()

    stops = [signal.SIGTERM, signal.SIGINT]
    previous = {sig: signal.getsignal(sig) for sig in stops}
    for sig in stops:
        signal.signal(sig, on_signal)
    try:
        return _result(coordinator.run())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _result(outcome: RunOutcome) -> EngineResult:
    return EngineResult(outcome.stats, interrupted=outcome.interrupted, repaired=outcome.repaired)


def _run_asyncio(
    settings: CrawlerSettings, frontier: Frontier, scope: Scope | None, stats: CrawlStats
) -> EngineResult:
    import asyncio  # (the other modes' coordinators need no asyncio: ~3 MB)

    from drivers.crawl_asyncio import Engine
    from foundation.runtime import loop_factory

    async def main() -> EngineResult:
        engine = Engine(settings, frontier, scope=scope, stats=stats)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, engine.stop)
        try:
            return await engine.run()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    factory, _ = loop_factory(settings.loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


# -- mailsync -----------


def check_mail_mode(settings: MailSettings) -> None:
    """Raise ModeError when the backup cannot run in ``settings.mode`` (before any I/O)."""
    mode = settings.mode
    if mode not in MODES:
        raise ModeError(f"unknown mode {mode!r}: choose from {', '.join(MODES)}")
    if mode == "processes":
        # one worker process per connection of an account
        check_process_count(
            max((a.connections for a in settings.accounts), default=1), MAX_MAIL_PROCESSES
        )
    if mode in ("threads", "gevent", "sequential") and settings.imap_client != "native":
        raise ModeError(
            f"imap_client = {settings.imap_client!r} is an asyncio transport: mode {mode!r} "
            "uses the blocking imaplib transport (set imap_client = 'native')"
        )
    if mode == "threads":
        total = sum(a.connections for a in settings.accounts) or 1
        check_thread_count(min(total, settings.max_connections))
    elif mode == "gevent":
        check_gevent_installed()


def run_backup(
    settings: MailSettings,
    accounts: Sequence[AccountSettings],
    out: Path,
    *,
    mode: Mode | str | None = None,
    on_start: Callable[[list[AccountReport]], None] | None = None,
) -> list[AccountReport]:
    """Back up ``accounts`` into ``out`` in ``mode`` (default: ``settings.mode``)."""
    if mode is not None and mode != settings.mode:
        settings = replace(settings, mode=Mode(mode))
    check_mail_mode(settings)
    if settings.mode == "asyncio":
        from drivers.mail_asyncio import backup_accounts
        from foundation.runtime import run

        return run(backup_accounts(settings, list(accounts), out, on_start=on_start), settings.loop)
    if settings.mode == "gevent":
        from drivers.mail_gevent import run_gevent_backup

        reports = run_gevent_backup(settings, list(accounts), out)
        if on_start is not None:
            on_start(reports)
        return reports
    if settings.mode == "processes":
        from drivers.mail_processes import backup_processes

        return backup_processes(settings, accounts, out, on_start=on_start)
    from drivers.mail_blocking import backup_blocking

    kind: Literal["threads", "sequential"] = (
        "threads" if settings.mode == "threads" else "sequential"
    )
    return backup_blocking(settings, accounts, out, kind=kind, on_start=on_start)
