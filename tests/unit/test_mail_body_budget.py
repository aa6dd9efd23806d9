"""An account's body FETCHes stay under its byte budget, over every folder and lane.

Without the budget each folder kept ``depth x lanes`` batches asked for ahead of its flow (4 x 4
x 2 MB), whatever the disk's speed. The session is a stand-in (no socket: what is checked is
the driver's own accounting); it answers each command when the test lets it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from drivers.mail_asyncio_folder import BodyBudget, FetchLanes
from mailsync.core import flow
from mailsync.core.responses import Tagged
from mailsync.transports.base import ImapSession


class _Session:
    """Answers every command at once; records what was in flight when each was sent."""

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.sent: list[str] = []
        self.held_at_send: list[int] = []

    async def pipeline(self, cmds: list[object]) -> list[flow.CommandResult]:
        self.sent.append(str(cmds[0]))
        self.held_at_send.append(self.budget.held)
        await asyncio.sleep(0)
        return [flow.CommandResult(Tagged("t", "OK", None, (), ""), ())]


def _start(
    lanes: FetchLanes, session: _Session, name: str, sizes: tuple[int, ...], depth: int = 4
) -> None:
    cmds = tuple(cast(flow.Command, f"{name}{k}") for k in range(len(sizes)))
    lanes.start(flow.StartFetch(cmds, depth, 1, sizes), cast(ImapSession, session))


def _one_folder(
    limit: int, sizes: tuple[int, ...], depth: int = 4
) -> tuple[BodyBudget, _Session, FetchLanes]:
    """One folder fetching batches of ``sizes`` bytes under a budget of ``limit``."""
    budget = BodyBudget(limit)
    session = _Session(budget)
    lanes = FetchLanes(b"A", depth, budget)
    _start(lanes, session, "a", sizes, depth)
    return budget, session, lanes


def test_two_folders_share_the_account_budget() -> None:
    async def scenario() -> None:
        budget = BodyBudget(10)
        session = _Session(budget)
        a, b = FetchLanes(b"A", 4, budget), FetchLanes(b"B", 4, budget)
        _start(a, session, "a", (4,) * 6)
        _start(b, session, "b", (3,) * 6)
        await asyncio.sleep(0.05)
        # without the budget all 8 (4 + 4 of depth) would be out: 28 bytes
        assert budget.held <= 10
        assert len(session.sent) < 8
        got: list[int] = []

        async def flow_side(lanes: FetchLanes) -> None:  # each folder's flow reads slowly
            for _ in range(6):
                await lanes.next()
                got.append(budget.held)
                await asyncio.sleep(0.01)
            lanes.release_unstored()  # the folder's end (the driver's): nothing was stored

        await asyncio.wait_for(asyncio.gather(flow_side(a), flow_side(b)), 5)
        assert len(got) == 12 and len(session.sent) == 12
        assert max(got) <= 10
        assert budget.held == 0
        assert max(session.held_at_send) <= 10  # counted as it is sent

    asyncio.run(scenario())


def test_a_batch_larger_than_the_budget_goes_alone() -> None:
    async def scenario() -> None:
        budget, session, lanes = _one_folder(10, (25, 25, 2))
        await asyncio.sleep(0.05)
        assert session.sent == ["a0"]  # the first fits (nothing held); the second waits
        await lanes.next()
        await asyncio.sleep(0.01)
        assert session.sent == ["a0"]  # a0's bodies are read, not yet written
        budget.give(lanes.hand_to_store())  # its write is done
        await asyncio.sleep(0.01)
        assert session.sent == ["a0", "a1"]
        await lanes.next()
        await lanes.next()  # a1 stored nothing: given back when the flow asks for a2
        lanes.release_unstored()
        assert budget.held == 0

    asyncio.run(scenario())


def test_a_folder_that_stops_gives_back_what_it_asked_for() -> None:
    async def scenario() -> None:
        budget, _, lanes = _one_folder(100, (10,) * 5, depth=2)
        await asyncio.sleep(0.05)
        assert budget.held == 20  # depth 2: two batches asked for, none read
        await lanes.next()
        await lanes.settle()  # the folder failed: the rest is dropped
        assert budget.held == 0

    asyncio.run(scenario())


def test_the_budget_follows_the_link_s_round_trip() -> None:
    from mailsync.core.options import BUDGET_FLOOR, body_budget

    cap = 24 * 1024 * 1024
    assert body_budget(None, cap) == cap  # not timed yet: the setting
    assert body_budget(0.0024, cap) == BUDGET_FLOOR  # loopback
    assert body_budget(0.1, cap) == 20_000_000  # 100 ms at 200 MB/s
    assert body_budget(0.204, cap) == cap  # 100 ms each way: the cap
    assert body_budget(0.001, 4 * 1024 * 1024) == 4 * 1024 * 1024  # a cap below the floor
    assert body_budget(0.5, 0) == 0  # no bound stays no bound


def test_an_account_sizes_its_budget_from_its_fastest_connection(tmp_path: Path) -> None:
    from drivers.mail_asyncio_account import AccountRun
    from mailsync.core.options import BUDGET_FLOOR
    from mailsync.settings import AccountSettings, MailSettings
    from mailsync.transports.base import TransportStats

    account = AccountSettings(name="a", host="127.0.0.1", username="u", password_env="X")
    run = AccountRun(
        account,
        MailSettings(out=tmp_path, accounts=(account,)),
        tmp_path,
        asyncio.Semaphore(1),
        cast(Any, None),
        cast(Any, None),
    )
    assert run.budget.limit == 40 * 1024 * 1024
    slow, fast, untimed = TransportStats(), TransportStats(), TransportStats()
    for seconds in (0.3, 0.2):
        slow.timed_round_trip(seconds)
    fast.timed_round_trip(0.05)
    run.sessions = [cast(ImapSession, SimpleNamespace(stats=s)) for s in (slow, untimed)]
    run._size_budget()
    assert slow.fastest_round_trip == 0.2 and run.budget.limit == 40_000_000
    run.sessions.append(cast(ImapSession, SimpleNamespace(stats=fast)))
    run._size_budget()
    assert run.budget.limit == max(BUDGET_FLOOR, 10_000_000)


def test_bodies_stay_counted_until_their_write_is_done() -> None:
    async def scenario() -> None:
        budget, session, lanes = _one_folder(10, (5, 5, 5, 5), depth=4)
        await asyncio.sleep(0.05)
        assert session.sent == ["a0", "a1"] and budget.held == 10
        await lanes.next()
        held = lanes.hand_to_store()  # a0's StoreBatch: its write holds the 5 bytes
        await asyncio.sleep(0.01)
        assert held == 5 and budget.held == 10 and session.sent == ["a0", "a1"]
        budget.give(held)  # the write is done
        await asyncio.sleep(0.01)
        assert session.sent == ["a0", "a1", "a2"] and budget.held == 10
        await lanes.next()  # a1 read; its results stored nothing: given back at the next read
        await lanes.next()
        await asyncio.sleep(0.01)
        assert session.sent == ["a0", "a1", "a2", "a3"] and budget.held == 10
        await lanes.settle()  # a folder that fails mid-way gives back what it read too
        assert budget.held == 0

    asyncio.run(scenario())
