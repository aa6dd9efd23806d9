"""A folder renamed away on the server and back (same UIDVALIDITY, same STATUS) must not keep
its messages marked deleted: backup called it unchanged, ``folders`` showed "archived 0 /
deleted N" and verify said nothing. Every mode."""

from __future__ import annotations

import imaplib
from pathlib import Path

import pytest

from drivers.dispatch import run_backup
from foundation.frozen import replace
from foundation.mode import Mode
from tests.fixtures.imap import FreshImapAccount, ImapAccount
from tests.integration._mailsync_helpers import PASSWORD_ENV, account_for, mail_settings, state_rows


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def _rename(acct: ImapAccount, old: str, new: str) -> None:
    with imaplib.IMAP4(acct.server.host, acct.server.port, timeout=30) as client:
        client.login(acct.user, acct.password)
        typ, data = client.rename(old, new)
        assert typ == "OK", data


@pytest.mark.needs_dovecot
def test_folder_renamed_away_and_back_is_not_deleted(
    mode: Mode, fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=12, seed=3, folders=["INBOX", "Work"])
    account = account_for(acct.server, acct.user)
    settings = replace(mail_settings(account), mode=mode)
    (first,) = run_backup(settings, [account], tmp_path)
    assert first.ok, first.errors
    root = tmp_path / account.name
    work = {r["uid"] for r in state_rows(root) if r["folder"] == "Work"}
    assert work
    _rename(acct, "Work", "Elsewhere")
    (away,) = run_backup(settings, [account], tmp_path)
    assert away.ok, away.errors
    assert all(r["deleted_on_server"] for r in state_rows(root) if r["folder"] == "Work")
    _rename(acct, "Elsewhere", "Work")
    (back,) = run_backup(settings, [account], tmp_path)
    assert back.ok, back.errors
    rows = [r for r in state_rows(root) if r["folder"] == "Work"]
    assert {r["uid"] for r in rows} == work  # nothing fetched twice
    assert not [r["uid"] for r in rows if r["deleted_on_server"]]
    assert all(r["deleted_on_server"] for r in state_rows(root) if r["folder"] == "Elsewhere")
