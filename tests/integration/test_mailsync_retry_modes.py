"""One retry policy in every mode (:mod:`mailsync.core.retry`), against the real Dovecot behind the
test-bed proxy: a server that is not up yet, a wrong password, a connection cut mid-folder.

The proxy counts the TCP connections each mode opens, so "retried" and "not retried" are
measured on the wire, not read back from the code under test. Backoff is shortened through the
settings (a few tens of ms) to keep the whole grid near a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivers.dispatch import run_backup
from foundation.frozen import replace
from foundation.mode import Mode
from mailsync.report import AccountReport
from mailsync.settings import AccountSettings
from tests.fixtures.imap import FreshImapAccount
from tests.fixtures.proxy import ProxyFactory
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    account_for,
    archive_files,
    assert_archive_matches,
    mail_settings,
)

pytestmark = pytest.mark.needs_dovecot

FAST_BACKOFF: dict[str, Any] = {"retries": 3, "retry_delay": 0.05, "retry_max_delay": 0.2}


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def _backup(mode: Mode, account: AccountSettings, out: Path, **extra: Any) -> AccountReport:
    settings = mail_settings(account, **{**FAST_BACKOFF, **extra})
    settings = replace(settings, mode=mode)
    (report,) = run_backup(settings, list(settings.accounts), out)
    return report


def test_a_server_not_up_yet_is_waited_for(
    mode: Mode, fresh_imap_account: FreshImapAccount, delay_proxy: ProxyFactory, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=6, seed=31, folders=["INBOX", "Sent"])
    server = acct.server
    # the first two connections are reset before the greeting: the server "is not up yet"
    proxy = delay_proxy((server.host, server.port), cut_after_bytes=0, cut_connections=2)
    account = account_for(server, acct.user, name="late", port=proxy.port, connections=1)
    report = _backup(mode, account, tmp_path)
    assert report.ok, report.errors
    assert proxy.stats.cuts == 2
    assert report.retries == 2
    # the third attempt listed the folders; the processes mode's worker then opens its own
    assert proxy.stats.connections == 3 + (mode == Mode.PROCESSES)
    assert_archive_matches(tmp_path / "late", acct.truth)


def test_a_server_that_never_comes_up_fails_the_account_after_the_retries(
    mode: Mode, fresh_imap_account: FreshImapAccount, delay_proxy: ProxyFactory, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=1, seed=32, folders=["INBOX"])
    server = acct.server
    proxy = delay_proxy((server.host, server.port), cut_after_bytes=0)  # every connection
    account = account_for(server, acct.user, name="down", port=proxy.port, connections=1)
    report = _backup(mode, account, tmp_path, retries=2)
    (error,) = report.errors
    assert error.startswith("account down: ") and error.endswith("(gave up after 3 tries)")
    assert proxy.stats.connections == 3 and report.retries == 2
    assert archive_files(tmp_path / "down") == []


def test_a_wrong_password_is_one_error_and_one_connection(
    mode: Mode,
    fresh_imap_account: FreshImapAccount,
    delay_proxy: ProxyFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acct = fresh_imap_account(messages=1, seed=33, folders=["INBOX"])
    server = acct.server
    proxy = delay_proxy((server.host, server.port))
    account = account_for(server, acct.user, name="pw", port=proxy.port, connections=2)
    monkeypatch.setenv(PASSWORD_ENV, "wrong-secret")
    report = _backup(mode, account, tmp_path)
    # the same words in every mode: the account, the user and the server's answer with its code
    assert report.errors == [
        f"account pw: login as {acct.user} failed: NO [AUTHENTICATIONFAILED] Authentication failed."
    ]
    assert proxy.stats.connections == 1 and report.retries == 0
    assert archive_files(tmp_path / "pw") == []


def test_a_connection_cut_mid_folder_is_reopened_and_the_archive_is_exact(
    mode: Mode, fresh_imap_account: FreshImapAccount, delay_proxy: ProxyFactory, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=24, seed=34, folders=["INBOX", "Big"], max_bytes=2_000_000)
    server = acct.server
    # the first three connections die after 300 KB from the server: inside the body FETCHes
    proxy = delay_proxy((server.host, server.port), cut_after_bytes=300_000, cut_connections=3)
    account = account_for(
        server, acct.user, name="cut", port=proxy.port, connections=2, batch_messages=3
    )
    report = _backup(mode, account, tmp_path, retries=5)
    assert report.ok, report.errors
    assert proxy.stats.cuts >= 1 and report.retries >= 1
    assert_archive_matches(tmp_path / "cut", acct.truth)
    assert report.new_messages == len(acct.truth)
