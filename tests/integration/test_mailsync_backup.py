"""mailsync backup against the real test-bed Dovecot: byte-exact, incremental, cheap re-syncs."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fetchlab.mail_cli import _snapshot, main
from mailsync.layout import state_path
from mailsync.report import AccountReport
from testbed.imap_load import (
    append_messages,
    delete_folder,
    delete_messages,
    recreate_folder,
    set_flags,
)
from tests.fixtures.imap import FreshImapAccount, ImapCorpus
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    account_for,
    archive_files,
    assert_archive_matches,
    mail_settings,
    run_backup,
    state_rows,
)

pytestmark = pytest.mark.needs_dovecot


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


async def test_full_backup_is_byte_exact_then_no_change_is_cheap(
    imap_corpus: ImapCorpus, tmp_path: Path
) -> None:
    server, truth = imap_corpus
    settings = mail_settings(account_for(server, imap_corpus.user, name="corpus"), header_workers=1)
    (report,) = await run_backup(settings, tmp_path)
    assert report.ok, report.errors
    assert report.new_messages == len(truth)
    assert report.new_bytes == sum(r.size for r in truth)
    root = tmp_path / "corpus"
    assert_archive_matches(root, truth)
    assert len(archive_files(root)) == len(truth)
    # headers were read (by the store, from the bytes it wrote) into the state
    rows = {(r["folder"], r["uid"]): r for r in state_rows(root)}
    with_id = [t for t in truth if not t.kind.startswith("malformed")]
    hits = sum(rows[(t.folder, t.uid)]["message_id"] == t.message_id for t in with_id)
    assert hits == len(with_id)
    # unseen mail lands in new/, the rest in cur/ with the flags in the info suffix
    for t in truth:
        path = rows[(t.folder, t.uid)]["path"]
        assert ("/cur/" in path) == bool(
            set(t.flags)
            & {"\\Seen", "\\Flagged", "\\Answered", "\\Draft", "\\Deleted", "$Forwarded"}
        )
        if "\\Seen" in t.flags:
            assert path.rsplit(":2,", 1)[1].find("S") >= 0

    (again,) = await run_backup(settings, tmp_path)
    assert again.ok and again.new_messages == 0
    assert again.skipped == again.folders > 0
    # login + LIST + one pipelined STATUS for every folder + LOGOUT
    assert again.round_trips <= 5, again.round_trips
    assert len(archive_files(root)) == len(truth)


async def test_incremental_new_flags_deleted_and_uidvalidity(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=40, seed=7, folders=["INBOX", "Keep", "Redo"])
    server = acct.server
    settings = mail_settings(
        account_for(server, acct.user, name="inc", connections=2, batch_messages=5),
        pipeline_depth=3,
    )
    (first,) = await run_backup(settings, tmp_path)
    assert first.ok, first.errors
    root = tmp_path / "inc"
    assert_archive_matches(root, acct.truth)

    inbox = [t for t in acct.truth if t.folder == "INBOX"]
    redo = [t for t in acct.truth if t.folder == "Redo"]
    new_uids = append_messages(
        server,
        acct.user,
        "INBOX",
        [b"Subject: new %d\r\nMessage-ID: <n%d@x>\r\n\r\nhi\r\n" % (i, i) for i in range(3)],
    )
    set_flags(server, acct.user, "INBOX", [inbox[0].uid or 0], ["\\Flagged", "\\Seen"])
    gone = [t.uid or 0 for t in inbox[1:3]]
    delete_messages(server, acct.user, "INBOX", gone)
    old_validity = redo[0].uidvalidity
    new_validity = recreate_folder(server, acct.user, "Redo")
    append_messages(server, acct.user, "Redo", [b"Subject: gen2\r\n\r\nsecond generation\r\n"])

    (second,) = await run_backup(settings, tmp_path)
    assert second.ok, second.errors
    assert second.new_messages == 4
    assert second.flag_updates == 1
    assert second.gone == 2
    rows = state_rows(root)
    by_key = {(r["folder"], r["uidvalidity"], r["uid"]): r for r in rows}
    for uid in new_uids:
        assert (("INBOX", inbox[0].uidvalidity, uid)) in by_key
    flagged = by_key[("INBOX", inbox[0].uidvalidity, inbox[0].uid)]
    assert flagged["flags"].split() == ["\\Flagged", "\\Seen"]
    assert flagged["path"].endswith(":2,FS") and (root / flagged["path"]).exists()
    for uid in gone:  # deleted on the server: kept here, marked
        row = by_key[("INBOX", inbox[0].uidvalidity, uid)]
        assert row["deleted_on_server"] == 1 and (root / row["path"]).exists()
    # the old generation is kept and marked; the new one is archived beside it
    for t in redo:
        row = by_key[("Redo", old_validity, t.uid)]
        assert row["deleted_on_server"] == 1 and (root / row["path"]).exists()
    gen2 = [r for r in rows if r["folder"] == "Redo" and r["uidvalidity"] == new_validity]
    assert len(gen2) == 1 and gen2[0]["generation"] == 1
    db = sqlite3.connect(state_path(root))
    try:
        (gen,) = db.execute("SELECT generation FROM folders WHERE name='Redo'").fetchone()
    finally:
        db.close()
    assert gen == 1

    (third,) = await run_backup(settings, tmp_path)
    assert third.ok and third.new_messages == 0 and third.skipped == third.folders

    # only new mail and a flag change (nothing expunged): the CONDSTORE delta listing path
    more = append_messages(
        server, acct.user, "INBOX", [b"Subject: later\r\n\r\nx\r\n", b"Subject: l2\r\n\r\ny\r\n"]
    )
    set_flags(server, acct.user, "INBOX", [inbox[0].uid or 0], ["\\Answered"], mode="add")
    (delta,) = await run_backup(settings, tmp_path)
    assert delta.ok and delta.new_messages == 2 and delta.flag_updates == 1 and delta.gone == 0
    rows_now = {(r["folder"], r["uid"]): r for r in state_rows(root)}
    assert all(("INBOX", uid) in rows_now for uid in more)
    assert rows_now[("INBOX", inbox[0].uid)]["path"].endswith(":2,FRS")
    assert sum(r["deleted_on_server"] for r in rows_now.values() if r["folder"] == "INBOX") == 2

    # a folder deleted on the server: its copies stay, its rows are marked
    delete_folder(server, acct.user, "Keep")
    (fourth,) = await run_backup(settings, tmp_path)
    assert fourth.ok and fourth.folders == 2
    keep = [r for r in state_rows(root) if r["folder"] == "Keep"]
    assert keep and all(r["deleted_on_server"] == 1 and (root / r["path"]).exists() for r in keep)


def test_cli_backup_summary_and_exit_codes(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=12, seed=3, folders=["INBOX", "Entwürfe"])
    settings_file = tmp_path / "mail.toml"
    settings_file.write_text(
        f"""[mail]
out = "{tmp_path / "archive"}"
header_workers = 0
[[mail.accounts]]
name = "good"
host = "127.0.0.1"
port = {acct.server.port}
security = "plain"
username = "{acct.user}"
password_env = "{PASSWORD_ENV}"
[[mail.accounts]]
name = "badpw"
host = "127.0.0.1"
port = {acct.server.port}
security = "plain"
username = "{acct.user}"
password_env = "MAILSYNC_TEST_WRONG"
""",
        encoding="utf-8",
    )
    runner = CliRunner()
    env = {PASSWORD_ENV: "secret", "MAILSYNC_TEST_WRONG": "not-the-password"}
    ok = runner.invoke(
        main,
        ["backup", "--settings", str(settings_file), "--account", "good", "--no-progress"],
        env=env,
    )
    assert ok.exit_code == 0, ok.output
    assert "good" in ok.output and "12" in ok.output
    assert_archive_matches(tmp_path / "archive" / "good", acct.truth)

    both = runner.invoke(
        main, ["backup", "--settings", str(settings_file), "--no-progress"], env=env
    )
    assert both.exit_code == 1
    assert "badpw" in both.output and "login as" in both.output
    assert "not-the-password" not in both.output
    assert "Traceback" not in both.output

    unknown = runner.invoke(main, ["backup", "--settings", str(settings_file), "--account", "x"])
    assert unknown.exit_code == 2 and "unknown account" in unknown.output

    bad = tmp_path / "bad.toml"
    bad.write_text("[mail]\nmax_connections = 0\n[[mail.accounts]]\nname = 'a'\nhost = 'h'\n")
    invalid = runner.invoke(main, ["backup", "--settings", str(bad)])
    assert invalid.exit_code == 2
    assert f"{bad}: mail.max_connections" in invalid.output
    assert "mail.accounts[0].username" in invalid.output

    verify = runner.invoke(
        main, ["verify", "--settings", str(settings_file), "--account", "good", "--deep"], env=env
    )
    assert verify.exit_code == 0, verify.output
    assert "12 server messages checked (deep): OK" in verify.output

    # damage the archive: one file gone, one file's bytes changed (same size)
    rows = state_rows(tmp_path / "archive" / "good")
    (tmp_path / "archive" / "good" / rows[0]["path"]).unlink()
    damaged = tmp_path / "archive" / "good" / rows[1]["path"]
    data = damaged.read_bytes()
    damaged.write_bytes(data[:-3] + b"XYZ")
    shallow = runner.invoke(
        main, ["verify", "--settings", str(settings_file), "--account", "good"], env=env
    )
    assert shallow.exit_code == 1
    assert f"missing: good/{rows[0]['folder']} uid {rows[0]['uid']}" in shallow.output
    deep = runner.invoke(
        main, ["verify", "--settings", str(settings_file), "--account", "good", "--deep"], env=env
    )
    assert deep.exit_code == 1
    assert f"mismatched: good/{rows[1]['folder']} uid {rows[1]['uid']}: file bytes" in deep.output

    folders = runner.invoke(
        main, ["folders", "--settings", str(settings_file), "--account", "good"], env=env
    )
    assert folders.exit_code == 0, folders.output
    assert "Entwürfe" in folders.output


def test_progress_snapshot_per_account() -> None:
    report = AccountReport("work", folders=5, skipped=1, new_messages=100, new_bytes=5_000_000)
    report.expected, report.folders_done = 300, 2
    snap = _snapshot([report], time.monotonic() - 2.0)
    line = str(snap["work"])
    assert line.startswith("folders 2/4  msgs 100  ")
    assert " msg/s  " in line and " MB/s  ETA " in line and line.endswith(" s")
