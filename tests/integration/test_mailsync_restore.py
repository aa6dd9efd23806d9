"""``mailsync restore`` against the real test-bed Dovecot, in every mode: back up an account,
restore its archive into an empty account, back that one up, and the two archives hold the same
messages (SHA-256), flags and INTERNALDATEs, each as often; a rerun sends nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from drivers.mail_restore import RestoreSpec, run_restore
from drivers.mail_restore_asyncio import restore_asyncio
from fetchlab.mail_cli import main
from foundation.mode import Mode
from mailsync.restore_state import restore_db_path
from mailsync.transports.base import ImapSession
from mailsync.transports.factory import open_account_session
from testbed.imap_load import delete_messages
from tests.fixtures.imap import FreshImapAccount
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    SessionHook,
    account_for,
    mail_settings,
)
from tests.integration._restore_helpers import archive_multiset, backup

pytestmark = pytest.mark.needs_dovecot

FAST_BACKOFF: dict[str, Any] = {"retries": 2, "retry_delay": 0.05, "retry_max_delay": 0.2}


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def test_restore_into_an_empty_account(
    mode: Mode, fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    src = fresh_imap_account(messages=40, seed=13, max_bytes=2_000_000)
    dst = fresh_imap_account()
    source = account_for(src.server, src.user, name="src")
    target = account_for(dst.server, dst.user, name="dst", connections=3, batch_messages=7)
    settings = mail_settings(source, target, mode=mode, **FAST_BACKOFF)
    archive = tmp_path / "archive"
    backup(settings, source, archive)
    before = archive_multiset(archive / "src")
    assert sum(before.values()) == 40

    spec = RestoreSpec(archive / "src", "dst")
    report = run_restore(settings, spec)
    assert report.ok, report.errors
    assert (report.appended, report.found, report.already) == (40, 0, 0)

    backup(settings, target, archive)
    assert archive_multiset(archive / "dst") == before

    # every message recorded with the UID the server gave it (UIDPLUS)
    db = sqlite3.connect(restore_db_path(archive / "src"))
    rows = db.execute("SELECT state, dest_uid FROM restored").fetchall()
    db.close()
    assert len(rows) == 40 and all(s == "done" and u for s, u in rows)

    again = run_restore(settings, spec)
    assert again.ok, again.errors
    assert (again.appended, again.already) == (0, 40)


def test_a_crash_between_append_and_record_sends_nothing_twice(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    """The crash window: the server stored a batch, the run died before recording it. The
    rerun finds those messages (Message-ID, size, INTERNALDATE) instead of sending them again."""
    src = fresh_imap_account(messages=24, seed=17, max_bytes=1_000_000, folders=["INBOX", "B"])
    dst = fresh_imap_account()
    source = account_for(src.server, src.user, name="src")
    target = account_for(dst.server, dst.user, name="dst", batch_messages=5)
    settings = mail_settings(source, target, **FAST_BACKOFF)
    archive = tmp_path / "archive"
    backup(settings, source, archive)
    before = archive_multiset(archive / "src")
    spec = RestoreSpec(archive / "src", "dst")
    assert run_restore(settings, spec).ok

    # as if the run had died after the server answered, before the records were written: the
    # rows are back to "pending", what MarkPending committed before the APPEND went out
    db = sqlite3.connect(restore_db_path(archive / "src"))
    keys = db.execute(
        "SELECT folder, uidvalidity, uid FROM restored ORDER BY folder, uid"
    ).fetchall()
    db.execute("UPDATE restored SET state='pending', dest_uid=NULL, dest_uidvalidity=NULL")
    db.commit()
    db.close()
    report = run_restore(settings, spec)
    assert report.ok, report.errors
    assert (report.found, report.appended) == (len(keys), 0)

    backup(settings, target, archive)
    assert archive_multiset(archive / "dst") == before


def test_folder_map_and_query(fresh_imap_account: FreshImapAccount, tmp_path: Path) -> None:
    src = fresh_imap_account(
        messages=20, seed=19, max_bytes=500_000, folders=["INBOX", "Archive/2023"]
    )
    dst = fresh_imap_account()
    source = account_for(src.server, src.user, name="src")
    target = account_for(dst.server, dst.user, name="dst")
    settings = mail_settings(source, target, **FAST_BACKOFF)
    archive = tmp_path / "archive"
    backup(settings, source, archive)
    before = archive_multiset(archive / "src")
    spec = RestoreSpec(archive / "src", "dst", "folder:Archive/*", {"Archive": "Old"})
    report = run_restore(settings, spec)
    assert report.ok, report.errors
    backup(settings, target, archive)
    after = archive_multiset(archive / "dst")
    want = {("Old/2023", *k[1:]): n for k, n in before.items() if k[0] == "Archive/2023"}
    assert want and dict(after) == want


def test_a_restore_into_the_source_account_sends_only_what_is_missing(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=20, seed=21, max_bytes=800_000, folders=["INBOX", "Sent"])
    source = account_for(acct.server, acct.user, name="src")
    settings = mail_settings(source, **FAST_BACKOFF)
    archive = tmp_path / "archive"
    backup(settings, source, archive)
    before = archive_multiset(archive / "src")
    lost = [r.uid for r in acct.truth if r.folder == "INBOX" and r.uid is not None][:4]
    assert lost
    delete_messages(acct.server, acct.user, "INBOX", lost)

    report = run_restore(settings, RestoreSpec(archive / "src", "src"))
    assert report.ok, report.errors
    assert (report.appended, report.present) == (len(lost), 20 - len(lost))
    backup(settings, source, archive)
    assert archive_multiset(archive / "src") == before  # the lost ones back, nothing twice


def test_cli_dry_run_and_usage_errors(fresh_imap_account: FreshImapAccount, tmp_path: Path) -> None:
    acct = fresh_imap_account(messages=6, seed=22, max_bytes=100_000, folders=["INBOX", "Sent"])
    in_sent = sum(1 for r in acct.truth if r.folder == "Sent")
    archive = tmp_path / "archive"
    source = account_for(acct.server, acct.user, name="src")
    backup(mail_settings(source), source, archive)
    settings = tmp_path / "mail.toml"
    settings.write_text(
        f'[mail]\nout = "{archive}"\n[[mail.accounts]]\nname = "src"\nhost = "127.0.0.1"\n'
        f'port = {acct.server.port}\nsecurity = "plain"\nusername = "{acct.user}"\n'
        f'password_env = "{PASSWORD_ENV}"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    base = ["restore", "--settings", str(settings), "--from", "src"]
    dry = runner.invoke(main, [*base, "--to", "src", "--dry-run", "--folder-map", "Sent=Old"])
    assert dry.exit_code == 0, dry.output
    counts = {line.split(":")[0]: int(line.split()[1]) for line in dry.output.splitlines()}
    assert counts == {"INBOX": 6 - in_sent, **({"Old": in_sent} if in_sent else {})}
    unknown = runner.invoke(main, [*base, "--to", "nobody"])
    assert unknown.exit_code == 2 and "not a configured account" in unknown.output
    bad_map = runner.invoke(main, [*base, "--to", "src", "--folder-map", "nothing"])
    assert bad_map.exit_code == 2 and "SOURCE=DESTINATION" in bad_map.output
    bad_query = runner.invoke(main, [*base, "--to", "src", "--query", "subject:x AND ("])
    assert bad_query.exit_code == 2 and "query error at character" in bad_query.output
    # any query beyond folder:/date: is the search language, answered by the archive's index
    searched = runner.invoke(
        main, [*base, "--to", "src", "--dry-run", "--query", "NOT folder:Sent"]
    )
    assert searched.exit_code == 0, searched.output
    assert {line.split(":")[0]: int(line.split()[1]) for line in searched.output.splitlines()} == {
        "INBOX": 6 - in_sent
    }
    no_archive = runner.invoke(
        main, ["restore", "--settings", str(settings), "--from", "x", "--to", "src"]
    )
    assert no_archive.exit_code == 2 and "no archive" in no_archive.output


class _PlainServer(SessionHook):
    """A real Dovecot session that announces none of LITERAL+, MULTIAPPEND and UIDPLUS: the
    restore then waits for each literal's continuation, sends one APPEND per message and finds
    the new UIDs by listing (Dovecot still answers with APPENDUID; the flow must not need it)."""

    def __init__(self, inner: ImapSession) -> None:
        super().__init__(inner)
        hidden = {"LITERAL+", "LITERAL-", "MULTIAPPEND", "UIDPLUS"}
        self.capabilities = frozenset(c for c in inner.capabilities if c not in hidden)
        self.appends: list[bytes] = []

    async def before(self, first_parts: list[bytes]) -> None:
        self.appends += [p for p in first_parts if p.startswith(b"APPEND")]


def test_restore_without_literal_plus_multiappend_or_uidplus(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    src = fresh_imap_account(messages=15, seed=23, max_bytes=600_000, folders=["INBOX", "Sent"])
    dst = fresh_imap_account()
    source = account_for(src.server, src.user, name="src")
    target = account_for(dst.server, dst.user, name="dst", batch_messages=4)
    settings = mail_settings(source, target, **FAST_BACKOFF)
    archive = tmp_path / "archive"
    backup(settings, source, archive)
    before = archive_multiset(archive / "src")
    jobs = RestoreSpec(archive / "src", "dst").jobs()

    sessions: list[_PlainServer] = []

    async def plain(*args: Any) -> ImapSession:
        sessions.append(_PlainServer(await open_account_session(*args)))
        return sessions[-1]

    report = asyncio.run(restore_asyncio(settings, archive / "src", target, jobs, factory=plain))
    assert report.ok, report.errors
    assert report.appended == 15
    appends = [a for s in sessions for a in s.appends]
    # one message per APPEND, each literal synchronising: the first part ends with "{size}"
    assert len(appends) == 15 and all(a.endswith(b"}") and b"+}" not in a for a in appends)
    backup(settings, target, archive)
    assert archive_multiset(archive / "dst") == before
    db = sqlite3.connect(restore_db_path(archive / "src"))
    uids = [r[0] for r in db.execute("SELECT dest_uid FROM restored WHERE state='done'")]
    db.close()
    assert len(uids) == 15 and all(uids)  # every UID found by the listing past UIDNEXT
