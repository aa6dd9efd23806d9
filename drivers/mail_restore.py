"""``mailsync restore`` in the mode the settings name: the entry point the CLI calls.

    report = run_restore(settings, RestoreSpec(root, "bob", query, {"Old": "New"}))

Every mode drives the same flow (:func:`mailsync.core.restore.restore_folder`) and records into
the same restore table, so a restore stopped in one mode goes on in any other:

- asyncio: :mod:`drivers.mail_restore_asyncio` (native transport, ``connections`` connections);
- threads / sequential: :mod:`drivers.mail_restore_blocking` (imaplib transport);
- gevent: the blocking driver in a child process that monkey-patched first (greenlets instead
  of threads), started through :mod:`drivers.gevent_child` as the backup's gevent mode is;
- processes: destination folders dealt out (largest first) to ``connections`` worker processes
  (a fork server, as the backup's processes mode), each an asyncio loop with one connection,
  each writing the restore table through its own SQLite connection (no single writer is needed
  here: the table is the only thing written, and SQLite serialises its commits).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from foundation.errors import MailError, ModeError
from foundation.frozen import build, replace, to_data
from foundation.mode import Mode
from foundation.pool_worker import sigint_held
from mailsync.archived import select_messages
from mailsync.auth import Secret, get_secret
from mailsync.core import restore as core
from mailsync.restore_state import RestoreReport, plan_jobs
from mailsync.settings import AccountSettings, MailSettings

__all__ = ["RestoreSpec", "gevent_main", "run_restore"]

EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class RestoreSpec:
    """What to restore: the archive at ``root`` into the configured account ``target``."""

    root: Path
    target: str
    query: str | None = None
    folder_map: dict[str, str] = field(default_factory=dict)
    include_deleted: bool = False

    def jobs(self) -> list[core.RestoreJob]:
        return plan_jobs(
            self.root,
            select_messages(self.root, self.query),
            self.folder_map,
            include_deleted=self.include_deleted,
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "root": str(self.root)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RestoreSpec:
        return cls(**{**data, "root": Path(data["root"])})


def _account(settings: MailSettings, name: str) -> AccountSettings:
    for acct in settings.accounts:
        if acct.name == name:
            return acct
    raise ModeError(f"no configured account {name!r} to restore to")


def run_restore(
    settings: MailSettings, spec: RestoreSpec, jobs: list[core.RestoreJob] | None = None
) -> RestoreReport:
    """Restore ``spec`` in ``settings.mode``; ``jobs`` (planned already) or planned here."""
    target = _account(settings, spec.target)
    if jobs is None:
        jobs = spec.jobs()
    mode = settings.mode
    if mode == Mode.ASYNCIO:
        from drivers.mail_restore_asyncio import restore_asyncio
        from foundation.runtime import run

        return run(restore_asyncio(settings, spec.root, target, jobs), settings.loop)
    if mode in (Mode.THREADS, Mode.SEQUENTIAL):
        from drivers.mail_restore_blocking import restore_blocking

        if mode == Mode.THREADS:
            return restore_blocking(settings, spec.root, target, jobs, kind="threads")
        return restore_blocking(settings, spec.root, target, jobs, kind="sequential")
    if mode == Mode.GEVENT:
        return _run_gevent(settings, spec, jobs)
    return _run_processes(settings, spec, target, jobs)


# -- gevent --------------------------------------------------------------------------------------


def gevent_main(argv: list[str]) -> int:
    """Child entry (already monkey-patched by :mod:`drivers.gevent_entry`)."""
    from drivers.gevent_child import ChildJob, on_stop_signals
    from drivers.mail_restore_blocking import restore_blocking

    # Ctrl-C: leave at once; the restore table is consistent at any instant (as after SIGKILL)
    on_stop_signals(lambda: os._exit(EXIT_INTERRUPTED))
    job = ChildJob.read(argv)
    settings = build(MailSettings, job.data["settings"])
    spec = RestoreSpec.from_json(job.data["spec"])
    dests = set(job.data["dests"])
    jobs = [j for j in spec.jobs() if j.dest in dests]
    report = restore_blocking(
        settings, spec.root, _account(settings, spec.target), jobs, kind="gevent"
    )
    job.finish(asdict(report))
    return 0


def _run_gevent(
    settings: MailSettings, spec: RestoreSpec, jobs: list[core.RestoreJob]
) -> RestoreReport:
    from drivers.gevent_child import run_child
    from foundation.limits import check_gevent_installed

    check_gevent_installed()
    data = {
        "settings": to_data(settings),
        "spec": spec.to_json(),
        "dests": [j.dest for j in jobs],
    }
    run = run_child("drivers.mail_restore:gevent_main", data, what="restore")
    if run.interrupted:
        raise KeyboardInterrupt
    return RestoreReport(**run.result)


# -- processes ----------------------------------------------------------------------------------


def _process_worker(
    settings: MailSettings, spec: RestoreSpec, dests: list[str], secret: Secret
) -> dict[str, Any]:
    """One worker process: its share of the folders on one connection, in an asyncio loop."""
    from drivers.mail_restore_asyncio import restore_asyncio
    from foundation.pool_worker import ignore_sigint
    from foundation.runtime import run

    ignore_sigint()  # the parent decides when to stop
    wanted = set(dests)
    jobs = [j for j in spec.jobs() if j.dest in wanted]
    target = replace(_account(settings, spec.target), connections=1)
    report = run(restore_asyncio(settings, spec.root, target, jobs, secret=secret), settings.loop)
    return asdict(report)


def _deal(jobs: list[core.RestoreJob], n: int) -> list[list[str]]:
    """Largest folder first to the least loaded worker."""
    shares: list[tuple[int, list[str]]] = [(0, []) for _ in range(n)]
    for job in sorted(jobs, key=lambda j: -j.bytes):
        i = min(range(n), key=lambda k: shares[k][0])
        load, dests = shares[i]
        shares[i] = (load + job.bytes + 1, [*dests, job.dest])
    return [dests for _, dests in shares if dests]


def _run_processes(
    settings: MailSettings, spec: RestoreSpec, target: AccountSettings, jobs: list[core.RestoreJob]
) -> RestoreReport:
    import multiprocessing
    import time
    from concurrent.futures import ProcessPoolExecutor

    from foundation.lifeline import run_watched
    from foundation.limits import MAX_MAIL_PROCESSES, check_process_count

    start = time.monotonic()
    report = RestoreReport(spec.root.name, target.name)
    if not jobs:
        return report
    n = min(target.connections, len(jobs))
    check_process_count(n, MAX_MAIL_PROCESSES)
    # read once, here: a worker of a fork server started earlier would not see an environment
    # variable set since, and a password_command should not run once per worker
    try:
        secret = get_secret(target)
    except MailError as exc:
        report.errors.append(str(exc))
        return report
    ctx = multiprocessing.get_context("forkserver")  # never fork a process with threads
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        with sigint_held():  # the workers start here: a Ctrl-C then must not kill one
            futures = [
                pool.submit(
                    run_watched, os.getpid(), _process_worker, settings, spec, share, secret
                )
                for share in _deal(jobs, n)
            ]
        for fut in futures:
            try:
                part = RestoreReport(**fut.result())
            except Exception as exc:  # a worker died: what it recorded stays; rerun goes on
                report.errors.append(f"{target.name}: a restore worker failed: {exc!r}")
                continue
            for name in (
                "folders",
                "messages",
                "appended",
                "found",
                "present",
                "already",
                "failed",
                "bytes",
                "retries",
            ):
                setattr(report, name, getattr(report, name) + getattr(part, name))
            report.errors += part.errors
            report.warnings += part.warnings
    report.seconds = time.monotonic() - start
    return report
