"""The pure sync planner: when to skip, what to fetch, re-flag and mark gone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsync.core.plan import (
    FolderPlan,
    FolderState,
    LocalMsg,
    ServerMsg,
    needs_sync,
    normalize_flags,
    plan_folder,
)

DATE = "17-Jul-1996 02:44:25 -0700"


def state(
    uv: int | None = 7, nxt: int | None = 10, hms: int | None = None, msgs: int | None = 5
) -> FolderState:
    return FolderState("INBOX", uv, nxt, hms, msgs)


def srv(uid: int, size: int = 100, flags: tuple[str, ...] = ()) -> ServerMsg:
    return ServerMsg(uid, size, flags, DATE)


def loc(uid: int, size: int = 100, flags: tuple[str, ...] = (), gone: bool = False) -> LocalMsg:
    return LocalMsg(uid, size, flags, "0" * 64, f"cur/{uid}", deleted_on_server=gone)


def plan(server: list[ServerMsg], local: dict[int, LocalMsg], **kw: object) -> FolderPlan:
    args: dict[str, object] = {
        "uidvalidity_now": 7,
        "uidvalidity_before": 7,
        "batch_messages": 100,
        "batch_bytes": 10_000,
    }
    args.update(kw)
    return plan_folder(server, local, **args)  # type: ignore[arg-type]


def test_needs_sync_first_time_and_unchanged() -> None:
    assert needs_sync(state(), None)
    assert not needs_sync(state(), state())
    assert not needs_sync(state(hms=50), state(hms=50))


@pytest.mark.parametrize(
    "now",
    [
        state(uv=8),
        state(nxt=11),
        state(msgs=4),  # an expunge: UIDNEXT stays, MESSAGES drops
        state(hms=51),
        state(uv=None),
        state(nxt=None),
        state(msgs=None),
    ],
)
def test_needs_sync_on_any_change(now: FolderState) -> None:
    assert needs_sync(now, state(hms=50 if now.highestmodseq else None))


def test_needs_sync_without_condstore_ignores_modseq() -> None:
    # the server stopped reporting HIGHESTMODSEQ: nothing to compare, other numbers decide
    assert not needs_sync(state(hms=None), state(hms=50))


def test_fresh_folder_fetches_everything_in_batches() -> None:
    server = [srv(u, size=4000) for u in (5, 1, 3, 2, 4)]
    p = plan(server, {}, batch_messages=2, batch_bytes=10_000)
    assert p.fetch == ((1, 2), (3, 4), (5,))
    assert p.fetch_count == 5
    assert (p.flag_updates, p.gone, p.new_generation, p.skip) == ((), (), False, False)


def test_batches_bounded_by_bytes() -> None:
    server = [srv(1, 6000), srv(2, 6000), srv(3, 20_000), srv(4, 10), srv(5, 10)]
    p = plan(server, {}, batch_messages=100, batch_bytes=10_000)
    assert p.fetch == ((1,), (2,), (3,), (4, 5))


def test_incremental_plan() -> None:
    server = [srv(1, flags=("\\Seen",)), srv(2, flags=("\\Seen", "\\Flagged")), srv(4), srv(5)]
    local = {
        1: loc(1, flags=("\\seen", "\\Recent")),  # same flags, other case / \Recent
        2: loc(2, flags=("\\Seen",)),  # flagged on the server since
        3: loc(3),  # expunged on the server
        4: loc(4, size=99),  # a short local copy: fetch again
        6: loc(6, gone=True),  # already marked gone earlier
    }
    p = plan(server, local)
    assert p.fetch == ((4, 5),)
    assert p.flag_updates == ((2, ("\\Flagged", "\\Seen")),)
    assert p.gone == (3,)
    assert not p.new_generation


def test_new_generation_fetches_all_and_marks_nothing_gone() -> None:
    local = {1: loc(1), 2: loc(2)}
    p = plan([srv(1), srv(2)], local, uidvalidity_now=8, uidvalidity_before=7)
    assert p.new_generation
    assert p.fetch == ((1, 2),)
    assert p.gone == ()
    assert p.flag_updates == ()


def test_partial_listing_does_not_mark_gone() -> None:
    p = plan([srv(2, flags=("\\Seen",))], {1: loc(1), 2: loc(2)}, partial=True)
    assert p.gone == ()
    assert p.flag_updates == ((2, ("\\Seen",)),)


def test_no_change_plan_is_empty_and_skipped_plan() -> None:
    p = plan([srv(1, flags=("\\Seen",))], {1: loc(1, flags=("\\Seen",))})
    assert p == FolderPlan()
    assert FolderPlan.skipped().skip
    assert FolderPlan.skipped().fetch == ()


def test_repeated_uid_on_server_counted_once() -> None:
    assert plan([srv(1), srv(1)], {}).fetch == ((1,),)


def test_normalize_flags() -> None:
    assert normalize_flags(["\\seen", "\\Seen", "\\Recent", "$b", "$a"]) == ("$a", "$b", "\\seen")


uids = st.sets(st.integers(1, 300), max_size=40)


@given(uids, uids, st.integers(1, 10), st.integers(1, 5000))
def test_plan_properties(on_server: set[int], have: set[int], count: int, max_bytes: int) -> None:
    server = [srv(u, size=u * 7) for u in sorted(on_server)]
    local = {u: loc(u, size=u * 7) for u in have}
    p = plan(server, local, batch_messages=count, batch_bytes=max_bytes)
    fetched = [u for b in p.fetch for u in b]
    assert fetched == sorted(on_server - have)
    assert set(p.gone) == have - on_server
    assert p.flag_updates == ()
    for batch in p.fetch:
        assert len(batch) <= count
        assert len(batch) == 1 or sum(u * 7 for u in batch) <= max_bytes
    # applying the plan converges: a second plan has nothing to do
    after = {u: loc(u, size=u * 7) for u in on_server}
    assert plan(server, after).fetch == ()


def test_message_back_on_the_server_is_no_longer_deleted() -> None:
    """Marked deleted (its folder left the server), then listed again with the same flags (the
    folder was renamed back): the flag update is what clears the mark; nothing is fetched."""
    p = plan([srv(1, flags=("\\Seen",)), srv(2)], {1: loc(1, flags=("\\Seen",), gone=True)})
    assert p.flag_updates == ((1, ("\\Seen",)),)
    assert p.fetch == ((2,),) and p.gone == ()
