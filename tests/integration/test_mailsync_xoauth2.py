"""mailsync with ``auth = "xoauth2"`` against a real Dovecot whose oauth2 passdb asks a real
RFC 7662 introspection server (tests/fixtures/oauth.py): the token comes from
``oauth_token_command`` or ``password_env``, every mode archives the corpus byte for byte, and a
refused token is one clear line naming the account, with the token nowhere in output or logs."""

from __future__ import annotations

import base64
import json
import logging
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from drivers.dispatch import run_backup
from drivers.mail_asyncio import backup_accounts, open_account_session
from fetchlab.mail_cli import main
from foundation.errors import TestbedError, UsageError
from foundation.frozen import replace
from foundation.mode import Mode
from mailsync.auth import Secret
from mailsync.layout import state_path
from mailsync.settings import AccountSettings, MailSettings
from mailsync.transports.base import ImapSession
from testbed._oauth import IntrospectionServer
from testbed._proc import free_port
from testbed.dovecot import start_dovecot
from tests.fixtures._fail import testbed_unavailable
from tests.fixtures.oauth import OAUTH_REVOKED_TOKEN, OAUTH_TOKEN, OAUTH_USER, OAuthImap
from tests.integration._mailsync_helpers import (
    archive_files,
    assert_archive_matches,
    mail_settings,
    state_rows,
)

pytestmark = pytest.mark.needs_dovecot

MODES = list(Mode)
TOKEN_ENV = "MAILSYNC_TEST_OAUTH_TOKEN"


def _xoauth2_account(oauth: OAuthImap, name: str, **extra: Any) -> AccountSettings:
    # not account_for(): it sets password_env, and the token command must stand alone here
    extra.setdefault("port", oauth.server.port)
    extra.setdefault("security", "plain")
    return AccountSettings(
        name=name, host=oauth.server.host, username=oauth.user, auth="xoauth2", **extra
    )


def _secret_forms(token: str, user: str) -> list[str]:
    """The token and the SASL string that carries it (base64), as they could leak."""
    blob = f"user={user}\1auth=Bearer {token}\1\1".encode()
    return [token, base64.b64encode(blob).decode()]


@pytest.mark.parametrize("mode", MODES)
def test_xoauth2_backup_from_token_command_in_every_mode(
    mode: str, oauth_imap: OAuthImap, tmp_path: Path
) -> None:
    before = oauth_imap.introspection.stats()
    account = _xoauth2_account(
        oauth_imap,
        "oauth",
        oauth_token_command=f"printf %s {oauth_imap.token}",
        connections=2,
    )
    settings = replace(mail_settings(account), mode=Mode(mode))
    (report,) = run_backup(settings, [account], tmp_path)
    assert report.ok, report.errors
    truth = oauth_imap.truth
    assert report.new_messages == len(truth)
    assert report.new_bytes == sum(r.size for r in truth)
    root = tmp_path / "oauth"
    assert_archive_matches(root, truth)
    assert len(archive_files(root)) == len(truth)
    # every login went through the introspection server (the passwd-file never sees a token)
    after = oauth_imap.introspection.stats()
    assert after["active"] > before["active"]
    assert after["requests"] - before["requests"] == after["active"] - before["active"]


def test_xoauth2_token_from_password_env_over_tls(
    oauth_imap: OAuthImap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, oauth_imap.token)
    account = _xoauth2_account(
        oauth_imap,
        "oauth-env",
        password_env=TOKEN_ENV,
        port=oauth_imap.server.tls_port,
        security="tls",
        ca_file=oauth_imap.server.ca_cert,
    )
    for mode in ("asyncio", "threads"):
        settings = replace(mail_settings(account), mode=Mode(mode))
        (report,) = run_backup(settings, [account], tmp_path / mode)
        assert report.ok, report.errors
        assert report.new_messages == len(oauth_imap.truth)
        assert_archive_matches(tmp_path / mode / "oauth-env", oauth_imap.truth)


def _settings_file(oauth: OAuthImap, tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "mail.toml"
    common = f"""host = "127.0.0.1"
port = {oauth.server.port}
security = "plain"
username = "{oauth.user}"
auth = "xoauth2"
"""
    path.write_text(
        f"""[mail]
out = "{tmp_path / "archive"}"
header_workers = 0
timeout = 20
{extra}
[[mail.accounts]]
name = "good"
{common}oauth_token_command = "printf %s {oauth.token}"
[[mail.accounts]]
name = "revoked"
{common}oauth_token_command = "printf %s {oauth.revoked_token}"
[[mail.accounts]]
name = "unknown"
{common}password_env = "{TOKEN_ENV}"
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("mode", ["asyncio", "threads"])
def test_refused_token_is_one_line_naming_the_account_and_never_shown(
    mode: str, oauth_imap: OAuthImap, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings_file = _settings_file(oauth_imap, tmp_path)
    unknown_token = "ya29.not-issued-by-anyone_0000"
    runner = CliRunner()
    before = oauth_imap.introspection.stats()
    result = runner.invoke(
        main,
        [
            "backup",
            "--settings",
            str(settings_file),
            "--account",
            "revoked",
            "--account",
            "unknown",
            "--no-progress",
            "--mode",
            mode,
        ],
        env={TOKEN_ENV: unknown_token},
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # sys.exit(1), not an escaped error
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, result.output
    for name in ("revoked", "unknown"):
        (line,) = [e for e in errors if f"account {name}:" in e]
        assert f"login as {oauth_imap.user} failed" in line
        assert "AUTHENTICATIONFAILED" in line
    # the server was asked about both tokens and said "inactive" / "unknown"
    after = oauth_imap.introspection.stats()
    assert after["inactive"] > before["inactive"] and after["unknown"] > before["unknown"]
    # nothing archived
    for name in ("revoked", "unknown"):
        root = tmp_path / "archive" / name
        assert not root.exists() or not archive_files(root)
        if state_path(root).exists():
            assert state_rows(root) == []
    # the tokens are nowhere: CLI output, Python logs, the server's log
    leaks = [
        *_secret_forms(oauth_imap.revoked_token, oauth_imap.user),
        *_secret_forms(unknown_token, oauth_imap.user),
    ]
    for secret in leaks:
        assert secret not in result.output
        assert secret not in caplog.text
        assert secret not in oauth_imap.server.log_path.read_text("utf-8", "replace")


def test_cli_backup_verify_and_folders_with_a_token_command(
    oauth_imap: OAuthImap, tmp_path: Path
) -> None:
    settings_file = _settings_file(oauth_imap, tmp_path)
    runner = CliRunner()
    args = ["--settings", str(settings_file), "--account", "good"]
    backup = runner.invoke(main, ["backup", *args, "--no-progress"])
    assert backup.exit_code == 0, backup.output
    assert_archive_matches(tmp_path / "archive" / "good", oauth_imap.truth)
    # verify logs in the same way (the token command, not a password source)
    verify = runner.invoke(main, ["verify", *args, "--deep"])
    assert verify.exit_code == 0, verify.output
    assert f"{len(oauth_imap.truth)} server messages checked (deep): OK" in verify.output
    folders = runner.invoke(main, ["folders", *args])
    assert folders.exit_code == 0, folders.output
    assert "INBOX" in folders.output
    assert oauth_imap.token not in backup.output + verify.output + folders.output


def test_aioimaplib_transport_refuses_xoauth2_clearly(
    oauth_imap: OAuthImap, tmp_path: Path
) -> None:
    settings_file = _settings_file(oauth_imap, tmp_path, extra='imap_client = "aioimaplib"')
    result = CliRunner().invoke(
        main, ["backup", "--settings", str(settings_file), "--account", "good", "--no-progress"]
    )
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "account good:" in errors[0]
    assert "imap_client = 'aioimaplib'" in errors[0] and "auth = 'xoauth2'" in errors[0]
    assert "Traceback" not in result.output
    assert oauth_imap.token not in result.output


async def test_introspection_down_is_a_temporary_failure_naming_the_account(
    tmp_path: Path,
) -> None:
    # a Dovecot of its own whose introspection URL has nobody listening
    workdir = Path(tempfile.mkdtemp(prefix="fetchlab-dovecot-oauth-down-"))
    try:
        try:
            server = start_dovecot(
                workdir,
                users={"oauser": "pw"},
                oauth2_introspection_url=f"http://127.0.0.1:{free_port()}/introspect",
            )
        except TestbedError as exc:
            testbed_unavailable(exc)
        with server:
            account = AccountSettings(
                name="down",
                host=server.host,
                port=server.port,
                security="plain",
                username="oauser",
                auth="xoauth2",
                oauth_token_command="printf %s some-token",
            )
            attempts: list[AccountSettings] = []

            async def counting(
                acct: AccountSettings, secret: Secret, settings: MailSettings, spill: Path
            ) -> ImapSession:
                attempts.append(acct)
                return await open_account_session(acct, secret, settings, spill)

            (report,) = await backup_accounts(
                mail_settings(account, retries=2), [account], tmp_path, factory=counting
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert not report.ok
    (error,) = report.errors
    assert error.startswith("account down: login as oauser failed: NO [UNAVAILABLE]"), error
    assert "some-token" not in error
    # UNAVAILABLE is temporary (RFC 5530): retried like a lost connection, then reported
    assert len(attempts) == 3


def test_introspection_server_answers_like_rfc_7662(
    oauth_introspection: IntrospectionServer,
) -> None:
    def ask(data: bytes | None = None, headers: dict[str, str] | None = None) -> object:
        req = urllib.request.Request(oauth_introspection.url, data=data, headers=headers or {})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    good = ask(urllib.parse.urlencode({"token": OAUTH_TOKEN}).encode(), form)
    assert good == {
        "active": True,
        "username": OAUTH_USER,
        "scope": "mail",
        "token_type": "Bearer",
        "client_id": "fetchlab-testbed",
    }
    assert ask(f"token={OAUTH_REVOKED_TOKEN}".encode(), form) == {"active": False}
    assert ask(b"token=nobody-knows-me", form) == {"active": False}
    # introspection_mode = auth: the token as a bearer header on a GET
    assert ask(headers={"Authorization": f"Bearer {OAUTH_TOKEN}"}) == good
    with pytest.raises(urllib.error.HTTPError) as err:
        ask(b"", form)
    assert err.value.code == 400
    err.value.close()


def test_start_dovecot_refuses_a_bad_introspection_url(tmp_path: Path) -> None:
    for url in ("ftp://127.0.0.1/x", "http://127.0.0.1/x\nauth_mechanisms = anonymous"):
        with pytest.raises(UsageError, match="oauth2_introspection_url"):
            start_dovecot(tmp_path, oauth2_introspection_url=url)
