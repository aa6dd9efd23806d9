"""Compare an archive with the server: every server message present, right size, right bytes.

``verify`` lists each folder's (UIDVALIDITY, UID, RFC822.SIZE) and checks the state DB and the
Maildir file of each; ``deep`` also fetches every body again and compares SHA-256 with the state
and with the file on disk. ``folders`` lists server folders with counts next to the archive's.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from foundation.errors import ImapCommandError, MailError, StorageError
from mailsync.core import commands
from mailsync.core.flow import code_int, match_folder
from mailsync.core.parser import FetchResp, ListResp, StatusResp
from mailsync.layout import ArchiveLock, existing_state
from mailsync.settings import AccountSettings, MailSettings
from mailsync.state import MessageRow, StateDB
from mailsync.store import SpilledLiteral
from mailsync.transports.base import ImapSession
from mailsync.transports.factory import SessionFactory, open_account_session

__all__ = ["FolderInfo", "VerifyReport", "list_folders", "verify_account"]


@dataclass
class VerifyReport:
    account: str
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.mismatched or self.errors)


@dataclass(frozen=True)
class FolderInfo:
    name: str
    messages: int | None
    archived: int
    deleted_on_server: int


def _sha_file(path: Path) -> str | None:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()
    except FileNotFoundError:
        return None


async def _list(session: ImapSession) -> list[ListResp]:
    res = await session.execute(commands.list_all())
    if not res.ok:
        raise ImapCommandError("LIST", res.tagged.status, res.tagged.text)
    return [
        r
        for r in res.untagged
        if isinstance(r, ListResp)
        and not any(f.lower() in ("\\noselect", "\\nonexistent") for f in r.flags)
    ]


async def _open(
    account: AccountSettings, settings: MailSettings, root: Path, factory: SessionFactory
) -> ImapSession:
    from mailsync.auth import get_secret

    # a password_command runs a process: not on the event loop
    secret = await asyncio.to_thread(get_secret, account)
    return await factory(account, secret, settings, root / ".spill")


async def verify_account(
    account: AccountSettings,
    settings: MailSettings,
    out: Path,
    *,
    deep: bool = False,
    factory: SessionFactory = open_account_session,
) -> VerifyReport:
    """Raises :class:`~foundation.errors.StorageError` (no report) when the archive cannot be
    read: its state DB does not open, or a backup holds it
    (:class:`~mailsync.layout.ArchiveBusyError`)."""
    report = VerifyReport(account.name)
    root = out / account.name
    path = existing_state(root)
    if path is None:
        report.errors.append(f"{account.name}: no archive at {root}")
        return report
    # SQLite calls block (disk, locks): they run in worker threads, never on the event loop
    lock = ArchiveLock(root, shared=True)  # a backup writing meanwhile would show "missing"
    await asyncio.to_thread(lock.acquire)
    try:
        state = await asyncio.to_thread(StateDB, path)
    except BaseException:
        lock.release()
        raise
    try:
        session = await _open(account, settings, root, factory)
        try:
            for folder in await _list(session):
                if not match_folder(
                    folder.name, folder.delimiter, account.include, account.exclude
                ):
                    continue  # excluded from backups: not expected in the archive
                try:
                    await _verify_folder(session, state, root, folder, deep, report, settings)
                except ImapCommandError as exc:
                    report.errors.append(f"{account.name}/{folder.name}: {exc}")
        finally:
            await session.aclose()
    except (MailError, StorageError) as exc:
        report.errors.append(f"{account.name}: {exc}")
    finally:
        await asyncio.to_thread(state.close)
        lock.release()
    return report


async def _verify_folder(
    session: ImapSession,
    state: StateDB,
    root: Path,
    folder: ListResp,
    deep: bool,
    report: VerifyReport,
    settings: MailSettings,
) -> None:
    name = folder.name
    res = await session.execute(commands.examine(folder.raw_name))
    if not res.ok:
        raise ImapCommandError("EXAMINE", res.tagged.status, res.tagged.text)
    uidvalidity = next(
        (v for r in (*res.untagged, res.tagged) if (v := code_int(r, "UIDVALIDITY")) is not None),
        None,
    )
    listing = await session.execute(commands.uid_fetch_meta("1:*"))
    server = {
        r.uid: r.size
        for r in listing.untagged
        if isinstance(r, FetchResp) and r.uid is not None and r.size is not None
    }
    rows: dict[int, MessageRow] = (
        await asyncio.to_thread(state.messages, name, uidvalidity) if uidvalidity else {}
    )
    where = f"{report.account}/{name}"
    damaged = await asyncio.to_thread(_compare, server, rows, root, where, report)
    if deep and server:
        # a file already reported (missing, or the wrong size) is not reported again
        fine = {uid: row for uid, row in rows.items() if uid not in damaged}
        damaged |= await _deep(session, root, fine, sorted(server), where, report, settings)
    known = await asyncio.to_thread(state.folder_paths, name)
    await asyncio.to_thread(_strays, root, known, rows, where, report)
    if damaged and uidvalidity:
        await asyncio.to_thread(state.mark_damaged, name, uidvalidity, damaged)


def _compare(
    server: dict[int, int],
    rows: dict[int, MessageRow],
    root: Path,
    where: str,
    report: VerifyReport,
) -> set[int]:
    """Report missing and mis-sized messages; returns the UIDs whose row exists but whose file
    is missing or damaged (the next backup fetches them again)."""
    damaged: set[int] = set()
    for uid, size in sorted(server.items()):
        report.checked += 1
        row = rows.get(uid)
        path = root / row.path if row is not None else None
        if row is None or path is None or not path.exists():
            report.missing.append(f"{where} uid {uid}")
            if row is not None:
                damaged.add(uid)
        elif row.size != size or os.path.getsize(path) != size:
            on_disk = os.path.getsize(path)
            report.mismatched.append(
                f"{where} uid {uid}: size {size} on server, {row.size} in the state,"
                f" {on_disk} on disk"
            )
            damaged.add(uid)
    for uid, row in rows.items():
        if uid not in server and not row.deleted_on_server:
            report.extra.append(f"{where} uid {uid} (not on the server, not marked deleted)")
    return damaged


def _strays(
    root: Path, known: set[str], rows: dict[int, MessageRow], where: str, report: VerifyReport
) -> None:
    """Files in the folder's Maildir (cur/, new/) that no state row names."""
    folders = {Path(r.path).parent.parent for r in rows.values()}
    for maildir in sorted(folders):
        for sub in ("cur", "new"):
            base = root / maildir / sub
            if not base.is_dir():
                continue
            for entry in sorted(base.iterdir()):
                rel = str(entry.relative_to(root))
                if entry.is_file() and rel not in known:
                    report.extra.append(f"{where}: stray file {rel} (no state row names it)")


async def _deep(
    session: ImapSession,
    root: Path,
    rows: dict[int, MessageRow],
    uids: Sequence[int],
    where: str,
    report: VerifyReport,
    settings: MailSettings,
) -> set[int]:
    """Compare every body's SHA-256; returns the UIDs whose file differs from the server."""
    damaged: set[int] = set()
    batch = 100
    for i in range(0, len(uids), batch):
        res = await session.execute(commands.uid_fetch_bodies(uids[i : i + batch]))
        for r in res.untagged:
            if not isinstance(r, FetchResp) or r.uid is None or r.body is None:
                continue
            if isinstance(r.body, SpilledLiteral):
                digest = r.body.sha256
                r.body.path.unlink(missing_ok=True)
            elif isinstance(r.body, bytes):
                digest = hashlib.sha256(r.body).hexdigest()
            else:
                continue
            row = rows.get(r.uid)
            if row is None or not (root / row.path).exists():
                continue  # already reported: each problem once
            if row.sha256 != digest:
                report.mismatched.append(f"{where} uid {r.uid}: SHA-256 differs from the state")
                damaged.add(r.uid)
            elif await asyncio.to_thread(_sha_file, root / row.path) != digest:
                report.mismatched.append(f"{where} uid {r.uid}: file bytes differ from the server")
                damaged.add(r.uid)
    return damaged


def _counts(root: Path) -> dict[str, tuple[int, int]]:
    path = existing_state(root)
    if path is None:
        return {}
    with ArchiveLock(root, shared=True):
        state = StateDB(path)
        try:
            return state.counts()
        finally:
            state.close()


async def list_folders(
    account: AccountSettings,
    settings: MailSettings,
    out: Path,
    *,
    factory: SessionFactory = open_account_session,
) -> list[FolderInfo]:
    root = out / account.name
    counts = await asyncio.to_thread(_counts, root)
    session = await _open(account, settings, root, factory)
    try:
        folders = await _list(session)
        condstore = "CONDSTORE" in session.capabilities
        results = await session.pipeline(
            [commands.status(f.raw_name, condstore=condstore) for f in folders]
        )
    finally:
        await session.aclose()
    status: dict[bytes, int | None] = {}
    for res in results:
        for r in res.untagged:
            if isinstance(r, StatusResp):
                status[r.raw_name] = r.items.get("MESSAGES")
    return [
        FolderInfo(f.name, status.get(f.raw_name), *counts.get(f.name, (0, 0))) for f in folders
    ]
