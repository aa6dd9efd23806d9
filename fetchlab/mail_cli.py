"""``mailsync``: back up IMAP accounts into Maildir, verify the archive, list folders; export
the archive (mbox, eml) and restore it to a server (:mod:`fetchlab.mail_archive_cli`); index,
search, show and report (:mod:`fetchlab.mail_index_cli`); a fleet of workers on a Redis job
queue: enqueue, worker, fleet-status (:mod:`fetchlab.mail_fleet_cli`).

Exit codes: 0 everything archived / verified; 1 some items failed (named in the output);
2 usage or settings errors, an output folder that cannot be written, an archive another run
holds (its PID is named) or whose state DB cannot be opened; 130 interrupted by Ctrl-C or
SIGTERM (rerun to resume). Expected errors print one line each, never a traceback.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fetchlab import mail_index_cli
from fetchlab.mail_cli_common import check_mode, load_mail, settings_option
from fetchlab.version import version_flag
from foundation.console import Console
from foundation.errors import MailError, ModeError, StorageError, UsageError
from foundation.frozen import field_defaults
from foundation.lifeline import exit_now, hard_stop_after, stop_signals_as_interrupt
from foundation.mode import Mode
from foundation.progress import ProgressReporter, human_bytes, summary_table
from foundation.runtime import raise_nofile_limit, run
from mailsync.settings import AccountSettings, MailSettings

if TYPE_CHECKING:
    from mailsync.report import AccountReport
    from mailsync.verify import VerifyReport

# the other modes' drivers (and through them the crawler and aiohttp: ~0.25 s of imports) load
# only when such a mode runs: a no-change re-sync is mostly Python start-up
MODES: tuple[str, ...] = tuple(m.value for m in Mode)

__all__ = ["main"]

EXIT_INTERRUPTED = 130
INTERRUPTED_NOTE = "mailsync: interrupted; run it again to resume"
STOP_GRACE = 1.5  # seconds a blocking mode gets to stop after Ctrl-C / SIGTERM (then: exit)


def _load(settings_file: Path | None, out: Path | None, mode: str | None = None) -> MailSettings:
    return load_mail(settings_file, {"mail": {"out": out, "mode": mode}})


def _pick(settings: MailSettings, names: Sequence[str]) -> list[AccountSettings]:
    if not settings.accounts:
        raise UsageError(
            "no accounts configured: add [[mail.accounts]] to a settings file and name it with"
            " --settings FILE or FETCHLAB_SETTINGS (settings.example.toml shows every key)"
        )
    by_name = {a.name: a for a in settings.accounts}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UsageError(
            f"unknown account(s) {', '.join(unknown)}; configured: {', '.join(by_name)}"
        )
    return [by_name[n] for n in names] if names else list(settings.accounts)


def _check_out(settings: MailSettings, chosen: Sequence[AccountSettings]) -> None:
    """Exit 2 at once when the output folder cannot be written or an archive is in use."""
    from mailsync.layout import check_free, unwritable_reason

    reason = unwritable_reason(settings.out)
    if reason is not None:
        click.echo(f"mailsync: cannot write the output folder {settings.out}: {reason}", err=True)
        sys.exit(2)
    try:
        for acct in chosen:
            check_free(settings.out / acct.name)
    except StorageError as exc:
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)


_out_option = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The archive folder (default: the settings' mail.out).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@version_flag("mailsync")
def main() -> None:
    """Back up whole IMAP accounts into Maildir, incrementally and byte-exact; index, search and
    report on the archive."""


def _snapshot(reports: list[AccountReport], start: float) -> Mapping[str, object]:
    snap: dict[str, object] = {}
    elapsed = max(time.monotonic() - start, 1e-6)
    for r in reports:
        rate = r.new_messages / elapsed
        left = max(r.expected - r.new_messages, 0)
        eta = f"{left / rate:.0f} s" if rate > 0 and left else "-"
        snap[r.account] = (
            f"folders {r.folders_done}/{r.folders - r.skipped}  msgs {r.new_messages}"
            f"  {rate:.0f} msg/s  {r.new_bytes / elapsed / 1e6:.1f} MB/s  ETA {eta}"
        )
    return snap


def _run_backup(
    settings: MailSettings, chosen: list[AccountSettings], live: list[AccountReport]
) -> list[AccountReport]:
    if settings.mode == "asyncio":
        from drivers.mail_asyncio import backup_accounts

        return run(
            backup_accounts(settings, chosen, settings.out, on_start=live.extend), settings.loop
        )
    from drivers.dispatch import run_backup

    # threads finish their current folder before they stop, which may take minutes: past the
    # grace, leave as a SIGKILL would (the archive is consistent at any instant)
    with hard_stop_after(STOP_GRACE, EXIT_INTERRUPTED, INTERRUPTED_NOTE):
        return run_backup(settings, chosen, settings.out, on_start=live.extend)


@main.command()
@settings_option
@click.option("--account", "accounts", multiple=True, help="Only this account (repeatable).")
@_out_option
@click.option(
    "--progress/--no-progress",
    default=True,
    help="Live progress on a terminal (a log line every 10 s otherwise); --no-progress prints"
    " only the summary.",
)
@click.option(
    "--mode",
    type=click.Choice(list(MODES)),
    help=f"Concurrency design (mail.mode). [default: {field_defaults(MailSettings)['mode'].value}]",
)
def backup(
    settings_file: Path | None,
    accounts: tuple[str, ...],
    out: Path | None,
    progress: bool,
    mode: str | None,
) -> None:
    """Back up every selectable folder of the configured (or named) accounts."""
    settings = _load(settings_file, out, mode)
    try:
        check_mode(settings)
    except ModeError as exc:
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)
    try:
        chosen = _pick(settings, accounts)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    _check_out(settings, chosen)
    raise_nofile_limit(settings.max_connections * 4 + 256)
    start = time.monotonic()
    live: list[AccountReport] = []
    reporter = ProgressReporter("mailsync backup", lambda: _snapshot(live, start), enabled=progress)
    try:
        # SIGTERM (kill, a service manager) stops the backup the way Ctrl-C does
        with stop_signals_as_interrupt(), reporter:
            reports = _run_backup(settings, chosen, live)
    except KeyboardInterrupt:
        # every batch already committed stays; the next run resumes from the state
        click.echo(INTERRUPTED_NOTE, err=True)
        exit_now(EXIT_INTERRUPTED)  # abandoned threads must not hold the exit
    console = Console()
    rows = [
        (
            r.account,
            f"{r.synced}/{r.folders}" + (f" ({r.skipped} unchanged)" if r.skipped else ""),
            r.new_messages,
            r.flag_updates,
            r.gone,
            human_bytes(r.new_bytes),
            f"{r.seconds:.2f}",
            r.round_trips,
            len(r.errors),
        )
        for r in reports
    ]
    console.print(
        summary_table(
            f"mailsync backup -> {settings.out}",
            [
                "account",
                "folders",
                "new messages",
                "flags changed",
                "deleted on server",
                "bytes",
                "time s",
                "round trips",
                "errors",
            ],
            rows,
        )
    )
    for r in reports:
        for w in r.warnings:
            click.echo(f"warning: {w}", err=True)
        for e in r.errors:
            click.echo(f"error: {e}", err=True)
    if any(r.busy for r in reports):
        sys.exit(2)  # another run started meanwhile and holds an archive
    if settings.index:
        _index_gaps(settings, [r.account for r in reports if r.ok])
    sys.exit(0 if all(r.ok for r in reports) else 1)


def _index_gaps(settings: MailSettings, names: list[str]) -> None:
    """The backup indexed what it stored; index here what it could not (an interrupted run's
    last batch, an archive older than the index). Cheap when nothing is missing."""
    try:
        mail_index_cli.fill_index_gaps(settings, names, quiet=False)
    except StorageError as exc:
        click.echo(f"warning: search index not updated: {exc}", err=True)


@main.command()
@settings_option
@click.option("--account", "accounts", multiple=True, help="Only this account (repeatable).")
@_out_option
@click.option("--deep", is_flag=True, help="Fetch every message again and compare SHA-256.")
def verify(
    settings_file: Path | None, accounts: tuple[str, ...], out: Path | None, deep: bool
) -> None:
    """Check that every server message is in the archive with the right size (and bytes)."""
    settings = _load(settings_file, out)
    try:
        chosen = _pick(settings, accounts)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None

    from mailsync.verify import verify_account

    async def _all() -> list[VerifyReport]:
        return [await verify_account(a, settings, settings.out, deep=deep) for a in chosen]

    try:
        reports = run(_all(), settings.loop)
    except StorageError as exc:  # state DB unreadable, or a backup holds the archive
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)
    bad = False
    for rep in reports:
        for kind in ("missing", "extra", "mismatched", "errors"):
            for item in getattr(rep, kind):
                click.echo(f"{kind}: {item}")
        click.echo(
            f"{rep.account}: {rep.checked} server messages checked"
            f"{' (deep)' if deep else ''}: {'OK' if rep.ok else 'PROBLEMS'}"
        )
        bad = bad or not rep.ok
    sys.exit(1 if bad else 0)


@main.command()
@settings_option
@click.option(
    "--account", default=None, help="The account to list (needed when several are configured)."
)
@_out_option
def folders(settings_file: Path | None, account: str | None, out: Path | None) -> None:
    """List the server's folders, their message counts and what the archive holds."""
    settings = _load(settings_file, out)
    try:
        if account is None and len(settings.accounts) > 1:
            names = ", ".join(a.name for a in settings.accounts)
            raise UsageError(f"several accounts are configured ({names}): name one with --account")
        (acct,) = _pick(settings, [account] if account is not None else [])
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    account = acct.name
    from mailsync.verify import list_folders

    try:
        infos = run(list_folders(acct, settings, settings.out), settings.loop)
    except StorageError as exc:  # state DB unreadable, or a backup holds the archive
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)
    except MailError as exc:
        click.echo(f"error: {account}: {exc}", err=True)
        sys.exit(1)
    Console().print(
        summary_table(
            f"{account}: folders",
            ["folder", "on server", "archived", "deleted on server"],
            [
                (f.name, "?" if f.messages is None else f.messages, f.archived, f.deleted_on_server)
                for f in sorted(infos, key=lambda f: f.name)
            ],
        )
    )


# export and restore live in a module of their own
from fetchlab.mail_archive_cli import export, restore  # noqa: E402

main.add_command(export)
main.add_command(restore)
# the Redis job queue of many workers: enqueue, worker, fleet-status
from fetchlab.mail_fleet_cli import enqueue, fleet_status, worker  # noqa: E402

for _fleet_command in (enqueue, worker, fleet_status):
    main.add_command(_fleet_command)
for _command in (
    mail_index_cli.index,
    mail_index_cli.search,
    mail_index_cli.show,
    mail_index_cli.report,
):
    main.add_command(_command)


if __name__ == "__main__":
    main()
