"""mailsync's speed features keep the archive exact: helpers on one big folder, connect retries,
verify off the event loop -- against the real Dovecot and the delay / cut proxy."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from drivers.mail_asyncio import backup_accounts, open_account_session
from mailsync.auth import Secret
from mailsync.core import commands
from mailsync.core.options import BUDGET_FLOOR, body_budget
from mailsync.settings import AccountSettings, MailSettings
from mailsync.state import StateDB
from mailsync.transports.base import ImapSession
from mailsync.verify import verify_account
from tests.fixtures.imap import FreshImapAccount
from tests.fixtures.proxy import ProxyFactory
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    SessionHook,
    account_for,
    archive_files,
    assert_archive_matches,
    mail_settings,
    run_backup,
)

pytestmark = pytest.mark.needs_dovecot


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


class _Recorder(SessionHook):
    """A real session that remembers which body FETCHes it carried."""

    def __init__(self, inner: ImapSession, log: list[tuple[int, bytes]], ident: int) -> None:
        super().__init__(inner)
        self._log = log
        self._ident = ident

    async def before(self, first_parts: list[bytes]) -> None:
        self._log.extend((self._ident, first) for first in first_parts)


async def test_one_big_folder_is_fetched_over_every_connection(
    fresh_imap_account: FreshImapAccount, delay_proxy: ProxyFactory, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=60, seed=21, folders=["INBOX"], max_bytes=200_000)
    server = acct.server
    # a little latency, so the other connections find batches left to help with
    proxy = delay_proxy((server.host, server.port), delay_ms=15)
    log: list[tuple[int, bytes]] = []
    made: list[int] = []

    async def factory(
        account: AccountSettings, secret: Secret, settings: MailSettings, spill: Path
    ) -> ImapSession:
        made.append(len(made))
        inner = await open_account_session(account, secret, settings, spill)
        return _Recorder(inner, log, made[-1])

    settings = mail_settings(
        account_for(
            server, acct.user, name="big", port=proxy.port, connections=3, batch_messages=3
        ),
        pipeline_depth=1,
    )
    (report,) = await backup_accounts(settings, list(settings.accounts), tmp_path, factory=factory)
    assert report.ok, report.errors
    assert_archive_matches(tmp_path / "big", acct.truth)
    assert len(archive_files(tmp_path / "big")) == len(acct.truth)
    fetchers = {ident for ident, cmd in log if b"BODY.PEEK[]" in cmd}
    examiners = {ident for ident, cmd in log if cmd.startswith(b"EXAMINE")}
    assert len(fetchers) >= 2, log  # the helpers took batches of the one folder
    assert fetchers <= examiners  # ... after selecting it themselves
    # every batch was fetched once: no UID range went over two connections
    ranges = [cmd for _, cmd in log if b"BODY.PEEK[]" in cmd]
    assert len(ranges) == len(set(ranges)) == -(-len(acct.truth) // 3)
    assert report.new_messages == len(acct.truth)

    # the next run finds nothing to do, and the archive is still exact
    (again,) = await run_backup(settings, tmp_path)
    assert again.ok and again.new_messages == 0
    assert_archive_matches(tmp_path / "big", acct.truth)


async def test_a_session_times_the_link_s_round_trip_and_the_budget_follows(
    fresh_imap_account: FreshImapAccount, delay_proxy: ProxyFactory, tmp_path: Path
) -> None:
    # the body budget is sized from the fastest command round trip (options.body_budget)
    acct = fresh_imap_account(messages=1, seed=24, folders=["INBOX"])
    server = acct.server
    budgets = {}
    for delay in (0, 40):
        port = delay_proxy((server.host, server.port), delay_ms=delay).port if delay else None
        account = account_for(server, acct.user, name=f"rtt{delay}", port=port or server.port)
        settings = mail_settings(account)
        session = await open_account_session(
            account, Secret("secret"), settings, tmp_path / f"spill{delay}"
        )
        try:
            await session.execute(commands.noop())
            rtt = session.stats.fastest_round_trip
        finally:
            await session.aclose()
        assert rtt is not None
        if delay:
            assert 2 * delay / 1000 <= rtt < 2 * delay / 1000 + 0.1, rtt
        budgets[delay] = body_budget(rtt, settings.bodies_in_flight_bytes)
    assert budgets[0] == BUDGET_FLOOR  # loopback: a few ms
    assert BUDGET_FLOOR < budgets[40] < 20_000_000  # ~80 ms x 200 MB/s, below the cap


async def test_a_reset_at_connect_is_retried(
    fresh_imap_account: FreshImapAccount, delay_proxy: ProxyFactory, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=8, seed=22, folders=["INBOX"])
    server = acct.server
    # the first two connections are reset before the greeting gets through
    proxy = delay_proxy((server.host, server.port), cut_after_bytes=0, cut_connections=2)
    settings = mail_settings(
        account_for(server, acct.user, name="reset", port=proxy.port, connections=1), retries=3
    )
    (report,) = await run_backup(settings, tmp_path)
    assert report.ok, report.errors
    assert proxy.stats.cuts == 2
    assert_archive_matches(tmp_path / "reset", acct.truth)


async def test_a_wrong_password_is_not_retried(
    fresh_imap_account: FreshImapAccount,
    delay_proxy: ProxyFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acct = fresh_imap_account(messages=1, seed=23, folders=["INBOX"])
    server = acct.server
    proxy = delay_proxy((server.host, server.port))
    settings = mail_settings(account_for(server, acct.user, name="bad", port=proxy.port), retries=3)
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    (report,) = await run_backup(settings, tmp_path)
    (error,) = report.errors
    assert "login as" in error and "failed" in error
    assert proxy.stats.connections == 1


async def test_verify_reads_the_state_off_the_event_loop(
    fresh_imap_account: FreshImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    acct = fresh_imap_account(messages=6, seed=24, folders=["INBOX", "Other"])
    settings = mail_settings(account_for(acct.server, acct.user, name="v"))
    (report,) = await run_backup(settings, tmp_path)
    assert report.ok, report.errors
    loop_thread = threading.get_ident()
    threads: list[int] = []
    original = StateDB.messages

    def spy(self: StateDB, folder: str, uidvalidity: int) -> object:
        threads.append(threading.get_ident())
        return original(self, folder, uidvalidity)

    monkeypatch.setattr(StateDB, "messages", spy)
    result = await verify_account(settings.accounts[0], settings, tmp_path)
    assert result.ok and result.checked == len(acct.truth)
    assert threads and loop_thread not in threads
