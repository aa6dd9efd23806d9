"""The archive's own files: out of reach of server folder names, private, locked, and only
written by a run that does work -- in every mode, against a real Dovecot."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from drivers.dispatch import run_backup
from fetchlab.mail_cli import main
from foundation.mode import Mode
from mailsync.layout import INTERNAL_DIR, ArchiveLock
from mailsync.settings import MailSettings
from testbed.imap_load import append_messages
from tests.fixtures.imap import FreshImapAccount
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    account_for,
    archive_files,
    state_rows,
)

# a folder named like the state DB, its WAL and SHM, and like the archive's internal folder
CLASHING = ["state.sqlite", "state.sqlite-wal", "state.sqlite-shm", INTERNAL_DIR, "lock"]


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def _message(i: int) -> bytes:
    return f"From: a@fetchlab.test\r\nSubject: m{i}\r\n\r\nbody {i}\r\n".encode()


def _assert_private(root: Path) -> None:
    seen = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in [dirpath, *(os.path.join(dirpath, f) for f in filenames)]:
            mode = stat.S_IMODE(os.lstat(name).st_mode)
            want = 0o700 if os.path.isdir(name) else 0o600
            assert mode == want, f"{name}: {mode:o}, want {want:o}"
            seen += 1
    assert seen > 10


@pytest.mark.needs_dovecot
@pytest.mark.parametrize("mode", list(Mode))
def test_folders_named_like_internal_files_private_archive(
    mode: Mode, fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account()
    expected = 0
    for i, folder in enumerate(["INBOX", *CLASHING]):
        expected += len(append_messages(acct.server, acct.user, folder, [_message(i)] * 2))
    account = account_for(acct.server, acct.user, name="acct", connections=2)
    settings = MailSettings(accounts=(account,), header_workers=0, timeout=20.0, mode=mode)
    old = os.umask(0o022)
    try:
        (first,) = run_backup(settings, [account], tmp_path / "out")
        assert first.ok, first.errors
        assert first.new_messages == expected
        # a rerun (the state DB is reopened next to those folders) and one with new mail
        append_messages(acct.server, acct.user, "state.sqlite-wal", [_message(99)])
        (second,) = run_backup(settings, [account], tmp_path / "out")
        assert second.ok, second.errors
        assert second.new_messages == 1
    finally:
        os.umask(old)
    root = tmp_path / "out" / "acct"
    assert (root / INTERNAL_DIR / "state.sqlite").is_file()
    for folder in CLASHING[:3]:
        assert (root / folder / "cur").is_dir() or (root / folder / "new").is_dir()
    assert (root / "%2Efetchlab").is_dir()
    rows = state_rows(root)
    assert len(rows) == expected + 1 == len(archive_files(root))
    assert {r["folder"] for r in rows} == {"INBOX", *CLASHING}
    _assert_private(tmp_path / "out")


def _settings_file(tmp_path: Path, port: int, user: str, password_env: str = PASSWORD_ENV) -> Path:
    path = tmp_path / "mail.toml"
    path.write_text(
        f"""[mail]
out = "{tmp_path / "archive"}"
header_workers = 0
[[mail.accounts]]
name = "acct"
host = "127.0.0.1"
port = {port}
security = "plain"
username = "{user}"
password_env = "{password_env}"
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.needs_dovecot
def test_wrong_password_writes_nothing(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=2)
    settings = _settings_file(tmp_path, acct.server.port, acct.user, "MAILSYNC_TEST_WRONG")
    for mode in ("asyncio", "threads"):
        res = CliRunner().invoke(
            main,
            ["backup", "--settings", str(settings), "--no-progress", "--mode", mode],
            env={"MAILSYNC_TEST_WRONG": "nope"},
        )
        assert res.exit_code == 1, res.output
        assert "login as" in res.output
        assert not (tmp_path / "archive" / "acct").exists()


@pytest.mark.needs_dovecot
def test_second_run_on_a_locked_archive_exits_2(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=3)
    settings = _settings_file(tmp_path, acct.server.port, acct.user)
    runner = CliRunner()
    first = runner.invoke(main, ["backup", "--settings", str(settings), "--no-progress"])
    assert first.exit_code == 0, first.output
    root = tmp_path / "archive" / "acct"
    with ArchiveLock(root):  # as a running backup holds it
        busy = runner.invoke(main, ["backup", "--settings", str(settings), "--no-progress"])
        assert busy.exit_code == 2, busy.output
        assert f"PID {os.getpid()}" in busy.output
        assert "Traceback" not in busy.output
        for cmd in (["verify"], ["folders", "--account", "acct"]):
            res = runner.invoke(main, [*cmd, "--settings", str(settings)])
            assert res.exit_code == 2, res.output
            assert f"PID {os.getpid()}" in res.output
    # readers share the lock: verify runs while another reader holds it
    with ArchiveLock(root, shared=True):
        ok = runner.invoke(main, ["verify", "--settings", str(settings)])
        assert ok.exit_code == 0, ok.output


@pytest.mark.needs_dovecot
@pytest.mark.parametrize("mode", list(Mode))
def test_every_mode_takes_the_archive_lock(
    mode: Mode, fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    """The driver's own lock: a run that started between the CLI's check and the open."""
    acct = fresh_imap_account(messages=2)
    account = account_for(acct.server, acct.user, name="acct")
    mail = MailSettings(accounts=(account,), header_workers=0, timeout=20.0, mode=mode)
    (first,) = run_backup(mail, [account], tmp_path)
    assert first.ok, first.errors
    with ArchiveLock(tmp_path / "acct"):
        (report,) = run_backup(mail, [account], tmp_path)
    assert report.busy, report
    assert f"PID {os.getpid()}" in report.errors[0] and report.new_messages == 0


@pytest.mark.needs_dovecot
def test_verify_and_folders_with_a_broken_state_db(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=2)
    settings = _settings_file(tmp_path, acct.server.port, acct.user)
    runner = CliRunner()
    assert (
        runner.invoke(main, ["backup", "--settings", str(settings), "--no-progress"]).exit_code == 0
    )
    db = tmp_path / "archive" / "acct" / INTERNAL_DIR / "state.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    for cmd in (["verify"], ["folders", "--account", "acct"]):
        res = runner.invoke(main, [*cmd, "--settings", str(settings)])
        assert res.exit_code == 2, res.output
        assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
        assert len(res.output.strip().splitlines()) == 1, res.output
        assert "cannot open state DB" in res.output
