"""``mailsync backup --mode gevent``: the blocking driver with greenlets, in a process of its own.

The parent hands the job (settings, chosen accounts, output folder) to
:func:`drivers.gevent_child.run_child`, which starts ``python -m drivers.gevent_entry
drivers.mail_gevent:main JOB.json``; the entry monkey-patches first, so the blocking driver's
threads, locks and imaplib sockets become greenlets and gevent sockets. Passwords are never written
to the job: the child reads them the way the parent would (its environment, or
``password_command``). The reports come back as JSON."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from drivers.gevent_child import ChildJob, on_stop_signals, run_child
from foundation.frozen import build, to_data
from foundation.limits import check_gevent_installed
from mailsync.report import AccountReport
from mailsync.settings import AccountSettings, MailSettings

__all__ = ["main", "run_gevent_backup"]

EXIT_INTERRUPTED = 130


def main(argv: list[str]) -> int:
    """Child entry (already monkey-patched by :mod:`drivers.gevent_entry`)."""
    from drivers.mail_blocking import backup_blocking

    # Ctrl-C: leave at once. The archive needs no clean-up (files are durable before their state
    # rows, and the next run reconciles any leftover), exactly as after a SIGKILL.
    on_stop_signals(lambda: os._exit(EXIT_INTERRUPTED))
    job = ChildJob.read(argv)
    settings = build(MailSettings, job.data["settings"])
    chosen = [a for a in settings.accounts if a.name in set(job.data["accounts"])]
    reports = backup_blocking(settings, chosen, Path(job.data["out"]), kind="gevent")
    job.finish([asdict(r) for r in reports])
    return 0


def run_gevent_backup(
    settings: MailSettings, accounts: list[AccountSettings], out: Path
) -> list[AccountReport]:
    """Back up ``accounts`` in a gevent child process; Ctrl-C ends it and raises
    KeyboardInterrupt here once it has ended."""
    check_gevent_installed()
    job = {
        "settings": to_data(settings),
        "accounts": [a.name for a in accounts],
        "out": str(out),
    }
    run = run_child("drivers.mail_gevent:main", job, what="backup")
    if run.interrupted:  # the child was told to leave at once; a late result changes nothing
        raise KeyboardInterrupt
    return [AccountReport(**row) for row in run.result]
