"""The restore flow (mailsync.core.restore) and its commands (mailsync.core.append), driven with
canned server bytes: no server, no I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator

import pytest

from foundation.errors import ImapLimitError
from mailsync.core import append as cmds
from mailsync.core import restore as core
from mailsync.core.flow import Command, CommandResult, Send
from mailsync.core.parser import ResponseParser, Tagged
from mailsync.core.utf7 import decode_mutf7

Answer = Callable[[Command], bytes]


def result(wire: bytes) -> CommandResult:
    """The CommandResult of one command's answer (untagged lines, then ``T OK ...``)."""
    responses = ResponseParser().feed(wire)
    tagged = responses[-1]
    assert isinstance(tagged, Tagged)
    return CommandResult(tagged, tuple(responses[:-1]))


def item(uid: int, size: int = 5, folder: str = "INBOX", **kw: object) -> core.RestoreItem:
    base: dict[str, object] = {
        "key": (folder, 7, uid),
        "size": size,
        "sha256": f"{uid:064x}",
        "flags": ("\\Seen", "\\Recent", "$Label1"),
        "internaldate": "01-Feb-2024 10:00:00 +0100",
        "message_id": f"<m{uid}@x>",
        "path": f"p/{uid}",
    }
    base.update(kw)
    return core.RestoreItem(**base)  # type: ignore[arg-type]


class Driver:
    """Performs a flow's effects from canned answers and records what it was asked."""

    def __init__(self, answer: Answer, progress: core.Progress | None = None) -> None:
        self.answer = answer
        self.progress = progress or core.Progress(frozenset(), frozenset())
        self.sent: list[bytes] = []
        self.effects: list[object] = []

    def run(
        self, gen: Generator[core.RestoreEffect, object, core.RestoreCounts]
    ) -> core.RestoreCounts:
        value: object = None
        while True:
            try:
                effect = gen.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            self.effects.append(effect)
            if isinstance(effect, Send):
                out = []
                for cmd in effect.commands:
                    self.sent.append(b"".join(cmd) if isinstance(cmd, tuple) else cmd)
                    out.append(result(self.answer(cmd)))
                value = tuple(out)
            elif isinstance(effect, core.LoadProgress):
                value = self.progress
            elif isinstance(effect, core.ReadBodies):
                value = tuple(b"x" * i.size for i in effect.items)
            else:
                value = None

    def of(self, kind: type) -> list[object]:
        return [e for e in self.effects if isinstance(e, kind)]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def first(cmd: Command) -> bytes:
    return cmd if isinstance(cmd, bytes) else cmd[0]


def server(appenduid: bool = True, append_answer: bytes | None = None, exists: int = 0) -> Answer:
    uids = iter(range(100, 10_000))

    def answer(cmd: Command) -> bytes:
        head = first(cmd)
        if head.startswith(b"CREATE"):
            return b"T NO [ALREADYEXISTS] Mailbox already exists\r\n"
        if head.startswith(b"SELECT"):
            return (
                b"* %d EXISTS\r\n* OK [UIDVALIDITY 55] Ok\r\n* OK [UIDNEXT 100] Ok\r\n"
                b"T OK [READ-WRITE] Select completed\r\n" % exists
            )
        if head.startswith(b"APPEND"):
            if append_answer is not None:
                return append_answer
            n = (
                head.count(b"{") + sum(p.count(b"{") for p in cmd[1:])
                if isinstance(cmd, tuple)
                else head.count(b"{")
            )
            got = [next(uids) for _ in range(n)]
            if not appenduid:
                return b"T OK Append completed\r\n"
            return b"T OK [APPENDUID 55 %s] Append completed\r\n" % (
                b"%d:%d" % (got[0], got[-1]) if len(got) > 1 else b"%d" % got[0]
            )
        raise AssertionError(head)

    return answer


# commands ---------------------------------------------------------------------------------------


def test_append_with_literal_plus_is_one_string_with_flags_and_date() -> None:
    msg = cmds.AppendMessage(
        b"Hi\r\n", ("\\Seen", "\\Recent", "$Label1"), "01-Feb-2024 10:00:00 +0100"
    )
    (cmd,) = cmds.append("Archive/2023", [msg], literal_plus=True)
    assert (
        cmd == b'APPEND Archive/2023 (\\Seen $Label1) "01-Feb-2024 10:00:00 +0100" {4+}\r\nHi\r\n'
    )


def test_multiappend_without_literal_plus_waits_for_each_continuation() -> None:
    msgs = [cmds.AppendMessage(b"a", (), None), cmds.AppendMessage(b"bb", ("\\Flagged",), None)]
    parts = cmds.append("Работа/Отчёты", msgs, literal_plus=False)
    wire = cmds.mailbox_wire_name("Работа/Отчёты")
    assert decode_mutf7(wire) == "Работа/Отчёты"
    assert parts == (
        b"APPEND " + wire + b" () {1}",
        b"a (\\Flagged) {2}",
        b"bb",
    )


def test_literal_minus_only_for_small_messages() -> None:
    small = [cmds.AppendMessage(b"a" * 10, (), None)]
    big = [cmds.AppendMessage(b"a" * 5000, (), None)]
    assert len(cmds.append("INBOX", small, literal_plus=False, literal_minus=True)) == 1
    assert len(cmds.append("INBOX", big, literal_plus=False, literal_minus=True)) == 2


def test_folder_names_are_quoted_or_encoded() -> None:
    assert cmds.create("Project X") == (b'CREATE "Project X"',)
    assert cmds.create("a&b") == (b"CREATE a&-b",)
    assert cmds.select("inbox") == (b"SELECT INBOX",)


def test_appenduid_and_uid_sets() -> None:
    ok = result(b"T OK [APPENDUID 38505 3955:3957] done\r\n").tagged
    assert cmds.appenduid(ok) == (38505, [3955, 3956, 3957])
    assert cmds.appenduid(result(b"T OK done\r\n").tagged) is None
    assert cmds.uid_set_members("4:6,9,12:11") == [4, 5, 6, 9, 11, 12]


# planning ---------------------------------------------------------------------------------------


def test_folder_map_renames_a_folder_and_its_children() -> None:
    mapping = core.parse_folder_map(["Archive=Old", "Archive/2023=Y", "INBOX=Restored"])
    assert core.map_folder("Archive", mapping) == "Old"
    assert core.map_folder("Archive/2024", mapping) == "Old/2024"
    assert core.map_folder("Archive/2023/x", mapping) == "Y/x"
    assert core.map_folder("Archived", mapping) == "Archived"
    with pytest.raises(ValueError):
        core.parse_folder_map(["nothing"])


def test_jobs_one_per_destination_largest_first() -> None:
    items = [item(1, 10, "A"), item(2, 50, "B"), item(3, 30, "C")]
    jobs = core.build_jobs(items, {"C": "B"})
    assert [(j.dest, [i.key[2] for i in j.items]) for j in jobs] == [("B", [2, 3]), ("A", [1])]


# the flow ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("depth", "rounds"), [(4, 1), (2, 2), (1, 3)])
def test_multiappend_batches_recorded_pending_then_done_with_their_uids(
    depth: int, rounds: int
) -> None:
    job = core.RestoreJob("INBOX", tuple(item(u) for u in range(1, 6)))
    opts = core.RestoreOptions(
        literal_plus=True, multiappend=True, uidplus=True, batch_messages=2, depth=depth
    )
    drv = Driver(server())
    counts = drv.run(core.restore_folder(job, opts))
    assert (counts.appended, counts.already, counts.failed) == (5, 0, 0)
    appends = [s for s in drv.sent if s.startswith(b"APPEND")]
    assert len(appends) == 3  # 2 + 2 + 1 messages
    sends = [e for e in drv.of(Send) if first(e.commands[0]).startswith(b"APPEND")]  # type: ignore[attr-defined]
    assert len(sends) == rounds  # depth batches per round trip
    assert not any(s.startswith(b"UID FETCH") for s in drv.sent)  # an empty folder: no look-up
    kinds = [type(e).__name__ for e in drv.effects if not isinstance(e, Send | core.ReadBodies)]
    assert kinds == ["LoadProgress"] + ["MarkPending", "MarkDone"] * rounds
    done = [row for e in drv.of(core.MarkDone) for row in e.rows]  # type: ignore[attr-defined]
    assert [(r[1], r[2]) for r in done] == [(55, u) for u in range(100, 105)]
    assert b"\\Recent" not in b"".join(appends)


def test_without_multiappend_single_appends_are_pipelined() -> None:
    job = core.RestoreJob("INBOX", tuple(item(u) for u in range(1, 4)))
    opts = core.RestoreOptions(literal_plus=True, uidplus=True)
    drv = Driver(server())
    drv.run(core.restore_folder(job, opts))
    sends = [e for e in drv.of(Send) if first(e.commands[0]).startswith(b"APPEND")]  # type: ignore[attr-defined]
    assert len(sends) == 1 and len(sends[0].commands) == 3  # type: ignore[attr-defined]


def test_done_messages_are_skipped() -> None:
    job = core.RestoreJob("INBOX", (item(1), item(2)))
    progress = core.Progress(frozenset({("INBOX", 7, 1)}), frozenset())
    drv = Driver(server(), progress)
    counts = drv.run(core.restore_folder(job, core.RestoreOptions(uidplus=True, literal_plus=True)))
    assert (counts.appended, counts.already) == (1, 1)
    assert sum(s.startswith(b"APPEND") for s in drv.sent) == 1


def test_messages_already_in_the_folder_are_recorded_not_sent() -> None:
    """The crash window (message 1 pending: the server stored it, the run died before the
    record) and a restore into a folder that holds a message already (message 3). UID 9 has
    message 1's size and date and its bytes; UID 10 has message 2's size and date but other
    bytes (not taken for it); UID 8 is message 3's twin, already claimed by an earlier record."""
    job = core.RestoreJob(
        "INBOX",
        (
            item(1, sha256=_sha(b"x" * 5)),
            item(2, sha256=_sha(b"y" * 5)),
            item(3, sha256=_sha(b"z" * 5)),
        ),
    )
    progress = core.Progress(frozenset(), frozenset({("INBOX", 7, 1)}), {55: frozenset({8})})
    date = b'INTERNALDATE "01-Feb-2024 09:00:00 +0000"'

    def answer(cmd: Command) -> bytes:
        head = first(cmd)
        if head == b"UID FETCH 1:* (UID RFC822.SIZE INTERNALDATE)":
            return (
                b"* 1 FETCH (UID 8 RFC822.SIZE 5 %s)\r\n* 2 FETCH (UID 9 RFC822.SIZE 5 %s)\r\n"
                b"* 3 FETCH (UID 10 RFC822.SIZE 5 %s)\r\n* 4 FETCH (UID 11 RFC822.SIZE 6 %s)\r\n"
                b'* 5 FETCH (UID 12 RFC822.SIZE 5 INTERNALDATE "02-Feb-2024 09:00:00 +0000")\r\n'
                b"T OK done\r\n" % (date, date, date, date)
            )
        if head.startswith(b"UID FETCH"):
            assert head == b"UID FETCH 9:10 (UID BODY.PEEK[])"  # candidates only, 8 is claimed
            return (
                b"* 2 FETCH (UID 9 BODY[] {5}\r\nxxxxx)\r\n"
                b"* 3 FETCH (UID 10 BODY[] {5}\r\nqqqqq)\r\nT OK done\r\n"
            )
        return server(exists=5)(cmd)

    drv = Driver(answer, progress)
    counts = drv.run(core.restore_folder(job, core.RestoreOptions(uidplus=True, literal_plus=True)))
    assert (counts.found, counts.present, counts.appended) == (1, 0, 2)
    found = drv.of(core.MarkDone)[0]
    assert found.rows == ((job.items[0], 55, 9, "found"),)  # type: ignore[attr-defined]
    appends = [s for s in drv.sent if s.startswith(b"APPEND")]
    assert len(appends) == 2


def test_a_restore_into_the_source_account_sends_only_what_is_missing() -> None:
    job = core.RestoreJob("INBOX", (item(1, sha256=_sha(b"x" * 5)), item(2, size=7)))

    def answer(cmd: Command) -> bytes:
        head = first(cmd)
        if head.startswith(b"UID FETCH 1:*"):
            return (
                b'* 1 FETCH (UID 3 RFC822.SIZE 5 INTERNALDATE "01-Feb-2024 10:00:00 +0100")\r\n'
                b"T OK done\r\n"
            )
        if head.startswith(b"UID FETCH"):
            return b"* 1 FETCH (UID 3 BODY[] {5}\r\nxxxxx)\r\nT OK done\r\n"
        return server(exists=1)(cmd)

    drv = Driver(answer)
    counts = drv.run(core.restore_folder(job, core.RestoreOptions(uidplus=True, literal_plus=True)))
    assert (counts.present, counts.appended) == (1, 1)
    assert drv.of(core.MarkDone)[0].rows == ((job.items[0], 55, 3, "present"),)  # type: ignore[attr-defined]


def test_same_date_compares_instants() -> None:
    assert core.same_date("01-Feb-2024 10:00:00 +0100", " 1-Feb-2024 09:00:00 +0000")
    assert not core.same_date("01-Feb-2024 10:00:00 +0100", "01-Feb-2024 10:00:00 +0000")
    assert core.same_date(None, "01-Feb-2024 10:00:00 +0000")


def test_without_uidplus_the_new_uids_are_looked_up() -> None:
    job = core.RestoreJob("INBOX", (item(1),))

    def answer(cmd: Command) -> bytes:
        head = first(cmd)
        if head.startswith(b"UID FETCH"):
            assert head.startswith(b"UID FETCH 100:* ")  # past the UIDNEXT SELECT gave
            return (
                b'* 1 FETCH (UID 141 RFC822.SIZE 5 INTERNALDATE "01-Feb-2024 10:00:00 +0100")\r\n'
                b"T OK done\r\n"
            )
        return server(appenduid=False)(cmd)

    drv = Driver(answer)
    drv.run(core.restore_folder(job, core.RestoreOptions(literal_plus=True)))
    (done,) = drv.of(core.MarkDone)
    assert done.rows == ((job.items[0], 55, 141, "appended"),)  # type: ignore[attr-defined]


def test_overquota_pauses_then_raises_a_limit_error() -> None:
    job = core.RestoreJob("INBOX", (item(1),))
    full = b"T NO [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n"
    drv = Driver(server(append_answer=full))
    with pytest.raises(ImapLimitError, match="OVERQUOTA"):
        drv.run(
            core.restore_folder(
                job, core.RestoreOptions(uidplus=True, literal_plus=True, retries=2)
            )
        )
    assert [p.attempt for p in drv.of(core.Pause)] == [1, 2]  # type: ignore[attr-defined]
    assert not drv.of(core.MarkDone)


def test_alert_is_shown_to_the_user() -> None:
    job = core.RestoreJob("INBOX", (item(1),))
    answers = iter(
        [
            b"T NO [ALERT] Upload limit reached, try later\r\n",
            b"* OK [ALERT] 90% of your quota used\r\nT OK [APPENDUID 55 7] done\r\n",
        ]
    )

    def answer(cmd: Command) -> bytes:
        if first(cmd).startswith(b"APPEND"):
            nxt = next(answers, None)
            if nxt is not None:
                return nxt
        return server()(cmd)

    drv = Driver(answer)
    counts = drv.run(core.restore_folder(job, core.RestoreOptions(uidplus=True, literal_plus=True)))
    assert counts.appended == 1
    assert [w.text for w in drv.of(core.Warn)] == [  # type: ignore[attr-defined]
        "server alert: Upload limit reached, try later",
        "server alert: 90% of your quota used",
    ]
    assert len(drv.of(core.Pause)) == 1


def test_a_refused_multiappend_is_split_to_find_the_message_the_server_refuses() -> None:
    job = core.RestoreJob("INBOX", (item(1), item(2, size=9), item(3)))

    def answer(cmd: Command) -> bytes:
        whole = b"".join(cmd) if isinstance(cmd, tuple) else cmd
        if whole.startswith(b"APPEND") and (whole.count(b"{") > 1 or b"{9+}" in whole):
            return b"T NO Message too large\r\n"
        return server()(cmd)

    drv = Driver(answer)
    opts = core.RestoreOptions(literal_plus=True, multiappend=True, uidplus=True)
    counts = drv.run(core.restore_folder(job, opts))
    assert (counts.appended, counts.failed) == (2, 1)
    (failed,) = drv.of(core.MarkFailed)
    assert [i.key[2] for i in failed.items] == [2]  # type: ignore[attr-defined]
    assert "Message too large" in counts.errors[0]
    assert not drv.of(core.Pause)


def test_trycreate_creates_the_folder_and_tries_again() -> None:
    job = core.RestoreJob("New", (item(1),))
    answers = iter([b"T NO [TRYCREATE] Mailbox does not exist\r\n"])

    def answer(cmd: Command) -> bytes:
        if first(cmd).startswith(b"APPEND"):
            nxt = next(answers, None)
            if nxt is not None:
                return nxt
        return server()(cmd)

    drv = Driver(answer)
    counts = drv.run(core.restore_folder(job, core.RestoreOptions(uidplus=True, literal_plus=True)))
    assert counts.appended == 1
    assert sum(s.startswith(b"CREATE") for s in drv.sent) == 2


def test_counts_kept_across_attempts_do_not_count_twice() -> None:
    job = core.RestoreJob("INBOX", (item(1), item(2)))
    counts = core.RestoreCounts(appended=1)  # an earlier attempt sent message 1, then broke
    progress = core.Progress(frozenset({("INBOX", 7, 1)}), frozenset())
    drv = Driver(server(), progress)
    drv.run(core.restore_folder(job, core.RestoreOptions(uidplus=True, literal_plus=True), counts))
    assert (counts.appended, counts.already) == (2, 0)


def test_options_from_capabilities() -> None:
    caps = frozenset({"IMAP4REV1", "LITERAL+", "MULTIAPPEND", "UIDPLUS"})
    opts = core.RestoreOptions.from_capabilities(caps, retries=3)
    assert (opts.literal_plus, opts.multiappend, opts.uidplus, opts.retries) == (
        True,
        True,
        True,
        3,
    )
    assert not core.RestoreOptions.from_capabilities(frozenset()).multiappend
