"""The search index against the real test-bed Dovecot: built during the backup (``index = true``)
or by the first search after it (the default) in every mode, by ``mailsync index`` for an
existing archive, queried by ``search`` / ``show``, crash-safe."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from drivers.dispatch import run_backup
from fetchlab.mail_cli import main
from foundation.mode import Mode
from mailsync.layout import ArchiveLock, index_path, lock_path
from mailsync.search_index import SearchIndex
from testbed.corpus import TruthRecord
from testbed.imap_load import append_messages
from tests.fixtures.imap import FreshImapAccount, ImapCorpus
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    account_for,
    mail_settings,
    state_rows,
)

pytestmark = pytest.mark.needs_dovecot
ROOT = Path(__file__).resolve().parents[2]
NEW_MAIL = (
    b"From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: Zeppelin schedule\r\n"
    b"Message-ID: <zeppelin@example.org>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\n"
    b"See you at the hangar.\r\n"
)


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def _docs(root: Path) -> dict[tuple[str, int | None], sqlite3.Row]:
    db = sqlite3.connect(index_path(root))
    db.row_factory = sqlite3.Row
    try:
        rows = list(db.execute("SELECT * FROM docs"))
        (fts,) = db.execute("SELECT count(*) FROM fts").fetchone()
    finally:
        db.close()
    assert fts == len(rows), "every indexed message has exactly one full-text row"
    keyed = {(r["folder"], r["uid"]): r for r in rows}
    assert len(keyed) == len(rows), "a message indexed twice"
    return keyed


def _assert_indexed(root: Path, truth: list[TruthRecord]) -> None:
    docs = _docs(root)
    assert set(docs) == {(t.folder, t.uid) for t in truth}
    for t in truth:
        d = docs[(t.folder, t.uid)]
        assert d["size"] == t.size
        if t.kind == "attachment":
            assert d["attachments"] >= 1 and d["types"], t
        if t.kind == "malformed-no-header-end":
            assert "no end of the header block" in d["error"]
        if t.kind == "malformed-broken-boundary":
            assert "boundary" in d["error"]
        if not t.kind.startswith("malformed"):
            assert d["message_id"] == t.message_id and d["error"] is None, dict(d)


@pytest.mark.parametrize("mode", list(Mode))
def test_backup_indexes_every_message_in_every_mode(
    mode: Mode, imap_corpus: ImapCorpus, tmp_path: Path
) -> None:
    server, truth = imap_corpus
    account = account_for(server, imap_corpus.user, name="corpus", connections=2)
    # the asyncio mode parses in its process pool here (the other modes parse inline)
    workers = 1 if mode is Mode.ASYNCIO else 0
    settings = mail_settings(account, mode=mode, header_workers=workers, index=True)
    (report,) = run_backup(settings, [account], tmp_path)
    assert report.ok, report.errors
    _assert_indexed(tmp_path / "corpus", truth)


@pytest.mark.parametrize("mode", list(Mode))
def test_a_default_backup_leaves_the_index_to_the_first_search(
    mode: Mode, imap_corpus: ImapCorpus, tmp_path: Path
) -> None:
    """``index = false`` (the default): the backup records the header fields and builds no
    index; the first search indexes what is missing (once), then finds what it should."""
    server, truth = imap_corpus
    account = account_for(server, imap_corpus.user, name="corpus", connections=2)
    (report,) = run_backup(mail_settings(account, mode=mode), [account], tmp_path)
    assert report.ok, report.errors
    root = tmp_path / "corpus"
    assert not index_path(root).exists()
    rows = state_rows(root)
    assert sum(r["message_id"] is not None for r in rows) >= len(truth) - 10
    with_id = next(t for t in truth if not t.kind.startswith("malformed"))
    code, stdout, stderr = _cli(tmp_path, "search", "--json", f"id:{with_id.message_id}")
    assert code == 0, stderr
    assert f"corpus: indexing {len(truth)} messages for search" in stderr
    assert [json.loads(line)["message_id"] for line in stdout.splitlines()] == [with_id.message_id]
    _assert_indexed(root, truth)
    code, _, stderr = _cli(tmp_path, "search", "budget")
    assert code == 0 and "indexing" not in stderr, stderr


def test_search_while_a_backup_holds_the_archive_says_what_is_left_out(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=12, seed=31, folders=["INBOX", "Work"])
    account = account_for(acct.server, acct.user, name="acct")
    settings = mail_settings(account)
    run_backup(settings, [account], tmp_path)
    root = tmp_path / "acct"
    with ArchiveLock(root):  # a backup running before anything was ever indexed
        code, _, stderr = _cli(tmp_path, "search", "budget")
    assert code == 2 and "12 messages are not indexed yet" in stderr, stderr
    assert "archive in use by another mailsync run" in stderr
    assert len(_json(tmp_path, "")) == 12  # indexes the 12 first
    append_messages(acct.server, acct.user, "INBOX", [NEW_MAIL])
    (report,) = run_backup(settings, [account], tmp_path)
    assert report.new_messages == 1
    with ArchiveLock(root):
        code, stdout, stderr = _cli(tmp_path, "search", "--json", "--limit", "100")
    assert code == 0 and "1 messages are not indexed yet and left out" in stderr, stderr
    assert len(stdout.splitlines()) == 12
    # an archive this user cannot lock (read-only here): read as it is, the same warning
    lock = lock_path(root)
    lock.unlink()
    lock.mkdir()
    code, stdout, stderr = _cli(tmp_path, "search", "--json", "--limit", "100")
    assert code == 0 and "cannot create the lock file" in stderr, stderr
    assert "1 messages are not indexed yet and left out" in stderr
    assert len(stdout.splitlines()) == 12
    lock.rmdir()
    found = _json(tmp_path, "subject:zeppelin")
    assert [h["message_id"] for h in found] == ["<zeppelin@example.org>"]


@pytest.fixture(scope="module")
def archive(imap_corpus: ImapCorpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus backed up once (asyncio), for the read-only tests below."""
    os.environ.setdefault(PASSWORD_ENV, "secret")
    server, _ = imap_corpus
    out = tmp_path_factory.mktemp("search")
    account = account_for(server, imap_corpus.user, name="corpus")
    (report,) = run_backup(mail_settings(account), [account], out)
    assert report.ok, report.errors
    return out


def _cli(out: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [args[0], "--out", str(out), *args[1:]])
    return result.exit_code, result.stdout, result.stderr


def _json(out: Path, query: str, *extra: str) -> list[dict[str, object]]:
    code, stdout, stderr = _cli(out, "search", "--json", "--limit", "1000", *extra, query)
    assert code == 0, stderr
    return [json.loads(line) for line in stdout.splitlines()]


def test_search_finds_the_corpus_messages(archive: Path, imap_corpus: ImapCorpus) -> None:
    _, truth = imap_corpus
    rows = {(r["folder"], r["uid"]): r for r in state_rows(archive / "corpus")}
    everything = _json(archive, "")
    assert len(everything) == len(truth)
    stamps = [float(str(r["timestamp"] or 0)) for r in everything]
    assert stamps == sorted(stamps, reverse=True), "newest first"
    # every well-formed message is found by its own subject (as the state parsed it) and sender
    for t in [t for t in truth if not t.kind.startswith("malformed")][:40]:
        row = rows[(t.folder, t.uid)]
        address = str(row["from_addr"]).rsplit("<", 1)[-1].rstrip(">")
        hits = _json(archive, f'subject:"{row["subject"]}" from:{address} folder:"{t.folder}"')
        assert (t.folder, t.message_id) in {(h["folder"], h["message_id"]) for h in hits}, t
    # has:attachment is exactly the corpus's attachment messages; is:flagged its flagged ones
    found = {(h["folder"], h["message_id"]) for h in _json(archive, "has:attachment")}
    assert found == {(t.folder, t.message_id) for t in truth if t.kind == "attachment"}
    flagged = {(h["folder"], h["message_id"]) for h in _json(archive, "is:flagged")}
    assert flagged == {(t.folder, t.message_id) for t in truth if "\\Flagged" in t.flags}
    unread = _json(archive, "is:unread")
    assert len(unread) == sum("\\Seen" not in t.flags for t in truth)
    # NOT, OR and parentheses agree with set algebra
    inbox = _json(archive, "folder:INBOX")
    assert inbox and all(h["folder"] == "INBOX" for h in inbox)
    not_inbox = _json(archive, "NOT folder:INBOX")
    assert len(inbox) + len(not_inbox) == len(truth)
    both = _json(archive, "(folder:INBOX OR is:flagged) has:attachment")
    assert {h["id"] for h in both} == {
        h["id"] for h in _json(archive, "has:attachment") if h["folder"] == "INBOX"
    } | {h["id"] for h in _json(archive, "has:attachment is:flagged")}
    # sizes, dates and file names
    big = _json(archive, "larger:100K")
    assert {h["message_id"] for h in big} == {t.message_id for t in truth if t.size > 102400}
    assert _json(archive, "filename:report.pdf") or not any(t.kind == "attachment" for t in truth)
    assert _json(archive, "date:1990..1991") == []
    assert _json(archive, "account:other") == []


def test_search_over_several_archives(
    archive: Path, imap_corpus: ImapCorpus, tmp_path: Path
) -> None:
    _, truth = imap_corpus
    for name in ("one", "two"):
        shutil.copytree(archive / "corpus", tmp_path / name)
    everything = _json(tmp_path, "", "--limit", "10000")
    assert len(everything) == 2 * len(truth)
    assert {str(h["id"]).split(":")[0] for h in everything} == {"one", "two"}
    only_two = _json(tmp_path, "account:two has:attachment")
    assert only_two and {h["account"] for h in only_two} == {"two"}
    assert len(_json(tmp_path, "account:two", "--account", "one")) == 0
    newest = _json(tmp_path, "", "--limit", "4")
    assert len(newest) == 4 and newest == everything[:4]
    code, _, stderr = _cli(tmp_path, "show", "5")
    assert code == 2 and "account:number" in stderr
    code, stdout, _ = _cli(tmp_path, "show", str(newest[0]["id"]))
    assert code == 0 and str(newest[0]["message_id"]) in stdout


def test_search_outputs_paths_table_and_limit(archive: Path, imap_corpus: ImapCorpus) -> None:
    _, truth = imap_corpus
    code, stdout, stderr = _cli(archive, "search", "--output", "paths", "--limit", "5")
    assert code == 0, stderr
    paths = stdout.splitlines()
    assert len(paths) == 5 and all(Path(p).is_file() for p in paths)
    digests = {t.sha256 for t in truth}
    assert all(hashlib.sha256(Path(p).read_bytes()).hexdigest() in digests for p in paths)
    code, stdout, _ = _cli(archive, "search", "--limit", "3", "has:attachment")
    assert code == 0 and "date" in stdout and "subject" in stdout and "corpus:" in stdout


def test_show_prints_text_and_raw_bytes(archive: Path, imap_corpus: ImapCorpus) -> None:
    _, truth = imap_corpus
    by_mid = {t.message_id: t for t in truth}
    hit = _json(archive, "has:attachment", "--limit", "1")[0]
    t = by_mid[str(hit["message_id"])]
    code, stdout, stderr = _cli(archive, "show", str(hit["id"]))
    assert code == 0, stderr
    assert f"Message-ID:  {t.message_id}" in stdout and "Attachment:" in stdout
    result = CliRunner().invoke(main, ["show", "--out", str(archive), "--raw", str(hit["id"])])
    assert result.exit_code == 0
    assert hashlib.sha256(result.stdout_bytes).hexdigest() == t.sha256
    code, _, stderr = _cli(archive, "show", "corpus:999999")
    assert code == 2 and "no message" in stderr


def test_malformed_query_is_one_clear_error(archive: Path) -> None:
    code, stdout, stderr = _cli(archive, "search", "from:bob AND (budget")
    assert code == 2 and stdout == ""
    assert "query error at character" in stderr and "missing ')'" in stderr
    assert "Traceback" not in stderr
    code, _, stderr = _cli(archive, "search", "larger:huge")
    assert code == 2 and "larger: expects a size" in stderr


def test_index_command_builds_an_existing_archive_and_survives_a_kill(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=1500, seed=5, max_bytes=20_000_000)
    account = account_for(acct.server, acct.user, name="big")
    (report,) = run_backup(mail_settings(account), [account], tmp_path)
    assert report.ok, report.errors
    root = tmp_path / "big"
    # an archive of a version without the index
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index_path(root)}{suffix}").unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "fetchlab.mail_cli", "index", "--out", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*cmd, "--workers", "0"], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if index_path(root).is_file() and _count(root) > 0:
                break
            time.sleep(0.002)
        killed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    partial = _count(root)
    if killed:
        assert 0 < partial < len(acct.truth), partial
    done = subprocess.run([*cmd, "--workers", "1"], env=env, cwd=ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert f"{len(acct.truth) - partial} messages indexed".encode() in done.stdout
    _assert_indexed(root, acct.truth)
    again = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True)
    assert b"0 messages indexed" in again.stdout


def _count(root: Path) -> int:
    try:
        index = SearchIndex(root, readonly=True)
    except Exception:
        return 0
    try:
        return index.count()
    except Exception:
        return 0
    finally:
        index.close()
