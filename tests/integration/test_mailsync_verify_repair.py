"""``verify`` tells the truth and a backup rerun repairs what it found, in every mode: excluded
folders are not reported missing, a missing file is reported once (not again by --deep), a stray
file in cur/ is reported, and the next backup fetches a missing or damaged file again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drivers.dispatch import run_backup
from foundation.frozen import replace
from foundation.mode import Mode
from mailsync.verify import verify_account
from tests.fixtures.imap import FreshImapAccount
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    account_for,
    assert_archive_matches,
    mail_settings,
    state_rows,
)


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


@pytest.mark.needs_dovecot
def test_verify_reports_once_and_a_rerun_repairs(
    mode: Mode, fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=15, seed=6, folders=["INBOX", "Work", "Junk"])
    account = account_for(acct.server, acct.user, exclude=("Junk",))
    settings = replace(mail_settings(account), mode=mode)
    (first,) = run_backup(settings, [account], tmp_path)
    assert first.ok, first.errors
    clean = asyncio.run(verify_account(account, settings, tmp_path, deep=True))
    assert clean.ok, (clean.missing, clean.extra, clean.mismatched, clean.errors)

    root = tmp_path / account.name
    work = sorted((r for r in state_rows(root) if r["folder"] == "Work"), key=lambda r: r["uid"])
    assert len(work) >= 2
    gone, hurt = work[0], work[1]
    (root / gone["path"]).unlink()
    (root / hurt["path"]).write_bytes(b"damaged\r\n")
    stray = (root / gone["path"]).parent / "stray-file"
    stray.write_bytes(b"not a message\r\n")

    found = asyncio.run(verify_account(account, settings, tmp_path, deep=True))
    assert found.missing == [f"{account.name}/Work uid {gone['uid']}"]  # once, not twice
    assert [m.split(":")[0] for m in found.mismatched] == [f"{account.name}/Work uid {hurt['uid']}"]
    assert [e for e in found.extra if "stray-file" in e]
    stray.unlink()

    (second,) = run_backup(settings, [account], tmp_path)
    assert second.ok, second.errors
    truth = [t for t in acct.truth if t.folder != "Junk"]
    assert_archive_matches(root, truth)
    again = asyncio.run(verify_account(account, settings, tmp_path, deep=True))
    assert again.ok, (again.missing, again.extra, again.mismatched, again.errors)
