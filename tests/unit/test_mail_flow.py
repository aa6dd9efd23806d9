"""The pure folder-sync flow, driven with canned IMAP wire bytes (no sockets)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any

import pytest

from foundation.errors import FolderGone, ImapCommandError, ImapConnectError, ImapTLSError
from mailsync.core import flow, listing
from mailsync.core.parser import FetchResp, ResponseParser, Tagged
from mailsync.core.plan import FolderState, LocalMsg
from mailsync.transports.native import translate_connect_error


def result(wire: bytes) -> flow.CommandResult:
    """Parse one command's server answer (untagged lines + the tagged completion)."""
    responses = ResponseParser().feed(wire)
    tagged = responses[-1]
    assert isinstance(tagged, Tagged)
    return flow.CommandResult(tagged, tuple(responses[:-1]))


def diff_chunk(effect: flow.DiffChunk, local: dict[int, LocalMsg]) -> flow.LocalChunk:
    """What the state DB answers a DiffChunk with, over ``local`` (marked gone in place)."""
    listed = set(effect.uids)
    gone = 0
    if effect.mark_gone:
        for uid, msg in list(local.items()):
            if effect.span.contains(uid) and uid not in listed and not msg.deleted_on_server:
                local[uid] = replace(msg, deleted_on_server=True)
                gone += 1
    return flow.LocalChunk({u: local[u] for u in effect.uids if u in local}, gone)


def drive(
    gen: Generator[flow.Effect, object, Any],
    answer: Callable[[flow.Effect], object],
    local: dict[int, LocalMsg] | None = None,
) -> tuple[Any, list[flow.Effect]]:
    """Run ``gen``: ``answer`` gives each effect's result; DiffChunk is answered over ``local``
    (the archive's rows of the folder)."""
    effects: list[flow.Effect] = []
    value: object = None
    while True:
        try:
            effect = gen.send(value)
        except StopIteration as stop:
            return stop.value, effects
        effects.append(effect)
        if isinstance(effect, flow.DiffChunk):
            value = diff_chunk(effect, {} if local is None else local)
        else:
            value = answer(effect)


def fetch_line(uid: int, body: bytes, flags: str = "\\Seen") -> bytes:
    return (
        b'* %d FETCH (UID %d FLAGS (%s) INTERNALDATE "01-Jan-2024 10:00:00 +0000" '
        b"BODY[] {%d}\r\n%s)\r\n" % (uid, uid, flags.encode(), len(body), body)
    )


LIST_WIRE = (
    b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
    b'* LIST (\\Noselect \\HasChildren) "/" "&BCAEMAQxBD4EQgQw-"\r\n'
    b'* LIST (\\HasNoChildren) "/" "&BCAEMAQxBD4EQgQw-/Reports"\r\n'
    b'* LIST (\\HasNoChildren) "/" Spam\r\n'
    b'* LIST (\\HasNoChildren) "/" "Sent Items"\r\n'
    b"T1 OK done\r\n"
)


def test_discover_lists_then_pipelines_status_for_every_folder() -> None:
    # "Spam" is excluded by the patterns but still on the server: not gone
    before = {"Old": FolderState("Old", 1, 5, None, 4), "Spam": FolderState("Spam", 1, 2, 1, 1)}
    gen = flow.discover(frozenset({"CONDSTORE", "LITERAL+"}), ("*",), ("Spam",), before)
    statuses = [
        b"* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 7 HIGHESTMODSEQ 9)\r\nT2 OK s\r\n",
        b'* STATUS "&BCAEMAQxBD4EQgQw-/Reports" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 8 '
        b"HIGHESTMODSEQ 3)\r\nT3 OK s\r\n",
        b'* STATUS "Sent Items" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 9 HIGHESTMODSEQ 1)\r\n'
        b"T4 OK s\r\n",
    ]

    def answer(effect: flow.Effect) -> object:
        assert isinstance(effect, flow.Send)
        if effect.commands == (b'LIST "" "*"',):
            return (result(LIST_WIRE),)
        assert len(effect.commands) == 3  # one round trip for all folders
        assert all(
            b"HIGHESTMODSEQ" in (c if isinstance(c, bytes) else b"".join(c))
            for c in effect.commands
        )
        return tuple(result(w) for w in statuses)

    (jobs, gone), effects = drive(gen, answer)
    assert len(effects) == 2
    assert [j.name for j in jobs] == ["INBOX", "Работа/Reports", "Sent Items"]
    assert jobs[1].raw_name == b"&BCAEMAQxBD4EQgQw-/Reports"
    assert jobs[1].relpath == "Работа/Reports"
    assert jobs[0].status == FolderState("INBOX", 7, 4, 9, 3)
    assert gone == ["Old"]
    unchanged = {"INBOX": FolderState("INBOX", 7, 4, 9, 3)}
    assert flow.is_unchanged(jobs[0], unchanged)
    assert not flow.is_unchanged(jobs[1], unchanged)


def test_discover_with_list_status_needs_one_round_trip() -> None:
    gen = flow.discover(frozenset({"CONDSTORE", "LIST-STATUS"}), ("*",), ("Spam",), {})
    wire = (
        b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
        b"* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 7 HIGHESTMODSEQ 9)\r\n"
        b'* LIST (\\Noselect \\HasChildren) "/" "&BCAEMAQxBD4EQgQw-"\r\n'
        b'* LIST (\\HasNoChildren) "/" "&BCAEMAQxBD4EQgQw-/Reports"\r\n'
        b'* STATUS "&BCAEMAQxBD4EQgQw-/Reports" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 8 '
        b"HIGHESTMODSEQ 3)\r\n"
        b'* LIST (\\HasNoChildren) "/" Spam\r\n'
        b"* STATUS Spam (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 5 HIGHESTMODSEQ 1)\r\n"
        b'* LIST (\\HasNoChildren) "/" "Sent Items"\r\n'
        b"T1 OK done\r\n"
    )

    def answer(effect: flow.Effect) -> object:
        assert isinstance(effect, flow.Send)
        assert effect.commands == (
            b'LIST "" "*" RETURN (STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ))',
        )
        return (result(wire),)

    (jobs, gone), effects = drive(gen, answer)
    assert len(effects) == 1  # LIST and every STATUS in one round trip
    assert [j.name for j in jobs] == ["INBOX", "Работа/Reports", "Sent Items"]
    assert jobs[0].status == FolderState("INBOX", 7, 4, 9, 3)
    assert jobs[1].status == FolderState("Работа/Reports", 8, 2, 3, 1)
    assert jobs[2].status is None  # no STATUS line for it: EXAMINE will tell
    assert gone == []


EXAMINE_WIRE = (
    b"* 3 EXISTS\r\n* OK [UIDVALIDITY 77] ok\r\n* OK [UIDNEXT 6] ok\r\n"
    b"* OK [HIGHESTMODSEQ 12] ok\r\nT1 OK [READ-ONLY] done\r\n"
)
LISTING_WIRE = (
    b'* 1 FETCH (UID 1 RFC822.SIZE 5 FLAGS (\\Seen) INTERNALDATE "01-Jan-2024 10:00:00 +0000")\r\n'
    b'* 2 FETCH (UID 4 RFC822.SIZE 3 FLAGS () INTERNALDATE "01-Jan-2024 10:00:00 +0000")\r\n'
    b'* 3 FETCH (UID 5 RFC822.SIZE 4 FLAGS (\\Flagged) INTERNALDATE "01-Jan-2024 10:00:00 +0000")'
    b"\r\nT2 OK done\r\n"
)


def _job() -> flow.FolderJob:
    return flow.FolderJob("INBOX", b"INBOX", "INBOX", FolderState("INBOX", 77, 6, 12, 3))


def test_sync_folder_plans_fetches_in_pipelined_batches_and_saves_last() -> None:
    local = {
        1: LocalMsg(1, 5, (), "x", "INBOX/new/a"),  # flags changed on the server
        2: LocalMsg(2, 9, ("\\Seen",), "y", "INBOX/cur/b"),  # gone from the server
    }
    opts = flow.SyncOptions(batch_messages=1, batch_bytes=1 << 20, pipeline_depth=2, condstore=True)
    answers = [
        result(fetch_line(5, b"five", "\\Flagged") + fetch_line(4, b"abc", "") + b"T3 OK\r\n"),
        result(b"T4 OK done\r\n"),
    ]

    def answer(effect: flow.Effect) -> object:
        if isinstance(effect, flow.Send):
            first = effect.commands[0]
            first = first if isinstance(first, bytes) else first[0]
            if first.startswith(b"EXAMINE"):
                # EXAMINE and the listing travel in one round trip
                assert effect.commands == (
                    (b"EXAMINE INBOX (CONDSTORE)",),
                    b"UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE MODSEQ)",
                )
                return (result(EXAMINE_WIRE), result(LISTING_WIRE))
            raise AssertionError(f"unexpected {effect}")
        if isinstance(effect, flow.StartFetch):
            # both body batches go out at once (window 2)
            assert effect.window == 2
            assert effect.commands == (
                b"UID FETCH 4 (UID BODY.PEEK[] FLAGS INTERNALDATE)",
                b"UID FETCH 5 (UID BODY.PEEK[] FLAGS INTERNALDATE)",
            )
            return None
        if isinstance(effect, flow.NextFetch):
            # the server interleaved the answers: both bodies came before the first tag
            return answers.pop(0)
        if isinstance(effect, flow.LoadFolder):
            assert effect.uidvalidity == 77
            return flow.LocalFolder(77, 0)
        return None

    res, effects = drive(flow.sync_folder(_job(), opts), answer, local)
    kinds = [type(e).__name__ for e in effects]
    assert kinds == [
        "Send",
        "LoadFolder",
        "DiffChunk",  # uid 2 is marked gone there
        "UpdateFlags",
        "StartFetch",
        "NextFetch",
        "StoreBatch",
        "NextFetch",
        "StoreBatch",
        "SaveFolder",
    ]
    diff = effects[2]
    assert isinstance(diff, flow.DiffChunk) and diff.uids == (1, 4, 5) and diff.mark_gone
    upd = effects[3]
    assert isinstance(upd, flow.UpdateFlags) and upd.changes == ((1, ("\\Seen",)),)
    assert local[2].deleted_on_server
    stores = [e for e in effects if isinstance(e, flow.StoreBatch)]
    assert [[m.uid for m in s.messages] for s in stores] == [[4], [5]]
    body = stores[1].messages[0]
    assert isinstance(body, FetchResp) and body.body == b"five"
    save = effects[-1]
    assert isinstance(save, flow.SaveFolder)
    assert save.state == FolderState("INBOX", 77, 6, 12, 3)
    assert res == flow.FolderResult("INBOX", new_messages=2, new_bytes=7, flag_updates=1, gone=1)


def test_a_message_that_vanishes_mid_sync_blocks_the_folder_save() -> None:
    def answer(effect: flow.Effect) -> object:
        if isinstance(effect, flow.Send):
            first = effect.commands[0]
            first = first if isinstance(first, bytes) else first[0]
            if first.startswith(b"EXAMINE"):
                return (result(EXAMINE_WIRE), result(LISTING_WIRE))
        if isinstance(effect, flow.NextFetch):
            return result(fetch_line(1, b"hello") + b"T3 OK done\r\n")
        if isinstance(effect, flow.LoadFolder):
            return flow.LocalFolder(None, 0)
        return None

    res, effects = drive(flow.sync_folder(_job(), flow.SyncOptions()), answer)
    assert res.missing == (4, 5)
    assert not any(isinstance(e, flow.SaveFolder) for e in effects)


def test_examine_no_means_folder_gone() -> None:
    gen = flow.sync_folder(_job(), flow.SyncOptions())
    assert isinstance(next(gen), flow.Send)
    with pytest.raises(FolderGone, match="INBOX: EXAMINE: NO"):
        gen.send(
            (
                result(b"T1 NO [NONEXISTENT] Mailbox doesn't exist\r\n"),
                result(b"T2 BAD No mailbox selected\r\n"),
            )
        )


def test_listing_bad_raises_command_error() -> None:
    gen = flow.sync_folder(_job(), flow.SyncOptions())
    next(gen)
    load = gen.send((result(EXAMINE_WIRE), result(b"T2 BAD syntax\r\n")))
    assert isinstance(load, flow.LoadFolder)
    with pytest.raises(ImapCommandError, match="BAD"):
        gen.send(flow.LocalFolder(77, 0))


def test_uidvalidity_change_starts_a_new_generation() -> None:
    def answer(effect: flow.Effect) -> object:
        if isinstance(effect, flow.Send):
            first = effect.commands[0]
            first = first if isinstance(first, bytes) else first[0]
            if first.startswith(b"EXAMINE"):
                # STATUS said nothing: EXAMINE tells the size before the listing is planned
                assert len(effect.commands) == 1
                return (result(b"* 0 EXISTS\r\n* OK [UIDVALIDITY 78] x\r\nT1 OK done\r\n"),)
            assert effect.commands == (b"UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE)",)
            return (result(b"T2 OK nothing\r\n"),)
        if isinstance(effect, flow.LoadFolder):
            return flow.LocalFolder(77, 2)
        return None

    job = flow.FolderJob("INBOX", b"INBOX", "INBOX", None)
    res, effects = drive(flow.sync_folder(job, flow.SyncOptions()), answer)
    assert res.new_generation
    gen = [e for e in effects if isinstance(e, flow.NewGeneration)]
    assert gen == [flow.NewGeneration("INBOX", 77, 3)]
    save = effects[-1]
    assert isinstance(save, flow.SaveFolder) and save.generation == 3


def test_listing_in_uid_ranges_for_clients_that_need_it() -> None:
    cmds = flow._listing_commands(1201, flow.SyncOptions(listing_chunk=500, uid_step=True))
    assert cmds == [
        b"UID FETCH 1:500 (UID RFC822.SIZE FLAGS INTERNALDATE)",
        b"UID FETCH 501:1000 (UID RFC822.SIZE FLAGS INTERNALDATE)",
        b"UID FETCH 1001:1200 (UID RFC822.SIZE FLAGS INTERNALDATE)",
        b"UID FETCH 1201:* (UID RFC822.SIZE FLAGS INTERNALDATE)",
    ]


@pytest.mark.parametrize(
    ("name", "include", "exclude", "expected"),
    [
        ("INBOX", ("*",), (), True),
        ("Archive/2024", ("Archive/%",), (), True),
        ("Archive/2024/Q1", ("Archive/%",), (), False),
        ("Archive/2024/Q1", ("Archive/*",), ("*/Q1",), False),
        ("Spam", ("*",), ("Spam",), False),
        ("a.b", ("a.b",), (), True),
        ("axb", ("a.b",), (), False),
    ],
)
def test_folder_patterns(
    name: str, include: tuple[str, ...], exclude: tuple[str, ...], expected: bool
) -> None:
    assert flow.match_folder(name, "/", include, exclude) is expected


def test_connect_errors_are_translated_with_host_and_port() -> None:
    unknown = translate_connect_error(
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "nowhere.invalid", 993
    )
    assert isinstance(unknown, ImapConnectError)
    assert str(unknown) == "nowhere.invalid: unknown host (Name or service not known)"
    refused = translate_connect_error(ConnectionRefusedError(111, "refused"), "127.0.0.1", 1)
    assert str(refused) == "127.0.0.1:1: connection refused"
    cert = ssl.SSLCertVerificationError(1, "verify failed")
    cert.verify_message = "self-signed certificate"
    untrusted = translate_connect_error(cert, "h", 993)
    assert isinstance(untrusted, ImapTLSError)
    assert "not trusted (self-signed certificate)" in str(untrusted)


def _delta_run(exists: int) -> tuple[flow.FolderResult, list[flow.Effect]]:
    job = flow.FolderJob(
        "INBOX",
        b"INBOX",
        "INBOX",
        FolderState("INBOX", 77, 6, 12, 5),
        before=FolderState("INBOX", 77, 4, 10, 3),
    )
    local = {uid: LocalMsg(uid, 5, ("\\Seen",), "x", f"INBOX/cur/{uid}") for uid in (1, 2, 3)}
    meta = b'INTERNALDATE "01-Jan-2024 10:00:00 +0000" MODSEQ (11)'
    delta = (
        b"* 4 FETCH (UID 4 RFC822.SIZE 5 FLAGS () " + meta + b")\r\n"
        b"* 5 FETCH (UID 5 RFC822.SIZE 5 FLAGS () " + meta + b")\r\nT2 OK\r\n"
    )
    changed = b"* 1 FETCH (UID 1 RFC822.SIZE 5 FLAGS (\\Seen \\Flagged) " + meta + b")\r\nT3 OK\r\n"
    full = b"".join(
        b"* %d FETCH (UID %d RFC822.SIZE 5 FLAGS (\\Seen) " % (i, u) + meta + b")\r\n"
        for i, u in enumerate((1, 3, 4, 5), 1)
    )

    def answer(effect: flow.Effect) -> object:
        if isinstance(effect, flow.Send):
            if effect.commands[0] == (b"EXAMINE INBOX (CONDSTORE)",):
                assert effect.commands[1:] == (
                    b"UID FETCH 4:* (UID RFC822.SIZE FLAGS INTERNALDATE MODSEQ)",
                    b"UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE MODSEQ) (CHANGEDSINCE 10)",
                )
                examine = b"* %d EXISTS\r\n* OK [UIDVALIDITY 77] x\r\nT1 OK done\r\n" % exists
                return (result(examine), result(delta), result(changed))
            assert effect.commands == (
                b"UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE MODSEQ)",
            )
            return (result(full + b"T4 OK\r\n"),)
        if isinstance(effect, flow.LoadFolder):
            return flow.LocalFolder(77, 0)
        if isinstance(effect, flow.NextFetch):
            return result(fetch_line(4, b"four!") + fetch_line(5, b"five!") + b"T5 OK\r\n")
        return None

    opts = flow.SyncOptions(condstore=True)
    res, effects = drive(flow.sync_folder(job, opts), answer, local)
    return res, effects


def test_condstore_delta_listing_when_nothing_was_expunged() -> None:
    res, effects = _delta_run(exists=5)
    assert sum(isinstance(e, flow.Send) for e in effects) == 1  # EXAMINE + both listings
    assert res.new_messages == 2 and res.flag_updates == 1 and res.gone == 0


def test_condstore_delta_falls_back_to_a_full_listing_after_an_expunge() -> None:
    res, effects = _delta_run(exists=4)  # 3 + 2 new - 1 expunged
    assert sum(isinstance(e, flow.Send) for e in effects) == 2
    assert res.gone == 1  # uid 2
    assert res.new_messages == 2 and res.flag_updates == 0


# -- a big folder: listed and compared in chunks --------------------------------------------------


def _meta_line(seq: int, uid: int, size: int = 5, flags: str = "\\Seen") -> bytes:
    return (
        b'* %d FETCH (UID %d RFC822.SIZE %d FLAGS (%s) INTERNALDATE "01-Jan-2024 10:00:00 +0000")'
        b"\r\n" % (seq, uid, size, flags.encode())
    )


def test_listing_bounds_cut_ranges_of_chunk_messages_however_sparse_the_uids() -> None:
    assert listing.boundary_command(4, 4) is None  # one range does
    assert listing.boundary_command(9, 4) == b"FETCH 4,8 (UID)"
    answer = result(b"* 4 FETCH (UID 400)\r\n* 8 FETCH (UID 90000)\r\nT1 OK\r\n")
    ranges = listing.boundary_ranges(answer.untagged)
    assert [r.text for r in ranges] == ["1:400", "401:90000", "90001:*"]
    assert ranges[2].contains(10**9) and not ranges[0].contains(401)


def test_a_big_folder_is_listed_in_chunks_and_each_chunk_compared_alone() -> None:
    # 9 messages, chunks of 4: bounds at positions 4 and 8; UIDs 1..9 except 6, plus 20 and 21
    uids = [1, 2, 3, 4, 5, 7, 8, 9, 20]
    job = flow.FolderJob("INBOX", b"INBOX", "INBOX", FolderState("INBOX", 77, 22, 12, 9))
    opts = flow.SyncOptions(batch_messages=100, pipeline_depth=2, listing_chunk=4)
    # the archive has 1..6 (6 is gone from the server; 2 has other flags) and 30 (gone, beyond)
    local = {u: LocalMsg(u, 5, ("\\Seen",), "x", f"INBOX/cur/{u}") for u in (1, 3, 4, 5, 6, 30)}
    local[2] = LocalMsg(2, 5, (), "x", "INBOX/new/2")
    chunks = [
        # the second chunk's first line is credited to the first command (Dovecot does that)
        b"".join(_meta_line(i, u) for i, u in enumerate(uids[:4], 1)) + _meta_line(5, 5),
        b"".join(_meta_line(i, u) for i, u in enumerate(uids[5:8], 6)),
        _meta_line(9, 20) + _meta_line(10, 21, flags=""),
    ]
    bodies = b"".join(fetch_line(u, b"new%d" % u) for u in (7, 8, 9, 20, 21))
    fetches = [result(c + b"T%d OK\r\n" % n) for n, c in enumerate(chunks, 3)]
    fetches.append(result(bodies + b"T9 OK\r\n"))
    sent: list[tuple[flow.Command, ...]] = []

    def answer(effect: flow.Effect) -> object:
        if isinstance(effect, flow.Send):
            cmds = tuple(c if isinstance(c, bytes) else b"".join(c) for c in effect.commands)
            sent.append(cmds)
            # too big to list in the EXAMINE round trip, but where its chunks start goes along
            # (cut at STATUS's 9 messages; the 10th arrived since and falls in the open range)
            assert cmds[0].startswith(b"EXAMINE") and cmds[1:] == (b"FETCH 4,8 (UID)",)
            return (
                # one boundary line credited to EXAMINE: both are read
                result(b"* 10 EXISTS\r\n* OK [UIDVALIDITY 77] x\r\n* 4 FETCH (UID 4)\r\nT1 OK\r\n"),
                result(b"* 8 FETCH (UID 9)\r\nT2 OK\r\n"),
            )
        if isinstance(effect, flow.StartFetch):
            sent.append(effect.commands)
            return None
        if isinstance(effect, flow.NextFetch):
            return fetches.pop(0)
        if isinstance(effect, flow.LoadFolder):
            return flow.LocalFolder(77, 0)
        return None

    res, effects = drive(flow.sync_folder(job, opts), answer, local)
    assert len(sent) == 3  # EXAMINE + bounds, the listing, the bodies
    assert sent[1] == (
        b"UID FETCH 1:4 (UID RFC822.SIZE FLAGS INTERNALDATE)",
        b"UID FETCH 5:9 (UID RFC822.SIZE FLAGS INTERNALDATE)",
        b"UID FETCH 10:* (UID RFC822.SIZE FLAGS INTERNALDATE)",
    )
    diffs = [e for e in effects if isinstance(e, flow.DiffChunk)]
    assert [(d.uids, d.span.text) for d in diffs] == [
        ((1, 2, 3, 4), "1:4"),
        ((5, 7, 8, 9), "5:9"),
        ((20, 21), "10:*"),
    ]
    assert sent[2] == (b"UID FETCH 7:9,20:21 (UID BODY.PEEK[] FLAGS INTERNALDATE)",)
    assert local[6].deleted_on_server and local[30].deleted_on_server
    assert res.gone == 2 and res.flag_updates == 1 and res.new_messages == 5
    assert isinstance(effects[-1], flow.SaveFolder)


def test_refused_listing_bounds_fall_back_to_fixed_uid_ranges() -> None:
    job = flow.FolderJob("INBOX", b"INBOX", "INBOX", FolderState("INBOX", 77, 9, 12, 6))
    opts = flow.SyncOptions(listing_chunk=4)
    started: list[tuple[flow.Command, ...]] = []

    def answer(effect: flow.Effect) -> object:
        if isinstance(effect, flow.Send):
            first = effect.commands[0]
            first = first if isinstance(first, bytes) else first[0]
            # the bounds go with EXAMINE (cut at STATUS's 6 messages); this server refuses them
            assert first.startswith(b"EXAMINE") and effect.commands[1:] == (b"FETCH 4 (UID)",)
            wire = b"* 5 EXISTS\r\n* OK [UIDVALIDITY 77] x\r\n* OK [UIDNEXT 9] x\r\nT1 OK\r\n"
            return (result(wire), result(b"T2 BAD Invalid messageset\r\n"))
        if isinstance(effect, flow.StartFetch):
            started.append(effect.commands)
            return None
        if isinstance(effect, flow.NextFetch):
            return result(b"T3 OK\r\n")
        if isinstance(effect, flow.LoadFolder):
            return flow.LocalFolder(77, 0)
        return None

    res, _ = drive(flow.sync_folder(job, opts), answer)
    assert started[0] == (
        b"UID FETCH 1:4 (UID RFC822.SIZE FLAGS INTERNALDATE)",
        b"UID FETCH 5:8 (UID RFC822.SIZE FLAGS INTERNALDATE)",
        b"UID FETCH 9:* (UID RFC822.SIZE FLAGS INTERNALDATE)",
    )
    assert res.new_messages == 0
