"""Server limits during a restore, on a Dovecot of their own: a storage quota (NO [OVERQUOTA])
is waited on with the backoff, then ends the run with a clear message and nothing sent twice;
a per-user connection cap leaves the restore to the connections the server accepted."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.mail_restore import RestoreSpec, run_restore
from foundation.errors import TestbedError
from foundation.mode import Mode
from mailsync.restore_state import restore_db_path
from testbed.dovecot import DovecotServer, start_dovecot
from testbed.imap_load import ImapSession
from tests.fixtures._fail import testbed_unavailable
from tests.fixtures.imap import FreshImapAccount
from tests.integration._mailsync_helpers import PASSWORD_ENV, account_for, mail_settings
from tests.integration._restore_helpers import archive_multiset, backup

pytestmark = pytest.mark.needs_dovecot

FAST_BACKOFF = {"retries": 2, "retry_delay": 0.05, "retry_max_delay": 0.1}


@pytest.fixture(scope="module")
def limited_dovecot() -> Iterator[DovecotServer]:
    """User "small"; every user a 1 MB quota and at most 2 connections."""
    workdir = Path(tempfile.mkdtemp(prefix="fetchlab-dovecot-limits-"))
    try:
        server = start_dovecot(
            workdir,
            users={"small": "secret"},
            compress=False,
            quota_kb=1000,
            max_user_connections=2,
        )
    except TestbedError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        testbed_unavailable(exc)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def test_overquota_backs_off_then_stops_with_a_clear_message(
    limited_dovecot: DovecotServer, fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    src = fresh_imap_account(messages=40, seed=61, max_bytes=4_000_000, folders=["INBOX"])
    source = account_for(src.server, src.user, name="src")
    target = account_for(limited_dovecot, "small", name="small", batch_messages=4)
    settings = mail_settings(source, target, **FAST_BACKOFF)
    archive = tmp_path / "archive"
    backup(settings, source, archive)
    report = run_restore(settings, RestoreSpec(archive / "src", "small"))
    assert not report.ok
    (error,) = report.errors
    assert "OVERQUOTA" in error and "rerun" in error, error
    assert report.retries == FAST_BACKOFF["retries"]  # each pause counted, then it gave up
    assert 0 < report.appended < 40

    # what the table calls done is exactly what the server holds; a rerun sends nothing twice
    # (it may fit a smaller batch into what is left of the quota)
    again = run_restore(settings, RestoreSpec(archive / "src", "small"))
    assert not again.ok and again.already == report.appended
    stored = report.appended + again.appended
    backup(settings, target, archive)
    held = archive_multiset(archive / "small")
    assert sum(held.values()) == stored and max(held.values()) == 1
    db = sqlite3.connect(restore_db_path(archive / "src"))
    done = db.execute("SELECT COUNT(*) FROM restored WHERE state='done'").fetchone()[0]
    db.close()
    assert done == stored


@pytest.mark.parametrize("mode", [Mode.ASYNCIO, Mode.THREADS])
def test_a_connection_cap_leaves_the_work_to_the_accepted_connections(
    mode: Mode,
    limited_dovecot: DovecotServer,
    fresh_imap_account: FreshImapAccount,
    tmp_path: Path,
) -> None:
    src = fresh_imap_account(
        messages=40, seed=62, max_bytes=600_000, folders=["INBOX", "A", "B", "C", "D"]
    )
    source = account_for(src.server, src.user, name="src")
    # 5 connections wanted, 2 allowed
    user = f"capped-{mode.value}"
    limited_dovecot.add_user(user, "secret")
    target = account_for(limited_dovecot, user, name="capped", connections=5, batch_messages=2)
    settings = mail_settings(source, target, mode=mode, **FAST_BACKOFF)
    archive = tmp_path / "archive"
    backup(settings, source, archive)
    # another client (a phone, say) holds one of the two: the restore gets one connection
    # (Dovecot counts established sessions, so logins at the same instant could all pass)
    with ImapSession(limited_dovecot, user):
        report = run_restore(settings, RestoreSpec(archive / "src", "capped"))
    assert report.ok, report.errors
    assert report.appended + report.already == 40
    assert any("refused" in w and "LIMIT" in w for w in report.warnings), report.warnings
    backup(settings, target, archive)
    assert archive_multiset(archive / "capped") == archive_multiset(archive / "src")


def test_a_capped_first_connection_is_waited_for(
    limited_dovecot: DovecotServer, fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    """Both of the user's connections are taken (say, a phone and a laptop): the restore's
    login is answered NO [LIMIT], waited on with the backoff, and goes through once one ends."""
    src = fresh_imap_account(messages=5, seed=63, max_bytes=100_000, folders=["INBOX"])
    source = account_for(src.server, src.user, name="src")
    limited_dovecot.add_user("busy", "secret")
    target = account_for(limited_dovecot, "busy", name="busy", connections=1)
    backoff = {"retries": 8, "retry_delay": 0.1, "retry_max_delay": 0.4}
    settings = mail_settings(source, target, **backoff)
    archive = tmp_path / "archive"
    backup(settings, source, archive)
    phone = ImapSession(limited_dovecot, "busy")
    laptop = ImapSession(limited_dovecot, "busy")
    timer = threading.Timer(0.5, laptop.close)
    timer.start()
    try:
        report = run_restore(settings, RestoreSpec(archive / "src", "busy"))
    finally:
        timer.join()
        phone.close()
    assert report.ok, report.errors
    assert report.appended == 5 and report.retries >= 1
