"""Shared helpers for the mailsync integration tests (real Dovecot, real files)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drivers.mail_asyncio import AccountReport, backup_accounts
from mailsync.core.flow import Command, CommandResult
from mailsync.layout import INTERNAL_DIR, state_path
from mailsync.settings import AccountSettings, MailSettings
from mailsync.transports.base import ImapSession, TransportStats
from testbed.corpus import TruthRecord
from testbed.dovecot import DovecotServer

__all__ = [
    "PASSWORD_ENV",
    "SessionHook",
    "account_for",
    "archive_files",
    "assert_archive_matches",
    "mail_settings",
    "run_backup",
    "state_rows",
]

PASSWORD_ENV = "MAILSYNC_TEST_PASSWORD"


def account_for(
    server: DovecotServer,
    user: str,
    *,
    name: str | None = None,
    port: int | None = None,
    security: str = "plain",
    **extra: Any,
) -> AccountSettings:
    return AccountSettings(
        name=name or user,
        host=server.host,
        port=port if port is not None else server.port,
        security=security,  # type: ignore[arg-type]
        username=user,
        password_env=PASSWORD_ENV,
        **extra,
    )


def mail_settings(*accounts: AccountSettings, **extra: Any) -> MailSettings:
    # inline header parsing by default: a process pool per test costs more than it shows
    extra.setdefault("header_workers", 0)
    extra.setdefault("timeout", 20.0)
    return MailSettings(accounts=accounts, **extra)


async def run_backup(settings: MailSettings, out: Path) -> list[AccountReport]:
    return await backup_accounts(settings, list(settings.accounts), out)


def state_rows(root: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(state_path(root))
    db.row_factory = sqlite3.Row
    try:
        return list(db.execute("SELECT * FROM messages ORDER BY folder, uidvalidity, uid"))
    finally:
        db.close()


def archive_files(root: Path) -> list[Path]:
    """Every message file in new/ and cur/; asserts that no tmp/ holds a leftover."""
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = os.path.basename(dirpath)
        if base == "tmp":
            assert not filenames, f"partial files left in {dirpath}: {filenames}"
        if base in ("new", "cur"):
            files += [Path(dirpath) / f for f in filenames]
        dirnames[:] = [d for d in dirnames if d not in (".spill", INTERNAL_DIR)]
    return files


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_archive_matches(root: Path, truth: list[TruthRecord]) -> None:
    """Every server message exactly once, byte-identical, with its date and state row."""
    rows = {(r["folder"], r["uidvalidity"], r["uid"]): r for r in state_rows(root)}
    files = archive_files(root)
    # exactly once: one file per (uidvalidity, uid) in each folder
    per_key = Counter((f.parent.parent, f.name.split(":")[0]) for f in files)
    assert all(n == 1 for n in per_key.values()), [k for k, n in per_key.items() if n > 1]
    for rec in truth:
        row = rows.get((rec.folder, rec.uidvalidity, rec.uid))
        assert row is not None, f"{rec.folder} uid {rec.uid} not in the state"
        assert row["size"] == rec.size
        assert row["sha256"] == rec.sha256, f"{rec.folder} uid {rec.uid}: state SHA differs"
        path = root / row["path"]
        assert _sha(path) == rec.sha256, f"{path}: bytes differ from the server"
        assert int(path.stat().st_mtime) == int(rec.internaldate.timestamp())
        assert not row["deleted_on_server"]


class SessionHook:
    """A real session that runs :meth:`before` on every command batch, then sends it as is.

    Tests subclass it to act at a precise moment of the protocol (delete a folder just before
    EXAMINE, record which connection carried which FETCH) without faking any server bytes.
    """

    def __init__(self, inner: ImapSession) -> None:
        self._inner = inner
        self.capabilities = inner.capabilities
        self.compressed = inner.compressed
        self.stats: TransportStats = inner.stats

    async def before(self, first_parts: list[bytes]) -> None:
        """Called with the first part of each command of the batch."""

    async def execute(self, command: Command) -> CommandResult:
        return (await self.pipeline([command]))[0]

    async def pipeline(self, commands: Sequence[Command]) -> list[CommandResult]:
        await self.before([cmd if isinstance(cmd, bytes) else cmd[0] for cmd in commands])
        return await self._inner.pipeline(commands)

    async def aclose(self) -> None:
        await self._inner.aclose()
