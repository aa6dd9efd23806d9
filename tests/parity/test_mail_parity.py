"""Every mailsync mode backs up the same account into the same archive: every server message once,
byte-identical to the server (SHA-256 against the corpus truth), the same file names, the same
state rows; and a backup started in one mode is continued incrementally by another."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.dispatch import run_backup
from foundation.frozen import replace
from foundation.mode import Mode
from mailsync.settings import AccountSettings, MailSettings
from testbed.imap_load import append_messages
from tests.fixtures.imap import FreshImapAccount, ImapCorpus
from tests.fixtures.proxy import ProxyFactory
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    account_for,
    archive_files,
    assert_archive_matches,
    mail_settings,
    state_rows,
)

ROOT = Path(__file__).resolve().parents[2]
MODES = list(Mode)


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def settings_for(mode: str, *accounts: object, **extra: object) -> MailSettings:
    base = mail_settings(*accounts, **extra)  # type: ignore[arg-type]
    return replace(base, mode=Mode(mode))


def layout(root: Path) -> set[tuple[str, str]]:
    """(folder path, file name) of every message file: names are not time-based, so equal."""
    return {(str(f.parent.parent.relative_to(root)), f.name) for f in archive_files(root)}


def rows(root: Path) -> set[tuple[object, ...]]:
    keys = (
        *("folder", "uidvalidity", "uid", "size", "sha256", "flags", "path", "message_id"),
        *("from_addr", "to_addr", "subject", "date", "header_error"),
    )
    return {tuple(r[k] for k in keys) for r in state_rows(root)}


@pytest.mark.needs_dovecot
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_the_same_archive(
    mode: str, imap_corpus: ImapCorpus, tmp_path: Path
) -> None:
    server, truth = imap_corpus
    settings = settings_for(mode, account_for(server, imap_corpus.user, name="corpus"))
    (report,) = run_backup(settings, list(settings.accounts), tmp_path / mode)
    assert report.ok, report.errors
    assert report.new_messages == len(truth)
    assert report.new_bytes == sum(r.size for r in truth)
    root = tmp_path / mode / "corpus"
    assert_archive_matches(root, truth)
    assert len(archive_files(root)) == len(truth)
    if mode != "asyncio":
        ref = tmp_path / "asyncio-ref"
        ref_settings = settings_for("asyncio", *settings.accounts)
        run_backup(ref_settings, list(settings.accounts), ref)
        assert layout(root) == layout(ref / "corpus")
        assert rows(root) == rows(ref / "corpus")
    # a no-change re-run in the same mode fetches nothing and skips every folder
    (again,) = run_backup(settings, list(settings.accounts), tmp_path / mode)
    assert again.ok and again.new_messages == 0
    assert again.skipped == again.folders > 0


@pytest.mark.needs_dovecot
@pytest.mark.parametrize(
    ("first", "second"),
    [("threads", "asyncio"), ("asyncio", "gevent"), ("sequential", "processes")],
)
def test_incremental_across_modes(
    first: str, second: str, fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=30, seed=5, folders=["INBOX", "Work"])
    account = account_for(acct.server, acct.user, connections=2)
    (r1,) = run_backup(settings_for(first, account), [account], tmp_path)
    assert r1.ok and r1.new_messages == 30
    new = [
        f"From: a@fetchlab.test\r\nSubject: new {i}\r\nMessage-ID: <new{i}@fetchlab.test>\r\n"
        f"\r\nbody {i}\r\n".encode()
        for i in range(3)
    ]
    uids = append_messages(acct.server, acct.user, "Work", new)
    (r2,) = run_backup(settings_for(second, account), [account], tmp_path)
    assert r2.ok, r2.errors
    assert r2.new_messages == len(uids) == 3  # only what is new, whatever mode wrote the rest
    root = tmp_path / account.name
    assert len(archive_files(root)) == 33
    assert_archive_matches(root, acct.truth)
    by_uid = {r["uid"]: r for r in state_rows(root) if r["folder"] == "Work"}
    for uid, data in zip(uids, new, strict=True):
        row = by_uid[uid]
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        assert (root / row["path"]).read_bytes() == data


@pytest.mark.needs_dovecot
def test_mail_mode_limits_are_checked_first(tmp_path: Path) -> None:
    from foundation.errors import ModeError

    with pytest.raises(ModeError, match="worker processes"):
        acct = AccountSettings(
            name="x", host="127.0.0.1", security="plain", username="x", connections=64
        )
        other = replace(acct, name="y")  # names must differ (one archive each)
        run_backup(MailSettings(mode=Mode.PROCESSES, accounts=(acct, other)), [], tmp_path)
    with pytest.raises(ModeError, match="imaplib"):
        run_backup(MailSettings(mode=Mode.THREADS, imap_client="aioimaplib"), [], tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.needs_dovecot
@pytest.mark.parametrize(
    ("first", "sig", "second"),
    [
        ("gevent", signal.SIGINT, "threads"),
        ("threads", signal.SIGKILL, "processes"),
        ("processes", signal.SIGKILL, "gevent"),
    ],
)
def test_interrupted_backup_is_finished_by_another_mode(
    first: str,
    sig: signal.Signals,
    second: str,
    fresh_imap_account: FreshImapAccount,
    delay_proxy: ProxyFactory,
    tmp_path: Path,
) -> None:
    acct = fresh_imap_account(messages=60, seed=9, folders=["INBOX", "Work", "Old"])
    proxy = delay_proxy((acct.server.host, acct.server.port), delay_ms=20)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "tests.parity._mail_child", str(out), first, proxy.host,
            str(proxy.port), acct.user]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
    root = out / acct.user
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if root.exists() and len(_files(root)) >= 10:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the first backup ended before it could be interrupted"
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert 10 <= len(_files(root)) < 60
    account = account_for(acct.server, acct.user, connections=2)
    (report,) = run_backup(settings_for(second, account), [account], out)
    assert report.ok, report.errors
    assert_archive_matches(root, acct.truth)
    assert len(archive_files(root)) == 60


def _files(root: Path) -> list[Path]:
    return [p for sub in ("new", "cur") for p in root.rglob(f"{sub}/*") if p.is_file()]
