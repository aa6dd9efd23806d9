"""``mailsync index``, ``search``, ``show`` and ``report``: find things in the archive.

Kept apart from :mod:`fetchlab.mail_cli` (which adds these commands to its group) so the backup
CLI stays small. Reading commands take no lock: SQLite's WAL lets them read while a backup
writes. ``index`` takes the archive's lock like a backup (it writes the index).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from fetchlab.mail_cli_common import load_mail, settings_option
from foundation.console import Console, new_table
from foundation.errors import QuerySyntaxError, StorageError, UsageError
from foundation.progress import human_bytes
from foundation.runtime import run
from mailsync.layout import ArchiveLock, has_state
from mailsync.settings import MailSettings

__all__ = ["SEARCH_HELP", "catch_up", "fill_index_gaps", "index", "report", "search", "show"]

SEARCH_HELP = """\b
Query syntax (notmuch / Gmail style; AND, OR, NOT in capitals, juxtaposition is AND):
  budget "quarter results"      words and phrases anywhere (subject, addresses, body, file names)
  repor*                        a prefix
  from:alice@example.org        also to: cc: subject: body: filename:
  folder:INBOX account:work     exact folder / account name
  date:2024-01..2024-06         UTC days; also date:2024, date:2024-03-05, date:2024-01..
  after:2024-03 before:2025     after = on or after, before = strictly before
  larger:5M smaller:200K        message size (K, M: 1024-based)
  has:attachment                is:flagged is:unread is:read is:answered is:draft
  id:<message-id>               by Message-ID
  (a OR b) NOT c   -c           grouping and negation

\b
Examples:
  mailsync search from:bob subject:invoice after:2024-01
  mailsync search 'has:attachment larger:5M' --output paths | xargs ls -l
  mailsync search --json '"project review" OR filename:report.pdf'"""

_out_option = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The archive folder (default: the settings' mail.out).",
)
_account_option = click.option(
    "--account", "accounts", multiple=True, help="Only this account (repeatable)."
)


def _load(settings_file: Path | None, out: Path | None) -> MailSettings:
    return load_mail(settings_file, {"mail": {"out": out}})


def _archives(settings: MailSettings, names: Sequence[str]) -> list[tuple[str, Path]]:
    """(account, archive root) of the named accounts, else of every configured account with an
    archive, else of every archive found under ``out`` (search needs no account settings)."""
    out = settings.out
    if names:
        chosen = list(names)
    elif settings.accounts:
        chosen = [a.name for a in settings.accounts if has_state(out / a.name)]
    else:
        found = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        chosen = [n for n in found if has_state(out / n)]
    if not chosen:
        raise UsageError(f"no archive under {out}: run 'mailsync backup' first (or name --out)")
    missing = [n for n in chosen if not has_state(out / n)]
    if missing:
        raise UsageError(f"no archive for {', '.join(missing)} under {out}")
    return [(n, out / n) for n in chosen]


def _fail(exc: Exception) -> None:
    click.echo(f"mailsync: {exc}", err=True)
    sys.exit(2)


# -- index ---------------------------------------------------------------------------------------
def fill_index_gaps(settings: MailSettings, names: Sequence[str], *, quiet: bool = True) -> int:
    """Index what a backup could not (a crash between a batch and its index, an archive from
    before the index): returns how many messages were indexed. Runs under each archive's lock."""
    from mailsync.index_run import index_archive

    total = 0
    for name in names:
        root = settings.out / name
        if not has_state(root):
            continue
        with ArchiveLock(root):
            done = run(index_archive(root, workers=settings.header_workers), settings.loop)
        total += done.indexed
        if done.indexed and not quiet:
            click.echo(f"{name}: indexed {done.indexed} messages the backup had not")
    return total


def catch_up(settings: MailSettings, chosen: Sequence[tuple[str, Path]]) -> None:
    """Index what each archive's search index lacks before a command reads it: a backup indexes
    only with ``index = true``, as mbsync leaves ``notmuch new`` to later, so the first search
    after a backup indexes its new messages (once, under the archive's lock; ~3.5 s a GB on two
    cores). An archive a running backup holds is read as it is, with a warning saying how many
    messages are left out."""
    from mailsync.index_run import index_archive
    from mailsync.search_index import unindexed

    for name, root in chosen:
        lacking = unindexed(root)
        if not lacking:
            continue
        lock = ArchiveLock(root)
        try:
            lock.acquire()
        except StorageError as exc:  # a backup holds it, or the archive is read-only here
            click.echo(
                f"warning: {name}: {lacking} messages are not indexed yet and left out: {exc}",
                err=True,
            )
            continue
        try:
            click.echo(f"{name}: indexing {lacking} messages for search (once)...", err=True)
            workers = max(2, settings.header_workers)
            done = run(index_archive(root, workers=workers), settings.loop)
        except StorageError as exc:  # e.g. a full disk: what was indexed is kept (per chunk)
            click.echo(f"warning: {name}: indexing stopped, the rest is left out: {exc}", err=True)
            continue
        finally:
            lock.release()
        click.echo(f"{name}: indexed {done.indexed} messages in {done.seconds:.1f} s", err=True)


@click.command()
@settings_option
@_account_option
@_out_option
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=None,
    help="Parser processes (0: parse in this process). [default: mail.header_workers, at least 2]",
)
def index(
    settings_file: Path | None, accounts: tuple[str, ...], out: Path | None, workers: int | None
) -> None:
    """Index the archive for search: the messages not indexed yet (search, report and --query
    do it first when needed; a backup with index = true as it goes)."""
    from mailsync.index_run import index_archive

    settings = _load(settings_file, out)
    try:
        chosen = _archives(settings, accounts)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    n = workers if workers is not None else max(2, settings.header_workers)
    console = Console()
    for name, root in chosen:
        try:
            with ArchiveLock(root):
                done = run(index_archive(root, workers=n), settings.loop)
        except StorageError as exc:
            _fail(exc)
        rate = done.indexed / done.seconds if done.seconds > 0 else 0.0
        console.print(
            f"{name}: {done.indexed} messages indexed ({human_bytes(done.bytes)},"
            f" {done.seconds:.1f} s, {rate:.0f} msgs/s), {done.errors} with parse problems"
        )


# -- search --------------------------------------------------------------------------------------
def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M")


@click.command(epilog=SEARCH_HELP)
@settings_option
@_account_option
@_out_option
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="At most this many messages (the newest), over every archive searched.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option(
    "--output",
    type=click.Choice(["table", "json", "paths"]),
    default="table",
    show_default=True,
    help="paths: the Maildir file of each message, one a line (for xargs, grep, ...).",
)
@click.argument("query", nargs=-1)
def search(
    settings_file: Path | None,
    accounts: tuple[str, ...],
    out: Path | None,
    limit: int,
    as_json: bool,
    output: str,
    query: tuple[str, ...],
) -> None:
    """Find archived messages; newest first. ID (account:number) is what 'show' takes."""
    from mailsync.search_index import SearchIndex

    settings = _load(settings_file, out)
    text = " ".join(query)
    try:
        chosen = _archives(settings, accounts)
        catch_up(settings, chosen)
        hits = []
        for name, root in chosen:
            idx = SearchIndex(root, readonly=True)
            try:
                hits += [(name, root, h) for h in idx.search(text, name, limit)]
            finally:
                idx.close()
    except QuerySyntaxError as exc:
        _fail(exc)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except StorageError as exc:
        _fail(exc)
    hits.sort(key=lambda t: (t[2].date or 0.0, t[2].id), reverse=True)
    hits = hits[:limit]
    mode = "json" if as_json else output
    if mode == "paths":
        for _, root, h in hits:
            click.echo(str(root / h.path))
        return
    if mode == "json":
        for name, root, h in hits:
            record = {
                "id": f"{name}:{h.id}",
                "account": name,
                "date": _when(h.date) if h.date is not None else None,
                "timestamp": h.date,
                "from": h.sender,
                "subject": h.subject,
                "folder": h.folder,
                "size": h.size,
                "flags": h.flags.split(),
                "attachments": h.attachments,
                "message_id": h.message_id,
                "path": str(root / h.path),
            }
            click.echo(json.dumps(record, ensure_ascii=False))
        return
    table = new_table(title=f"{len(hits)} message(s)", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("date", no_wrap=True)
    table.add_column("from", no_wrap=True, max_width=22, overflow="ellipsis")
    table.add_column("subject", min_width=16, overflow="fold")
    table.add_column("folder", no_wrap=True, max_width=14, overflow="ellipsis")
    for name, _, h in hits:
        table.add_row(f"{name}:{h.id}", _when(h.date), _who(h.sender), h.subject, h.folder)
    Console().print(table)


def _who(sender: str) -> str:
    """The sender's name when it has one, else the address (the first sender only)."""
    first = sender.split(">, ", 1)[0]
    name, sep, _ = first.partition(" <")
    return name if sep and name else first.strip("<>")


# -- show ----------------------------------------------------------------------------------------
def _resolve(chosen: list[tuple[str, Path]], ident: str) -> tuple[str, Path, int]:
    name, sep, number = ident.rpartition(":")
    if not number.isdigit():
        raise UsageError(f"{ident!r}: an ID is account:number (as search prints it)")
    if not sep:
        if len(chosen) != 1:
            raise UsageError("several archives: give the ID as account:number")
        return chosen[0][0], chosen[0][1], int(number)
    for acct, root in chosen:
        if acct == name:
            return acct, root, int(number)
    raise UsageError(f"no archive for account {name!r}")


@click.command()
@settings_option
@_out_option
@click.option("--raw", is_flag=True, help="The message file's exact bytes.")
@click.argument("ident", metavar="ID")
def show(settings_file: Path | None, out: Path | None, raw: bool, ident: str) -> None:
    """Print one message by its ID (from search): headers and text, or --raw bytes."""
    from mailsync.core.mime import extract
    from mailsync.search_index import SearchIndex

    settings = _load(settings_file, out)
    try:
        chosen = _archives(settings, [ident.rpartition(":")[0]] if ":" in ident else [])
        name, root, number = _resolve(chosen, ident)
        idx = SearchIndex(root, readonly=True)
        try:
            hit = idx.get(number)
        finally:
            idx.close()
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except StorageError as exc:
        _fail(exc)
    if hit is None:
        _fail(UsageError(f"no message {ident} in the index"))
        return
    try:
        data = (root / hit.path).read_bytes()
    except OSError as exc:
        _fail(StorageError(f"{root / hit.path}: {exc.strerror}"))
        return
    if raw:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    doc = extract(data)
    lines = [
        f"ID:          {name}:{hit.id}",
        f"Folder:      {hit.folder}",
        f"File:        {root / hit.path}",
        f"Flags:       {hit.flags or '-'}",
        f"Date:        {_when(doc.date if doc.date is not None else hit.date)} UTC",
        f"From:        {doc.from_}",
        f"To:          {doc.to}",
    ]
    if doc.cc:
        lines.append(f"Cc:          {doc.cc}")
    lines += [f"Subject:     {doc.subject}", f"Message-ID:  {doc.message_id}"]
    for filename, ctype in doc.attachments:
        lines.append(f"Attachment:  {filename or '(no name)'} ({ctype})")
    if doc.error:
        lines.append(f"Problem:     {doc.error}")
    click.echo("\n".join(lines) + "\n\n" + _wrap(doc.body))


def _wrap(text: str, width: int = 78) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(" ".join(text.split()), width)) or "(no text)"


# -- report --------------------------------------------------------------------------------------
@click.command()
@settings_option
@_account_option
@_out_option
@click.option(
    "--query",
    default="",
    help="Only the messages this query selects (syntax: mailsync search --help).",
)
@click.option(
    "--to",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for report.html, report.md and the PNGs. [default: <out>/report]",
)
@click.option(
    "--top",
    type=click.IntRange(1, 100),
    default=15,
    show_default=True,
    help="Entries in each top-N chart and table (senders, recipients, domains, types).",
)
def report(
    settings_file: Path | None,
    accounts: tuple[str, ...],
    out: Path | None,
    query: str,
    dest: Path | None,
    top: int,
) -> None:
    """Write an HTML page (charts inline, no network), PNG charts and a Markdown summary of the
    archive: mail per month, top senders, recipients and domains, arrival heatmap, sizes,
    attachment types, folders. --query restricts it (same syntax as search)."""
    from fetchlab.mail_report import write_report
    from mailsync.insights import gather

    settings = _load(settings_file, out)
    try:
        chosen = _archives(settings, accounts)
        catch_up(settings, chosen)
        stats = gather(chosen, query, top=top)
    except QuerySyntaxError as exc:
        _fail(exc)
        return
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except StorageError as exc:
        _fail(exc)
        return
    target = dest if dest is not None else settings.out / "report"
    files = write_report(stats, target)
    click.echo(f"{stats.messages} messages, {human_bytes(stats.bytes)}: {target}")
    for f in files:
        click.echo(f"  {f}")
