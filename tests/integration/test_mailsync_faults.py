"""mailsync under bad input and faults, against the real Dovecot (and the cutting proxy)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from drivers.mail_asyncio import backup_accounts, open_account_session
from foundation.frozen import Invalid
from mailsync.auth import Secret
from mailsync.settings import AccountSettings, MailSettings
from mailsync.transports.base import ImapSession
from testbed._proc import free_port
from testbed.corpus import generate_corpus
from testbed.dovecot import DovecotServer
from testbed.imap_load import create_folder, delete_folder, load_corpus
from tests.fixtures.imap import FreshImapAccount, ImapCorpus
from tests.fixtures.proxy import ProxyFactory
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    SessionHook,
    account_for,
    assert_archive_matches,
    mail_settings,
    run_backup,
)

pytestmark = pytest.mark.needs_dovecot


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


async def test_wrong_password_names_the_account(
    imap_corpus: ImapCorpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong-secret")
    settings = mail_settings(account_for(imap_corpus.server, imap_corpus.user, name="pw"))
    (report,) = await run_backup(settings, tmp_path)
    assert not report.ok
    (error,) = report.errors
    assert error.startswith("account pw: login as alice failed: NO")
    assert "wrong-secret" not in error


async def test_missing_password_source(imap_corpus: ImapCorpus, tmp_path: Path) -> None:
    acct = AccountSettings(
        name="nopw",
        host="127.0.0.1",
        port=imap_corpus.server.port,
        security="plain",
        username="alice",
    )
    (report,) = await run_backup(mail_settings(acct), tmp_path)
    assert report.errors == [
        "account nopw: no password source (set password_env or password_command)"
    ]


async def test_password_command(imap_corpus: ImapCorpus, tmp_path: Path) -> None:
    acct = AccountSettings(
        name="cmd",
        host="127.0.0.1",
        port=imap_corpus.server.port,
        security="plain",
        username="alice",
        password_command="printf 'secret\\nignored'",
    )
    (report,) = await run_backup(mail_settings(acct), tmp_path)
    assert report.ok, report.errors
    assert report.new_messages == len(imap_corpus.truth)


async def test_connection_refused(imap_corpus: ImapCorpus, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    settings = mail_settings(
        account_for(imap_corpus.server, "alice", name="refused", port=port), retry_delay=0.01
    )
    (report,) = await run_backup(settings, tmp_path)
    assert report.errors == [
        f"account refused: 127.0.0.1:{port}: connection refused (gave up after 5 tries)"
    ]
    assert report.retries == 4


def test_plain_text_to_a_remote_host_is_refused_by_settings() -> None:
    with pytest.raises(Invalid, match="sends the password unencrypted"):
        AccountSettings(name="x", host="imap.example.org", port=143, security="plain", username="u")
    ok = AccountSettings(
        name="x",
        host="imap.example.org",
        port=143,
        security="plain",
        username="u",
        allow_plain=True,
    )
    assert ok.allow_plain


async def test_tls_untrusted_by_default_then_ca_file_or_opt_out(
    imap_corpus: ImapCorpus, tmp_path: Path
) -> None:
    server = imap_corpus.server
    untrusted = account_for(server, "alice", name="tls", port=server.tls_port, security="tls")
    (report,) = await run_backup(mail_settings(untrusted), tmp_path / "a")
    (error,) = report.errors
    assert "TLS certificate not trusted" in error and "ca_file" in error
    assert report.new_messages == 0

    for acct in (
        account_for(
            server,
            "alice",
            name="tls",
            port=server.tls_port,
            security="tls",
            ca_file=server.ca_cert,
        ),
        account_for(
            server, "alice", name="tls", port=server.tls_port, security="tls", verify_tls=False
        ),
        account_for(server, "alice", name="tls", security="starttls", ca_file=server.ca_cert),
    ):
        out = tmp_path / f"{acct.security}-{acct.verify_tls}"
        (ok,) = await run_backup(mail_settings(acct, compress="always"), out)
        assert ok.ok, ok.errors
        assert_archive_matches(out / "tls", imap_corpus.truth)


@pytest.mark.parametrize("spill", [8 * 1024 * 1024, 4096], ids=["memory", "spilled"])
async def test_cut_mid_fetch_reconnects_and_resumes(
    spill: int, fresh_imap_account: FreshImapAccount, delay_proxy: ProxyFactory, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=40, seed=11, folders=["INBOX", "Big"], max_bytes=4_000_000)
    server = acct.server
    # the first three connections die after 600 KB from the server: inside the body FETCHes
    proxy = delay_proxy((server.host, server.port), cut_after_bytes=600_000, cut_connections=3)
    settings = mail_settings(
        account_for(
            server, acct.user, name="cut", port=proxy.port, connections=2, batch_messages=4
        ),
        retries=5,
        spill_threshold=spill,
    )
    (report,) = await run_backup(settings, tmp_path)
    assert report.ok, report.errors
    assert proxy.stats.cuts >= 1
    assert_archive_matches(tmp_path / "cut", acct.truth)
    spill_dir = tmp_path / "cut" / ".spill"  # no partial or orphaned literal left behind
    assert not spill_dir.exists() or os.listdir(spill_dir) == []
    # nothing was fetched twice into the archive: one row per message
    assert report.new_messages >= len(acct.truth)


class _DeleteBeforeExamine(SessionHook):
    """A real session that deletes ``folder`` on the server just before EXAMINE reaches it."""

    def __init__(self, inner: ImapSession, server: DovecotServer, user: str, folder: str) -> None:
        super().__init__(inner)
        self._user = user
        self._folder = folder
        self._server = server

    async def before(self, first_parts: list[bytes]) -> None:
        for first in first_parts:
            if first.startswith(b"EXAMINE") and self._folder.encode() in first:
                await asyncio.to_thread(delete_folder, self._server, self._user, self._folder)


async def test_folder_deleted_between_list_and_examine(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=10, seed=5, folders=["INBOX"])
    create_folder(acct.server, acct.user, "Doomed")

    async def factory(
        account: AccountSettings, secret: Secret, settings: MailSettings, spill: Path
    ) -> ImapSession:
        inner = await open_account_session(account, secret, settings, spill)
        return _DeleteBeforeExamine(inner, acct.server, acct.user, "Doomed")

    settings = mail_settings(account_for(acct.server, acct.user, name="gone", connections=1))
    (report,) = await backup_accounts(settings, list(settings.accounts), tmp_path, factory=factory)
    assert report.ok, report.errors
    assert any("gone/Doomed: folder gone from the server" in w for w in report.warnings)
    assert_archive_matches(tmp_path / "gone", acct.truth)


async def test_large_messages_stream_to_disk(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=15, seed=2, folders=["INBOX"], max_bytes=3_000_000)
    assert max(t.size for t in acct.truth) > 4096
    settings = mail_settings(
        account_for(acct.server, acct.user, name="spill"), spill_threshold=4096
    )
    (report,) = await run_backup(settings, tmp_path)
    assert report.ok, report.errors
    assert_archive_matches(tmp_path / "spill", acct.truth)
    assert os.listdir(tmp_path / "spill" / ".spill") == []


async def test_authenticate_plain_and_odd_passwords(
    fresh_imap_account: FreshImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    acct = fresh_imap_account(messages=5, seed=4, folders=["INBOX"])
    # a password with quotes, a backslash and non-ASCII: LOGIN must send it as a literal
    odd = 'p"w\\ örd'
    acct.server.add_user("oddpw", odd)
    truth = load_corpus(
        acct.server, "oddpw", generate_corpus(messages=5, seed=4, folders=["INBOX"])
    )
    monkeypatch.setenv(PASSWORD_ENV, odd)
    for auth in ("login", "plain"):
        settings = mail_settings(account_for(acct.server, "oddpw", name=auth, auth=auth))
        (report,) = await run_backup(settings, tmp_path)
        assert report.ok, (auth, report.errors)
        assert_archive_matches(tmp_path / auth, truth)
