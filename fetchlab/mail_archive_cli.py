"""``mailsync export`` and ``mailsync restore``: the archive back out, as files or onto a server.

Registered on the ``mailsync`` group by :mod:`fetchlab.mail_cli`; kept in a module of its own
(which imports nothing from that one).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fetchlab.mail_cli_common import check_mode, load_mail, settings_option
from foundation.console import Console
from foundation.errors import ModeError, StorageError, UsageError
from foundation.lifeline import exit_now, hard_stop_after, stop_signals_as_interrupt
from foundation.mode import Mode
from foundation.progress import human_bytes, summary_table
from mailsync.layout import has_state
from mailsync.settings import MailSettings

__all__ = ["export", "restore"]

EXIT_INTERRUPTED = 130
STOP_GRACE = 1.5
_QUERY_HELP = (
    "Only these messages. folder:NAME (wildcards allowed, repeatable) and date:A..B on the"
    " INTERNALDATE (YYYY, YYYY-MM or YYYY-MM-DD; either end may be empty) are read without the"
    " search index; any other query is the search language of 'mailsync search' (from:, to:,"
    " subject:, has:attachment, is:flagged, AND/OR/NOT ...), answered by the archive's index."
    " Examples: --query 'folder:Archive/* date:2023..2024-06', --query 'from:bob has:attachment'."
)


def _archive_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--archive",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The archive folder holding one folder per account (default: mail.out).",
    )(fn)


def _load(
    settings_file: Path | None, archive: Path | None, mode: str | None = None
) -> MailSettings:
    # the same layering as the other mailsync commands (mail.out is the archive folder here)
    return load_mail(settings_file, {"mail": {"out": archive, "mode": mode}})


def _archive_root(settings: MailSettings, account: str | None) -> Path:
    """The archive of ``account``; without a name, the only configured account's or the only
    archive under mail.out."""
    if account is not None:
        root = settings.out / account
    elif len(settings.accounts) == 1:
        root = settings.out / settings.accounts[0].name
    else:
        found = sorted(p for p in settings.out.glob("*") if p.is_dir() and has_state(p))
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise UsageError(
                f"name the account with --account (archives in {settings.out}: {names})"
            )
        root = found[0]
    if not has_state(root):
        raise UsageError(
            f"no archive of {root.name!r} in {root.parent} (run mailsync backup first)"
        )
    return root


@click.command()
@settings_option
@click.option("--account", default=None, help="The archived account (needed when several are).")
@_archive_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mbox", "eml"]),
    required=True,
    help="mbox: one mboxrd file per folder; eml: one file per message.",
)
@click.option("--query", default=None, help=_QUERY_HELP)
@click.option(
    "--include-deleted",
    is_flag=True,
    help="Also the archived messages that were no longer on the server at the last backup.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write the export into (created; files of the same name are replaced).",
)
def export(
    settings_file: Path | None,
    account: str | None,
    archive: Path | None,
    fmt: str,
    query: str | None,
    include_deleted: bool,
    out: Path,
) -> None:
    """Export archived messages as mboxrd files or .eml files, byte for byte.

    \b
    mailsync export --format mbox --out export/
    mailsync export --account work --format eml --query 'folder:INBOX date:2024' --out eml/

    Each message keeps its exact bytes (mbox: reversible >From quoting; a message that does not
    end with a line end gets one, and is named in a warning). out/manifest.jsonl lists every
    message with its file, SHA-256, flags and INTERNALDATE.
    """
    from fetchlab.mail_index_cli import catch_up
    from mailsync.archived import query_needs_index, select_messages
    from mailsync.export import export_archive

    settings = _load(settings_file, archive)
    try:
        root = _archive_root(settings, account)
        if query_needs_index(query):
            catch_up(settings, [(root.name, root)])
        selection = select_messages(root, query)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except StorageError as exc:
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)
    try:
        rep = export_archive(
            root,
            "mbox" if fmt == "mbox" else "eml",
            out,
            selection,
            include_deleted=include_deleted,
        )
    except StorageError as exc:
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)
    rate = rep.bytes / max(rep.seconds, 1e-6) / 1e6
    Console().print(
        summary_table(
            f"mailsync export ({fmt}) -> {out}",
            ["account", "messages", "files", "bytes", "time s", "MB/s", "errors"],
            [
                (
                    rep.account,
                    rep.messages,
                    rep.files,
                    human_bytes(rep.bytes),
                    f"{rep.seconds:.2f}",
                    f"{rate:.0f}",
                    len(rep.errors),
                )
            ],
        )
    )
    for item in rep.inexact:
        click.echo(
            f"warning: {item}: no line end at its end; mbox added one (eml keeps it exact)",
            err=True,
        )
    for err in rep.errors:
        click.echo(f"error: {err}", err=True)
    sys.exit(1 if rep.errors else 0)


@click.command()
@settings_option
@click.option("--from", "source", required=True, help="The archived account to restore from.")
@click.option("--to", "target", required=True, help="The configured account to restore into.")
@_archive_option
@click.option("--query", default=None, help=_QUERY_HELP)
@click.option(
    "--folder-map",
    "folder_map",
    multiple=True,
    metavar="SOURCE=DEST",
    help="Restore folder SOURCE (and its subfolders) as DEST (repeatable).",
)
@click.option(
    "--include-deleted",
    is_flag=True,
    help="Also the archived messages that were no longer on the server at the last backup.",
)
@click.option(
    "--mode",
    type=click.Choice([m.value for m in Mode]),
    help="Concurrency design (mail.mode); every mode runs the same restore.",
)
@click.option("--dry-run", is_flag=True, help="Only say how many messages would be sent where.")
def restore(
    settings_file: Path | None,
    source: str,
    target: str,
    archive: Path | None,
    query: str | None,
    folder_map: tuple[str, ...],
    include_deleted: bool,
    mode: str | None,
    dry_run: bool,
) -> None:
    """Upload archived messages to an account with their flags and INTERNALDATE.

    \b
    mailsync restore --from work --to work
    mailsync restore --from old --to new --folder-map INBOX=Restored --query 'date:2024..'

    Folders are created as needed. Each message sent is recorded in the archive's restore table,
    so a rerun -- after a crash or Ctrl-C at any instant -- sends nothing twice and goes on
    where the last run stopped. A message already in the destination folder (same bytes, same
    INTERNALDATE) is not sent again, so restoring into the account the archive came from adds
    only what is missing there. Uses MULTIAPPEND, LITERAL+ and UIDPLUS when the server has them.
    """
    from drivers.mail_restore import RestoreSpec, run_restore
    from fetchlab.mail_index_cli import catch_up
    from mailsync.archived import query_needs_index, select_messages
    from mailsync.core.restore import parse_folder_map
    from mailsync.layout import ArchiveLock
    from mailsync.restore_state import RestoreLock

    settings = _load(settings_file, archive, mode)
    try:
        mapping = parse_folder_map(folder_map)
        root = _archive_root(settings, source)
        try:
            if query_needs_index(query):
                catch_up(settings, [(root.name, root)])
            select_messages(root, query)  # a bad query (or an archive that cannot be read)
        except StorageError as exc:  # is refused before anything connects
            raise UsageError(str(exc)) from None
        if target not in {a.name for a in settings.accounts}:
            names = ", ".join(a.name for a in settings.accounts) or "none"
            raise UsageError(f"--to {target!r} is not a configured account (configured: {names})")
        check_mode(settings)
    except (UsageError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    except ModeError as exc:
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)
    spec = RestoreSpec(root, target, query, mapping, include_deleted)
    try:
        with ArchiveLock(root, shared=True), RestoreLock(root):
            jobs = spec.jobs()
            if dry_run:
                for job in jobs:
                    click.echo(f"{job.dest}: {len(job.items)} messages, {human_bytes(job.bytes)}")
                sys.exit(0)
            with (
                stop_signals_as_interrupt(),
                hard_stop_after(
                    STOP_GRACE, EXIT_INTERRUPTED, "mailsync: interrupted; run it again to resume"
                ),
            ):
                rep = run_restore(settings, spec, jobs)
    except StorageError as exc:
        click.echo(f"mailsync: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("mailsync: interrupted; run it again to resume", err=True)
        exit_now(EXIT_INTERRUPTED)
    rate = rep.bytes / max(rep.seconds, 1e-6) / 1e6
    Console().print(
        summary_table(
            f"mailsync restore {source} -> {target}",
            [
                "from",
                "to",
                "folders",
                "selected",
                "sent",
                "found after a crash",
                "already there",
                "done before",
                "refused",
                "bytes",
                "time s",
                "MB/s",
                "errors",
            ],
            [
                (
                    source,
                    target,
                    rep.folders,
                    rep.messages,
                    rep.appended,
                    rep.found,
                    rep.present,
                    rep.already,
                    rep.failed,
                    human_bytes(rep.bytes),
                    f"{rep.seconds:.2f}",
                    f"{rate:.1f}",
                    len(rep.errors),
                )
            ],
        )
    )
    for w in rep.warnings:
        click.echo(f"warning: {w}", err=True)
    for e in rep.errors:
        click.echo(f"error: {e}", err=True)
    sys.exit(0 if rep.ok else 1)
