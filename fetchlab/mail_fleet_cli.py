"""``mailsync enqueue``, ``mailsync worker`` and ``mailsync fleet-status``: many accounts
backed up by many worker processes (on many machines) through a job queue on Redis.

Registered on the ``mailsync`` group by :mod:`fetchlab.mail_cli`; kept in a module of its own
(which imports nothing from that one). How it works: docs/mail-fleet.md.

Exit codes: 0 done (``worker``: the queue is drained; ``fleet-status``: no account failed);
1 ``fleet-status`` lists failed accounts; 2 usage or settings errors, no queue named, Redis
unreachable, an output folder that cannot be written; 130 a worker stopped by Ctrl-C or SIGTERM
(its account is queued again at once).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fetchlab.mail_cli_common import check_mode, load_mail, settings_option
from foundation.console import Console
from foundation.errors import FetchlabError, ModeError, StorageError
from foundation.lifeline import exit_now, stop_signals_as_interrupt
from foundation.mode import Mode
from foundation.progress import human_bytes, summary_table
from foundation.runtime import raise_nofile_limit
from mailsync.settings import MailSettings

if TYPE_CHECKING:  # loaded when a fleet command runs: `mailsync --help` stays quick
    from mailsync.fleet_queue import AccountStatus, FleetQueue
    from mailsync.report import AccountReport

__all__ = ["enqueue", "fleet_status", "worker"]

EXIT_INTERRUPTED = 130


def _queue_options(fn: click.decorators.FC) -> click.decorators.FC:
    fn = click.option(
        "--fleet",
        "fleet_name",
        default=None,
        help="The fleet's name: its keys in Redis start with mailsync:fleet:NAME:"
        " (mail.fleet.name). [default: default]",
    )(fn)
    return click.option(
        "--queue",
        default=None,
        metavar="redis://HOST:PORT/DB",
        help="The Redis server holding the job queue (mail.fleet.queue).",
    )(fn)


def _load(
    settings_file: Path | None,
    queue: str | None,
    fleet_name: str | None,
    mode: str | None = None,
) -> MailSettings:
    overrides = {"mail": {"mode": mode, "fleet": {"queue": queue, "name": fleet_name}}}
    return load_mail(settings_file, overrides)


def _open(settings: MailSettings) -> FleetQueue:
    url = settings.fleet.queue
    if url is None:
        click.echo(
            "mailsync: no queue named: give --queue redis://HOST:PORT/DB or set mail.fleet.queue",
            err=True,
        )
        sys.exit(2)
    from mailsync.fleet_queue import FleetQueue

    try:
        return FleetQueue(url, settings.fleet.name)
    except (FetchlabError, ValueError) as exc:
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)


@click.command()
@settings_option
@_queue_options
@click.option("--account", "accounts", multiple=True, help="Only this account (repeatable).")
def enqueue(
    settings_file: Path | None, queue: str | None, fleet_name: str | None, accounts: tuple[str, ...]
) -> None:
    """Put one backup job per configured (or named) account on the fleet's queue; an account
    whose job is still queued or running is not queued twice. Workers (mailsync worker) take
    the jobs."""
    settings = _load(settings_file, queue, fleet_name)
    names = [a.name for a in settings.accounts]
    if not names:
        raise click.UsageError("no accounts configured: add [[mail.accounts]] to the settings")
    unknown = [n for n in accounts if n not in names]
    if unknown:
        raise click.UsageError(
            f"unknown account(s) {', '.join(unknown)}; configured: {', '.join(names)}"
        )
    fleet = _open(settings)
    try:
        added = fleet.enqueue(list(accounts) or names)
    except FetchlabError as exc:
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)
    new = [n for n, entry in added.items() if entry]
    kept = [n for n, entry in added.items() if not entry]
    click.echo(f"queued {len(new)} account(s) on fleet {settings.fleet.name!r}")
    if kept:
        click.echo(f"already queued or running: {', '.join(kept)}")


@click.command()
@settings_option
@_queue_options
@click.option(
    "--mode",
    type=click.Choice([m.value for m in Mode]),
    help="Concurrency design of each account's backup (mail.mode).",
)
@click.option(
    "--follow",
    is_flag=True,
    help="Keep waiting for new jobs when the queue is drained (default: exit 0 then).",
)
def worker(
    settings_file: Path | None,
    queue: str | None,
    fleet_name: str | None,
    mode: str | None,
    follow: bool,
) -> None:
    """Take account jobs from the fleet's queue and back each account up into mail.out (a
    folder every worker must share), one account at a time; ack a job only when its backup is
    done and durable. Exits 0 when nothing is queued or running any more (--follow: never)."""
    settings = _load(settings_file, queue, fleet_name, mode)
    try:
        check_mode(settings)
    except ModeError as exc:
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)
    from mailsync.layout import unwritable_reason

    reason = unwritable_reason(settings.out)
    if reason is not None:
        click.echo(f"mailsync: cannot write the output folder {settings.out}: {reason}", err=True)
        sys.exit(2)
    fleet = _open(settings)
    raise_nofile_limit(settings.max_connections * 4 + 256)
    from drivers.mail_fleet import run_worker

    def log(line: str) -> None:
        click.echo(f"worker {fleet.consumer}: {line}", err=True)

    def after(report: AccountReport) -> None:
        if settings.index:
            from fetchlab.mail_index_cli import fill_index_gaps

            try:
                fill_index_gaps(settings, [report.account])
            except StorageError as exc:
                log(f"{report.account}: search index not updated: {exc}")

    log(f"joined fleet {settings.fleet.name!r} (mode {settings.mode.value})")
    try:
        with stop_signals_as_interrupt():
            summary = run_worker(settings, fleet, follow=follow, log=log, after=after)
    except KeyboardInterrupt:
        click.echo("mailsync: worker stopped (an account it held is queued again)", err=True)
        exit_now(EXIT_INTERRUPTED)
    except FetchlabError as exc:
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)
    log(
        f"queue drained: {summary.done} done, {summary.retried} queued again,"
        f" {summary.failed} failed, {summary.reclaimed} taken over, {summary.messages} messages"
    )


def _when(status: AccountStatus, now: float) -> str:
    """When the account's record last changed; for a held job, when its lease was renewed."""
    if status.idle is not None:
        return f"renewed {status.idle:.1f} s ago"
    return f"{now - status.updated:.1f} s ago" if status.updated else "-"


@click.command(name="fleet-status")
@settings_option
@_queue_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the tables.")
def fleet_status(
    settings_file: Path | None, queue: str | None, fleet_name: str | None, as_json: bool
) -> None:
    """Show the fleet's accounts (queued, leased by which worker, done, failed with the cause)
    and the connection slots held per server."""
    settings = _load(settings_file, queue, fleet_name)
    fleet = _open(settings)
    try:
        statuses = fleet.statuses()
        servers = fleet.servers()
        outstanding = fleet.outstanding()
    except FetchlabError as exc:
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)
    counts = _counts(statuses)
    failed = counts["failed"]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "fleet": settings.fleet.name,
                    "counts": counts,
                    "outstanding": outstanding,
                    "accounts": [dataclasses.asdict(s) for s in statuses],
                    "servers": {k: len(v) for k, v in servers.items()},
                }
            )
        )
        sys.exit(1 if failed else 0)
    now = time.time()
    console = Console()
    console.print(
        summary_table(
            f"fleet {settings.fleet.name!r}: " + ", ".join(f"{n} {k}" for k, n in counts.items()),
            ["account", "state", "worker", "attempts", "messages", "bytes", "updated", "error"],
            [
                (
                    s.account,
                    s.state,
                    (s.holder or s.worker) if s.state != "done" else s.worker,
                    s.attempts,
                    s.messages,
                    human_bytes(s.bytes),
                    _when(s, now),
                    s.error[:200],
                )
                for s in statuses
            ],
        )
    )
    if servers:
        console.print(
            summary_table(
                "connection slots held",
                ["server", "held", "cap"],
                [
                    (srv, len(m), settings.fleet.max_connections_per_server or "-")
                    for srv, m in sorted(servers.items())
                ],
            )
        )
    sys.exit(1 if failed else 0)


def _counts(statuses: list[AccountStatus]) -> dict[str, int]:
    counts = {"queued": 0, "leased": 0, "done": 0, "failed": 0}
    for s in statuses:
        if s.state in ("queued", "retrying"):
            counts["queued"] += 1
        elif s.state in ("leased", "waiting"):
            counts["leased"] += 1
        elif s.state in counts:
            counts[s.state] += 1
    return counts
