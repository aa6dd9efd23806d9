"""What every mail driver shares, in the tool layer: the session's sync options, discovery, the
plan, the report's records and the archive's steps of an effect (canned data, no sockets; the
archive on real files in tmp_path)."""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from foundation.errors import ImapAuthError, MailError, ModeError, StorageError
from mailsync import account, effects
from mailsync.core import flow
from mailsync.core.headers import parse_headers
from mailsync.core.mime import extract
from mailsync.core.options import AIOIMAPLIB_LISTING_CHUNK, listing_capabilities, sync_options
from mailsync.core.parser import FetchResp, ResponseParser, Tagged
from mailsync.core.plan import FolderState
from mailsync.core.retry import FailFolder, Retry, SkipFolder
from mailsync.core.schedule import folder_where
from mailsync.indexer import parse_doc
from mailsync.report import AccountReport
from mailsync.settings import AccountSettings, MailSettings
from mailsync.state import FolderRecord
from mailsync.store import AccountArchive, SpillSink, StoredMessage
from mailsync.transports.base import TransportStats

CAPS = frozenset({"IMAP4REV1", "CONDSTORE", "LITERAL+", "LIST-STATUS"})
BODY = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
ACCOUNT = AccountSettings(
    name="acct",
    host="imap.example.org",
    username="u",
    include=("INBOX", "Work*"),
    exclude=("Work/Old",),
    batch_messages=50,
    batch_bytes=4096,
)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[AccountArchive]:
    arch = AccountArchive(tmp_path / "acct", fsync=False)
    arch.open_blocking()
    try:
        yield arch
    finally:
        arch.close_blocking()


def fetch(uid: int, body: object, flags: tuple[str, ...] = ("\\Seen",)) -> FetchResp:
    return FetchResp(uid, uid, flags, None, "01-Jan-2024 10:00:00 +0000", body, None)


# -- mailsync.core.options, mailsync.core.schedule.folder_where ---------------------------------


def test_sync_options_follow_the_server_and_the_settings() -> None:
    opts = sync_options(CAPS, batch_messages=7, batch_bytes=2048, pipeline_depth=6)
    assert opts == flow.SyncOptions(7, 2048, 6, condstore=True, literal_plus=True)
    bare = sync_options(
        frozenset({"IMAP4REV1"}), batch_messages=7, batch_bytes=2048, pipeline_depth=6
    )
    assert not bare.condstore and not bare.literal_plus and not bare.uid_step
    assert bare.listing_chunk == flow.SyncOptions().listing_chunk


def test_sync_options_for_aioimaplib_fetch_one_batch_at_a_time_and_list_in_ranges() -> None:
    opts = sync_options(CAPS, batch_messages=7, batch_bytes=2048, pipeline_depth=6, aioimaplib=True)
    assert opts.pipeline_depth == 1
    assert opts.listing_chunk == AIOIMAPLIB_LISTING_CHUNK == 500 and opts.uid_step
    assert opts.condstore and opts.literal_plus


def test_listing_capabilities_hide_list_status_from_aioimaplib_only() -> None:
    assert listing_capabilities(CAPS) == CAPS
    assert listing_capabilities(CAPS, aioimaplib=True) == CAPS - {"LIST-STATUS"}
    assert isinstance(listing_capabilities({"A"}), frozenset)


def test_folder_where_names_account_and_folder() -> None:
    assert folder_where("acct", "Work/Reports") == "acct/Work/Reports"


# -- mailsync.account ----------------------------------------------------------------------------


def test_account_sync_options_take_batches_from_the_account_and_depth_from_the_run() -> None:
    settings = MailSettings(pipeline_depth=9)
    opts = account.sync_options(ACCOUNT, settings, CAPS)
    assert (opts.batch_messages, opts.batch_bytes, opts.pipeline_depth) == (50, 4096, 9)
    assert opts.condstore and not opts.uid_step
    slow = account.sync_options(ACCOUNT, settings, CAPS, aioimaplib=True)
    assert (slow.pipeline_depth, slow.listing_chunk, slow.uid_step) == (1, 500, True)


def result(wire: bytes) -> flow.CommandResult:
    """One command's canned server answer, parsed."""
    responses = ResponseParser().feed(wire)
    tagged = responses[-1]
    assert isinstance(tagged, Tagged)
    return flow.CommandResult(tagged, tuple(responses[:-1]))


def _first_command(gen: Generator[flow.Effect, object, object]) -> flow.Command:
    effect = next(gen)
    gen.close()
    assert isinstance(effect, flow.Send)
    (command,) = effect.commands
    return command


def test_account_discover_uses_list_status_unless_through_aioimaplib() -> None:
    before: dict[str, FolderState] = {}
    native = _first_command(account.discover(ACCOUNT, CAPS, before))
    assert isinstance(native, bytes) and b"RETURN (STATUS" in native
    aio = _first_command(account.discover(ACCOUNT, CAPS, before, aioimaplib=True))
    assert aio == b'LIST "" "*"'


def test_account_discover_applies_the_account_patterns_and_finds_gone_folders() -> None:
    before = {"Gone": FolderState("Gone", 1, 2, None, 1)}
    gen = account.discover(ACCOUNT, frozenset(), before)
    listing = next(gen)
    assert isinstance(listing, flow.Send)
    wire = (
        b'* LIST () "/" INBOX\r\n* LIST () "/" Work\r\n* LIST () "/" Work/Old\r\n'
        b'* LIST () "/" Spam\r\nT1 OK done\r\n'
    )
    status = gen.send((result(wire),))
    assert isinstance(status, flow.Send) and len(status.commands) == 2  # INBOX, Work
    with pytest.raises(StopIteration) as stop:
        gen.send(
            (
                result(b"* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 5)\r\nT2 OK s\r\n"),
                result(b"* STATUS Work (MESSAGES 9 UIDNEXT 10 UIDVALIDITY 6)\r\nT3 OK s\r\n"),
            )
        )
    jobs, gone = stop.value.value
    assert [j.name for j in jobs] == ["INBOX", "Work"] and gone == ["Gone"]


def test_plan_run_plans_largest_first_and_counts_in_the_report() -> None:
    def job(name: str, messages: int) -> flow.FolderJob:
        return flow.FolderJob(
            name, name.encode(), name, FolderState(name, 1, messages + 1, None, messages)
        )

    before = {"Same": FolderState("Same", 1, 4, None, 3)}
    report = AccountReport("acct")
    plan = account.plan_run(report, [job("Small", 1), job("Same", 3), job("Big", 8)], before)
    assert [j.name for j in plan.todo] == ["Big", "Small"]
    assert (report.folders, report.skipped, report.expected) == (3, 1, 9)


# -- mailsync.report.AccountReport ---------------------------------------------------------------


def test_folder_ended_counts_a_synced_folder_with_its_warnings() -> None:
    report = AccountReport("acct")
    report.folder_ended("INBOX", flow.FolderResult("INBOX", flag_updates=2, gone=1, missing=(4, 5)))
    report.folder_ended("Work", flow.FolderResult("Work"))
    assert (report.synced, report.flag_updates, report.gone, report.folders_done) == (2, 2, 1, 2)
    assert report.warnings == ["acct/INBOX: 2 messages vanished while fetching"]
    assert report.ok


def test_folder_ended_records_the_last_decision() -> None:
    report = AccountReport("acct")
    report.folder_ended("A", SkipFolder("acct/A: folder gone from the server (x)"))
    report.folder_ended("B", FailFolder("acct/B: NO", keep_session=True))
    report.folder_ended("C", Retry(1, 0.1))  # as failed_attempt: one more retry
    assert report.warnings == ["acct/A: folder gone from the server (x)"]
    assert report.errors == ["acct/B: NO"]
    assert (report.retries, report.folders_done, report.synced) == (1, 3, 0)


def test_stored_counts_messages_and_bytes() -> None:
    report = AccountReport("acct")
    report.stored([StoredMessage(1, 10, "a", "p1"), StoredMessage(2, 32, "b", "p2")])
    report.stored([])
    assert (report.new_messages, report.new_bytes) == (2, 42)


def test_count_transport_adds_every_connection() -> None:
    report = AccountReport("acct")
    report.count_transport([TransportStats(3, 2, 100, 10, 90), TransportStats(5, 4, 200, 20, 200)])
    report.count_transport(iter(()))
    assert (report.commands, report.round_trips, report.wire_bytes) == (8, 6, 290)


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (MailError("x: refused"), "account acct: x: refused"),
        (ImapAuthError("account acct: login failed"), "account acct: login failed"),
        (ModeError("gevent is not installed"), "account acct: gevent is not installed"),
        (StorageError("disk full"), "account acct: archive: disk full"),
    ],
)
def test_account_failed_names_the_account_once(exc: Exception, error: str) -> None:
    report = AccountReport("acct")
    report.account_failed(exc)
    assert report.errors == [error] and not report.ok


# -- mailsync.store.AccountArchive ---------------------------------------------------------------


def test_folder_states_are_the_recorded_folders(archive: AccountArchive) -> None:
    assert archive.folder_states() == {}
    archive.state.save_folder(FolderRecord("INBOX", "INBOX", 7, 1, 30, 99, 25), 1.0)
    archive.state.save_folder(FolderRecord("Drafts", "Drafts", None, 0, None, None, None), 1.0)
    assert archive.folder_states() == {
        "INBOX": FolderState("INBOX", 7, 30, 99, 25),
        "Drafts": FolderState("Drafts", None, None, None, None),
    }


def test_mark_folders_gone_keeps_files_and_flags_every_message(archive: AccountArchive) -> None:
    archive.store_batch("Old", "Old", 3, 0, [(1, (), None, BODY, None)])
    archive.store_batch("Kept", "Kept", 3, 0, [(1, (), None, BODY, None)])
    archive.state.save_folder(FolderRecord("Old", "Old", 3, 0, 2, None, 1), 1.0)
    archive.mark_folders_gone(iter(["Old"]))
    (row,) = archive.state.messages("Old").values()
    assert row.deleted_on_server and (archive.root / row.path).read_bytes() == BODY
    assert not archive.state.messages("Kept")[1].deleted_on_server
    gone = archive.state._db.execute("SELECT name FROM folders WHERE gone_on_server=1")
    assert [name for (name,) in gone] == ["Old"]


# -- mailsync.effects ------------------------------------------------------------------------------


def _batch(messages: list[FetchResp]) -> flow.StoreBatch:
    return flow.StoreBatch("INBOX", "INBOX", 3, 1, tuple(messages))


def test_store_batch_writes_the_effects_items(archive: AccountArchive) -> None:
    effect = _batch([fetch(1, BODY), fetch(2, BODY + b"more\r\n", ())])
    items = effects.store_items(effect.messages)
    stored = effects.store_batch(archive, effect, items)
    assert [s.uid for s in stored] == [1, 2]
    rows = archive.state.messages("INBOX", 3)
    assert {u: (r.generation, r.flags, r.size) for u, r in rows.items()} == {
        1: (1, ("\\Seen",), len(BODY)),
        2: (1, (), len(BODY) + 6),
    }
    assert (archive.root / rows[1].path).read_bytes() == BODY


def test_header_fields_are_recorded_with_the_rows_spilled_bodies_too(
    archive: AccountArchive, tmp_path: Path
) -> None:
    sink = SpillSink(tmp_path / "spill", len(BODY))
    sink.write(BODY)
    spilled = sink.finish()
    assert spilled.sha256 == hashlib.sha256(BODY).hexdigest()
    bad = b"Message-ID: <3@x>\r\nDate: the day after tomorrow\r\nSubject: s\r\n\r\nbody\r\n"
    effect = _batch([fetch(1, BODY), fetch(2, spilled), fetch(3, bad)])
    items = effects.store_items(effect.messages)
    stored = effects.store_batch(archive, effect, items)
    # read from the bytes as they were written, in memory or spilled: no file is read back
    assert [s.headers for s in stored] == [parse_headers(BODY)] * 2 + [parse_headers(bad)]
    rows = archive.state.messages("INBOX", 3)
    assert rows[1].message_id is rows[2].message_id is None and rows[3].message_id == "<3@x>"
    got = archive.state._db.execute(
        "SELECT uid, from_addr, subject, date, header_error FROM messages ORDER BY uid"
    ).fetchall()
    info = parse_headers(BODY)
    assert got[:2] == [(u, info.from_, info.subject, info.date, None) for u in (1, 2)]
    assert got[2][2] == "s" and got[2][3] is None and "Date" in got[2][4]
    # the index's document is parsed from the stored file, the same for both
    docs = [parse_doc(p) for p in effects.stored_paths(archive.root, stored)]
    assert docs[0] == docs[1] == extract(BODY)
    # a file gone before the parser reached it: indexed as unreadable, never raised
    gone = parse_doc(str(tmp_path / "no" / "such" / "file"))
    assert gone.error and "unreadable file" in gone.error


def test_index_entries_index_the_messages_once(archive: AccountArchive) -> None:
    effect = _batch([fetch(1, BODY), fetch(2, BODY)])
    items = effects.store_items(effect.messages)
    stored = effects.store_batch(archive, effect, items)
    docs = [extract(BODY), effects.doc_or_failed(ValueError("x"))]
    assert docs[1].error == "parser failed: ValueError('x')"
    entries = effects.index_entries("INBOX", 3, stored, docs, effects.item_dates(items))
    archive.add_to_index(entries)
    assert [h.folder for h in archive.index.search("")] == ["INBOX", "INBOX"]
    # a second save of the same messages (a rerun) indexes nothing twice
    archive.add_to_index(entries)
    assert archive.index.count() == 2


def test_save_folder_is_one_archive_operation(archive: AccountArchive) -> None:
    effect = flow.SaveFolder("INBOX", "INBOX", FolderState("INBOX", 3, 9, 4, 8), 2)
    assert isinstance(effect, effects.ARCHIVE_EFFECTS)
    fn, args = effects.archive_call(archive, effect)
    assert effects.archive_answer(effect, fn(*args)) is None
    assert archive.folder_records()["INBOX"] == FolderRecord("INBOX", "INBOX", 3, 2, 9, 4, 8)
    assert archive.folder_states()["INBOX"] == effect.state
