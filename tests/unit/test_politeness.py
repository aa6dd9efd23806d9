"""Per-host slots: concurrency, delay, Crawl-delay, backoff, and dropping idle slots."""

from __future__ import annotations

import math

import pytest

from crawler.core.politeness import HostSlot, SlotTable

H = "example.com:80"


def test_concurrency_limit() -> None:
    t = SlotTable(per_host=2, delay=0.0)
    assert t.can_start(H, 0.0)
    t.start(H, 0.0)
    t.start(H, 0.0)
    assert not t.can_start(H, 0.0)
    assert math.isinf(t.wait_time(H, 0.0))
    assert t.can_start("other:80", 0.0)  # hosts are independent
    t.finish(H, 1.0)
    assert t.can_start(H, 1.0)
    assert t.wait_time(H, 1.0) == 0.0


def test_delay_between_starts() -> None:
    t = SlotTable(per_host=4, delay=2.0)
    t.start(H, 10.0)
    assert not t.can_start(H, 11.0)
    assert t.wait_time(H, 11.0) == pytest.approx(1.0)
    assert t.can_start(H, 12.0)
    t.start(H, 12.0)
    assert t.slot(H) == HostSlot(H, 4, 2.0, active=2, next_ready=14.0)


def test_crawl_delay_takes_the_larger_value() -> None:
    t = SlotTable(per_host=1, delay=1.0)
    t.set_delay(H, 5.0)
    t.start(H, 0.0)
    t.finish(H, 0.5)
    assert t.wait_time(H, 0.5) == pytest.approx(5.0)  # from the end of the fetch
    t.set_delay("small:80", 0.2)  # smaller than configured: configured wins
    t.start("small:80", 0.0)
    assert t.slot("small:80").delay == 1.0


def test_crawl_delay_survives_slot_drop() -> None:
    t = SlotTable(per_host=1, delay=0.0)
    t.set_delay(H, 3.0)
    t.start(H, 0.0)
    t.finish(H, 10.0)
    assert t.sweep(13.0) == 1  # idle and past next_ready: dropped
    assert len(t) == 0
    t.start(H, 13.0)
    t.finish(H, 13.0)
    assert not t.can_start(H, 15.9)
    assert t.can_start(H, 16.0)
    assert t.slot(H).delay == 3.0
    assert t.slot(H).next_ready == 16.0


def test_delay_also_runs_from_the_end_of_a_fetch() -> None:
    # a request that reached the server late must still leave it the whole delay
    t = SlotTable(per_host=1, delay=0.5)
    t.start(H, 0.0)
    t.finish(H, 0.4)
    assert not t.can_start(H, 0.5)
    assert t.wait_time(H, 0.5) == pytest.approx(0.4)
    assert t.can_start(H, 0.9)
    fast = SlotTable(per_host=2, delay=0.0)  # no delay: a finish leaves no wait behind
    fast.start(H, 0.0)
    fast.finish(H, 0.4)
    assert fast.can_start(H, 0.4) and len(fast) == 0


def test_backoff_pauses_whole_host() -> None:
    t = SlotTable(per_host=8, delay=0.0)
    t.start(H, 0.0)
    t.set_backoff(H, 30.0)
    assert not t.can_start(H, 29.0)
    assert t.wait_time(H, 20.0) == pytest.approx(10.0)
    t.set_backoff(H, 10.0)  # an earlier time never shortens a pause
    assert not t.can_start(H, 29.0)
    assert t.can_start(H, 30.0)
    t.set_backoff("fresh:80", 5.0)  # works for a host with no slot yet
    assert not t.can_start("fresh:80", 4.0)


def test_idle_slots_dropped_memory_bounded() -> None:
    t = SlotTable(per_host=1, delay=0.5)
    for i in range(100_000):
        host = f"h{i}:80"
        now = i * 0.001
        t.start(host, now)
        t.finish(host, now)  # next_ready still ahead: kept until a sweep after it passes
    remaining = len(t)
    assert 0 < remaining < 2_000  # only the last ~0.5 s worth of hosts still wait
    assert t.sweep(1e9) == remaining
    assert len(t) == 0


def test_finish_without_start_is_an_error() -> None:
    t = SlotTable(per_host=1, delay=0.0)
    with pytest.raises(ValueError):
        t.finish(H, 0.0)


@pytest.mark.parametrize(("per_host", "delay"), [(0, 0.0), (1, -1.0)])
def test_invalid_table(per_host: int, delay: float) -> None:
    with pytest.raises(ValueError):
        SlotTable(per_host, delay)
