"""Several accounts at once, the global connection limit, COMPRESS, and the aioimaplib transport."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.imap import FreshImapAccount, ImapCorpus
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    account_for,
    assert_archive_matches,
    mail_settings,
    run_backup,
)

pytestmark = pytest.mark.needs_dovecot


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


async def test_many_accounts_share_a_global_connection_limit(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    accounts = [
        fresh_imap_account(messages=12, seed=20 + i, folders=["INBOX", "A", "B", "C"])
        for i in range(3)
    ]
    settings = mail_settings(
        *(account_for(a.server, a.user, connections=3) for a in accounts),
        max_connections=2,  # fewer than one account alone would like: they must take turns
    )
    reports = await run_backup(settings, tmp_path)
    assert [r.account for r in reports] == [a.user for a in accounts]
    for acct, report in zip(accounts, reports, strict=True):
        assert report.ok, report.errors
        assert report.synced == 4
        assert_archive_matches(tmp_path / acct.user, acct.truth)


async def test_compress_deflate_cuts_wire_bytes(imap_corpus: ImapCorpus, tmp_path: Path) -> None:
    server = imap_corpus.server
    results = {}
    for mode in ("never", "always"):
        settings = mail_settings(account_for(server, "alice", name=mode), compress=mode)
        (report,) = await run_backup(settings, tmp_path)
        assert report.ok, report.errors
        assert_archive_matches(tmp_path / mode, imap_corpus.truth)
        results[mode] = report.wire_bytes
    assert results["never"] >= sum(r.size for r in imap_corpus.truth)
    assert results["always"] < results["never"] * 0.9, results


async def test_aioimaplib_transport_gives_the_same_archive(
    imap_corpus: ImapCorpus, tmp_path: Path
) -> None:
    settings = mail_settings(
        account_for(imap_corpus.server, "alice", name="aio"), imap_client="aioimaplib"
    )
    (report,) = await run_backup(settings, tmp_path)
    assert report.ok, report.errors
    assert report.new_messages == len(imap_corpus.truth)
    assert_archive_matches(tmp_path / "aio", imap_corpus.truth)
    (again,) = await run_backup(settings, tmp_path)
    assert again.ok and again.new_messages == 0 and again.skipped == again.folders
