"""The crawl worker's per-host places: URLs sent ahead wait for one of their host's places."""

from __future__ import annotations

import asyncio

import pytest

from drivers.crawl_places import HostPlaces


def test_urls_sent_ahead_start_one_per_place_given_back_in_order() -> None:
    async def scenario() -> None:
        places = HostPlaces()
        started: list[int] = []

        async def url(n: int) -> None:
            await places.take("a", 2)
            started.append(n)

        tasks = [asyncio.create_task(url(n)) for n in range(5)]
        await asyncio.sleep(0)
        assert started == [0, 1] and places.running("a") == 2
        places.give_back("a")
        await asyncio.sleep(0)
        assert started == [0, 1, 2] and places.running("a") == 2
        places.give_back("a")
        places.give_back("a")
        await asyncio.sleep(0)
        assert started == [0, 1, 2, 3, 4] and places.running("a") == 2
        for _ in range(2):
            places.give_back("a")
        await asyncio.gather(*tasks)
        assert places.running("a") == 0 and not places._running and not places._waiting

    asyncio.run(scenario())


def test_urls_without_a_limit_start_at_once_but_hold_places() -> None:
    # a host pinned to this worker, then spread: what runs already counts against the share
    async def scenario() -> None:
        places = HostPlaces()
        for _ in range(3):
            await places.take("a", None)
        late = asyncio.create_task(places.take("a", 2))
        await asyncio.sleep(0)
        assert not late.done()
        places.give_back("a")
        await asyncio.sleep(0)
        assert not late.done()  # 2 still run: the share is full
        places.give_back("a")
        await asyncio.sleep(0)
        assert late.done() and places.running("a") == 2
        await places.take("b", 1)  # another host is not held up by a's queue
        assert places.running("b") == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("turn_came", [False, True])
def test_a_cancelled_wait_hands_its_turn_on(turn_came: bool) -> None:
    # cancelled while waiting, or after give_back counted it in but before its task ran
    async def scenario() -> None:
        places = HostPlaces()
        await places.take("a", 1)
        first = asyncio.create_task(places.take("a", 1))
        second = asyncio.create_task(places.take("a", 1))
        await asyncio.sleep(0)
        if turn_came:
            places.give_back("a")
            first.cancel()
        else:
            first.cancel()
            await asyncio.sleep(0)
            places.give_back("a")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert first.cancelled() and second.done() and not second.cancelled()
        assert places.running("a") == 1

    asyncio.run(scenario())
