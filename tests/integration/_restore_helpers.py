"""Helpers of the export / restore tests: archives compared as multisets, a source archive."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from drivers.dispatch import run_backup
from foundation.frozen import replace
from foundation.mode import Mode
from mailsync.core.parser import parse_internaldate
from mailsync.settings import AccountSettings, MailSettings
from tests.integration._mailsync_helpers import state_rows

__all__ = ["archive_multiset", "backup"]


def backup(settings: MailSettings, account: AccountSettings, out: Path) -> None:
    """Back up ``account`` (asyncio) and insist it worked."""
    one = replace(settings, accounts=(account,), mode=Mode.ASYNCIO)
    (report,) = run_backup(one, [account], out)
    assert report.ok, report.errors


def archive_multiset(root: Path) -> Counter[tuple[str, str, tuple[str, ...], float]]:
    """(folder, SHA-256, flags, INTERNALDATE instant) of every message on the server at the
    archive's last backup, counted."""
    out: Counter[tuple[str, str, tuple[str, ...], float]] = Counter()
    for row in state_rows(root):
        if row["deleted_on_server"]:
            continue
        when = parse_internaldate(row["internaldate"]).timestamp()
        flags = tuple(sorted(row["flags"].split()))
        out[(row["folder"], row["sha256"], flags, when)] += 1
    return out
