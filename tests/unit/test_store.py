"""Maildir writing, crash-leftover repair and the state DB, on real files in tmp_path."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from pathlib import Path

import pytest

from foundation import durable
from foundation.durable import syncfs_usable
from foundation.errors import StorageError
from mailsync import store as store_module
from mailsync.core.flow import StoreBatch
from mailsync.core.headers import HeaderInfo
from mailsync.state import FolderRecord, MessageRow, StateDB
from mailsync.store import AccountArchive, MaildirStore, SpillSink, StagedBatch, StoreItem

BODY = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
INBOX_3 = StoreBatch("INBOX", "INBOX", 3, 0, ())  # where a batch goes (its messages unused)


def test_write_batch_is_atomic_named_and_dated(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path)
    stored = store.write_batch(
        "INBOX", 9, [(3, ("\\Seen", "\\Flagged"), 1_700_000_000.0, BODY), (4, (), None, BODY)]
    )
    assert [s.path for s in stored] == [
        f"INBOX/cur/9.3.mailsync,S={len(BODY)}:2,FS",
        f"INBOX/new/9.4.mailsync,S={len(BODY)}:2,",
    ]
    assert stored[0].sha256 == hashlib.sha256(BODY).hexdigest()
    first = tmp_path / stored[0].path
    assert first.read_bytes() == BODY  # CRLF kept: byte-exact
    assert first.stat().st_mtime == 1_700_000_000.0
    assert os.listdir(tmp_path / "INBOX" / "tmp") == []


def test_spilled_literal_is_moved_not_copied(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path)
    sink = SpillSink(store.spill_dir, 2 * len(BODY))
    sink.write(BODY)
    sink.write(BODY)
    spilled = sink.finish()
    assert spilled.size == 2 * len(BODY)
    (stored,) = store.write_batch("Big", 1, [(1, (), None, spilled)])
    assert stored.sha256 == hashlib.sha256(BODY * 2).hexdigest()
    assert (tmp_path / stored.path).read_bytes() == BODY * 2
    assert not spilled.path.exists()
    assert os.listdir(store.spill_dir) == []


def test_rename_flags_moves_between_new_and_cur(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path)
    (s,) = store.write_batch("F", 2, [(7, (), None, BODY)])
    new_path = store.rename_flags("F", s.path, 2, 7, s.size, ("\\Seen",))
    assert new_path.startswith("F/cur/") and new_path.endswith(":2,S")
    assert (tmp_path / new_path).read_bytes() == BODY
    assert not (tmp_path / s.path).exists()


def test_reconcile_removes_unrecorded_files_and_fixes_renamed_paths(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path)
    a, b, c = store.write_batch(
        "F", 5, [(1, (), None, BODY), (2, (), None, BODY), (3, (), None, BODY)]
    )
    (other_gen,) = store.write_batch("F", 4, [(1, (), None, BODY)])
    renamed = store.rename_flags("F", b.path, 5, 2, b.size, ("\\Seen",))
    (tmp_path / "F" / "tmp" / "5.9.mailsync,S=3:2,").write_bytes(b"par")  # a killed write
    known = {1: a.path, 2: b.path}  # 3 landed but its commit did not; 2's rename was lost
    asked: list[list[int]] = []

    def lookup(uids: list[int]) -> dict[int, str]:
        asked.append(sorted(uids))
        return {u: known[u] for u in uids if u in known}

    fixes, removed = store.reconcile("F", 5, lookup)
    assert sorted(u for batch in asked for u in batch) == [1, 2, 3]  # UIDVALIDITY 5's files
    assert fixes == {2: renamed}
    assert removed == 1 and not (tmp_path / c.path).exists()
    assert (tmp_path / a.path).exists()
    assert (tmp_path / other_gen.path).exists()  # another UIDVALIDITY is never touched
    assert os.listdir(tmp_path / "F" / "tmp") == []


def test_unwritable_archive_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError):
        MaildirStore(blocker / "sub")


def test_state_round_trip(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.sqlite")
    try:
        db.insert_messages(
            [
                MessageRow("INBOX", 7, 0, 1, 10, "aa", ("\\Seen",), "d", "INBOX/cur/x"),
                MessageRow("INBOX", 7, 0, 2, 20, "bb", (), "d", "INBOX/new/y"),
            ],
            [None, HeaderInfo("<m@x>", "S", "a@x", "b@x", "2024-01-01")],
        )
        db.update_flags("INBOX", 7, [(2, ("\\Flagged",), "INBOX/cur/y2")])
        db.mark_deleted("INBOX", 7, [1])
        db.save_folder(FolderRecord("INBOX", "INBOX", 7, 0, 3, None, 2), 1.0)
        rows = db.messages("INBOX", 7)
        assert rows[1].deleted_on_server and not rows[2].deleted_on_server
        assert rows[2].flags == ("\\Flagged",) and rows[2].path == "INBOX/cur/y2"
        assert rows[2].message_id == "<m@x>"
        assert db.folders()["INBOX"].uidnext == 3
        assert db.counts() == {"INBOX": (1, 1)}
        # a chunk of a listing: UIDs 1 and 3 listed, 2 in the range but gone from the server
        db.insert_messages(
            [MessageRow("INBOX", 7, 0, u, 5, "cc", (), "d", f"INBOX/new/{u}") for u in (2, 3, 9)]
        )
        got, gone = db.diff_chunk("INBOX", 7, [1, 3], 1, 5, True)
        assert sorted(r.uid for r in got) == [1, 3] and gone == 1
        assert db.rows_for("INBOX", 7, [2])[0].deleted_on_server
        assert not db.rows_for("INBOX", 7, [9])[0].deleted_on_server  # beyond the range
        got, gone = db.diff_chunk("INBOX", 7, [], 6, None, True)
        assert got == [] and gone == 1
        db.mark_generation_gone("INBOX", 7)
        assert all(r.deleted_on_server for r in db.messages("INBOX").values())
    finally:
        db.close()


async def test_account_archive_runs_in_its_writer_thread(tmp_path: Path) -> None:
    archive = AccountArchive(tmp_path / "acct", fsync=False)
    await archive.open()
    try:
        stored = await archive.run(
            archive.store_batch, "INBOX", "INBOX", 3, 0, [(1, ("\\Seen",), None, BODY, "x")]
        )
        record = await archive.run(archive.load_folder, "INBOX", "INBOX", 3)
        assert record is None
        (row,) = await archive.run(archive.state.rows_for, "INBOX", 3, [1, 2])
        assert row.path == stored[0].path
        await archive.run(archive.update_flags, "INBOX", "INBOX", 3, [(1, ())])
        (row,) = await archive.run(archive.state.rows_for, "INBOX", 3, [1])
        assert row.path.startswith("INBOX/new/") and row.flags == ()
    finally:
        await archive.aclose()


def test_a_batch_is_synced_in_parallel_and_lands_whole(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path, fsync=True, method="files")
    try:
        bodies = [BODY + b"%d\r\n" % i for i in range(40)]
        stored = store.write_batch("INBOX", 5, [(i, (), None, b) for i, b in enumerate(bodies)])
        assert [(tmp_path / s.path).read_bytes() for s in stored] == bodies
        assert os.listdir(tmp_path / "INBOX" / "tmp") == []
        assert store._sync_pool is not None  # many files: synced by the thread pool
    finally:
        store.close()
    assert store._sync_pool is None
    # the store stays usable after close(): the threads come back on demand
    (again,) = store.write_batch("INBOX", 5, [(99, (), None, BODY)])
    store.close()
    assert (tmp_path / again.path).read_bytes() == BODY


@pytest.mark.skipif(not syncfs_usable(), reason="syncfs with error reports needs Linux 5.8+")
def test_syncfs_syncs_a_batch_in_two_calls_whatever_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One syncfs before the renames (the files) and one after (the renames), never a call per
    file: what makes the default method cheap (foundation.durable)."""
    calls: list[tuple[str, Path]] = []
    real_syncfs = durable.syncfs

    def counted_syncfs(path: Path) -> None:
        calls.append(("syncfs", path))
        real_syncfs(path)

    def no_per_file(path: Path) -> None:
        calls.append(("per-file", path))

    monkeypatch.setattr(store_module, "syncfs", counted_syncfs)
    monkeypatch.setattr(store_module, "fdatasync_path", no_per_file)
    monkeypatch.setattr(store_module, "fsync_dir", no_per_file)
    store = MaildirStore(tmp_path, fsync=True)
    try:
        bodies = [BODY + b"%d\r\n" % i for i in range(40)]
        stored = store.write_batch("INBOX", 5, [(i, (), None, b) for i, b in enumerate(bodies)])
    finally:
        store.close()
    assert [(tmp_path / s.path).read_bytes() for s in stored] == bodies
    assert calls == [("syncfs", tmp_path / "INBOX")] * 2
    assert store._sync_pool is None


def test_a_syncfs_error_fails_the_batch_before_anything_is_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(path: Path) -> None:
        raise OSError(5, "Input/output error", str(path))

    monkeypatch.setattr(store_module, "syncfs_usable", lambda: True)
    monkeypatch.setattr(store_module, "syncfs", failing)
    store = MaildirStore(tmp_path, fsync=True)
    with pytest.raises(StorageError, match="Input/output error"):
        store.write_batch("INBOX", 5, [(1, (), None, BODY)])
    assert os.listdir(tmp_path / "INBOX" / "new") == []
    assert os.listdir(tmp_path / "INBOX" / "cur") == []


def test_blocking_hook_opens_and_closes_the_archive_in_the_caller(tmp_path: Path) -> None:
    archive = AccountArchive(tmp_path / "acct", fsync=True)
    archive.open_blocking()
    try:
        stored = archive.store_batch("INBOX", "INBOX", 3, 0, [(1, (), None, BODY, None)])
        assert archive.state.messages("INBOX", 3)[1].path == stored[0].path
    finally:
        archive.close_blocking()
    archive.close_blocking()  # idempotent
    with pytest.raises(AssertionError, match="not opened"):
        _ = archive.state


async def test_astore_batch_stages_the_next_batch_while_one_is_committed(tmp_path: Path) -> None:
    archive = AccountArchive(tmp_path / "acct", fsync=True)
    await archive.open()
    store = archive.store
    gate = threading.Event()
    committing = threading.Event()
    real_commit = store.commit_staged

    def held_commit(staged: StagedBatch) -> None:
        if staged.stored[0].uid == 1:
            committing.set()
            assert gate.wait(10)
        real_commit(staged)

    store.commit_staged = held_commit  # type: ignore[method-assign]
    try:
        first = asyncio.ensure_future(archive.astore_batch(INBOX_3, [(1, (), None, BODY, "d1")]))
        assert await asyncio.to_thread(committing.wait, 10)
        # batch 1 waits in its commit: batch 2 is staged meanwhile (in the writer thread), and
        # neither is in new/ nor recorded until its commit ends
        items: list[StoreItem] = [(2, ("\\Seen",), None, BODY, "d2")]
        second_task = asyncio.ensure_future(archive.astore_batch(INBOX_3, items))
        tmp = archive.root / "INBOX" / "tmp"
        for _ in range(500):
            if len(os.listdir(tmp)) == 2:
                break
            await asyncio.sleep(0.01)
        assert sorted(os.listdir(tmp)) == [
            f"3.1.mailsync,S={len(BODY)}:2,",
            f"3.2.mailsync,S={len(BODY)}:2,S",
        ]
        assert items == []  # the bodies are let go once staged
        assert os.listdir(archive.root / "INBOX" / "new") == []
        assert await archive.run(archive.state.rows_for, "INBOX", 3, [1, 2]) == []
        gate.set()
        (one,) = await first
        (second,) = await second_task
        assert (archive.root / second.path).read_bytes() == BODY
        rows = await archive.run(archive.state.rows_for, "INBOX", 3, [1, 2])
        assert sorted((r.uid, r.path, r.internaldate) for r in rows) == [
            (1, one.path, "d1"),
            (2, second.path, "d2"),
        ]
        assert os.listdir(archive.root / "INBOX" / "tmp") == []
    finally:
        gate.set()
        await archive.aclose()


async def test_a_failed_commit_records_nothing_and_a_rerun_clears_tmp(tmp_path: Path) -> None:
    archive = AccountArchive(tmp_path / "acct", fsync=True)
    await archive.open()

    def broken_commit(staged: StagedBatch) -> None:
        raise StorageError(f"{staged.base}: cannot write message: disk full")

    archive.store.commit_staged = broken_commit  # type: ignore[method-assign]
    try:
        with pytest.raises(StorageError, match="disk full"):
            await archive.astore_batch(INBOX_3, [(1, (), None, BODY, None)])
        assert await archive.run(archive.state.rows_for, "INBOX", 3, [1]) == []
    finally:
        await archive.aclose()
    again = AccountArchive(tmp_path / "acct", fsync=True)
    await again.open()
    try:
        assert await again.run(again.load_folder, "INBOX", "INBOX", 3) is None
        assert os.listdir(again.root / "INBOX" / "tmp") == []
        assert os.listdir(again.root / "INBOX" / "new") == []
    finally:
        await again.aclose()
