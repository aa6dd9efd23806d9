"""The fleet's Redis parts on a real redis-server: the connection-slot semaphore (cap, expiry of
a dead holder's slots, renewal), leases (renewal only by the holder, takeover after expiry) and
the [mail.fleet] settings."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fetchlab.settings import load_settings
from foundation.errors import SettingsError
from mailsync.fleet_queue import FleetQueue, FleetQueueError
from mailsync.fleet_slots import ConnectionSlots
from testbed.redis import RedisServer
from tests.integration._fleet_helpers import fleet_name

pytestmark = pytest.mark.needs_redis


def _slots(queue: FleetQueue, cap: int, ttl: float) -> ConnectionSlots:
    return ConnectionSlots(queue.client, queue.url, queue.slot_key("imap.test:993"), cap, ttl)


def test_cap_holds_under_concurrent_holders(redis_server: RedisServer) -> None:
    queue = FleetQueue(redis_server.url, fleet_name("slots"))
    cap = 5
    held = 0
    peak = 0
    granted: list[int] = []
    lock = threading.Lock()

    def holder(n: int) -> None:
        nonlocal held, peak
        slots = _slots(queue, cap, 30)
        for round_ in range(20):
            got = slots.acquire(f"h{n}-{round_}", 3)
            with lock:
                held += len(got)
                peak = max(peak, held)
                granted.append(len(got))
            time.sleep(0.002)
            with lock:
                held -= len(got)
            slots.release(got)

    threads = [threading.Thread(target=holder, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak <= cap
    assert max(granted) == 3 and 0 in granted  # full grants, and refusals when the cap was hit
    assert _slots(queue, cap, 30).held() == 0


def test_a_dead_holders_slots_expire_and_renewal_keeps_them(redis_server: RedisServer) -> None:
    queue = FleetQueue(redis_server.url, fleet_name("expiry"))
    slots = _slots(queue, 3, 0.4)
    dead = slots.acquire("dead", 2)  # never renewed, never released: a SIGKILLed worker
    alive = slots.acquire("alive", 2)
    assert len(dead) == 2 and len(alive) == 1  # only what the cap left
    assert slots.acquire("third", 1) == []
    for _ in range(4):
        time.sleep(0.2)
        slots.renew(alive)
    # 0.8 s later: the dead holder's slots are free again, the renewed one is still held
    assert slots.held() == 1
    assert len(slots.acquire("third", 5)) == 2


def test_lease_renewed_only_by_its_holder_and_taken_over_after_it_ends(
    redis_server: RedisServer,
) -> None:
    name = fleet_name("lease")
    first = FleetQueue(redis_server.url, name, consumer="first")
    second = FleetQueue(redis_server.url, name, consumer="second")
    assert first.enqueue(["a"])["a"]
    assert first.enqueue(["a"]) == {"a": None}  # queued already: not twice
    job = first.take(lease=0.3, block=0.1)
    assert job is not None and job.account == "a" and job.attempt == 1 and not job.reclaimed
    assert second.take(lease=0.3, block=0.1) is None  # leased, and renewed below
    for _ in range(3):
        time.sleep(0.15)
        assert first.renew(job)
    assert second.take(lease=0.3, block=0.1) is None
    time.sleep(0.4)  # the first worker stops renewing: "dies"
    taken = second.take(lease=0.3, block=0.1)
    assert taken is not None and taken.entry == job.entry
    assert taken.reclaimed and taken.attempt == 2
    assert not first.renew(job)  # the lease moved: the old holder cannot take it back
    (status,) = second.statuses()
    assert status.state == "leased" and status.holder == "second"
    second.done(taken, messages=3, bytes_=30, seconds=0.1)
    assert second.outstanding() == 0
    (status,) = second.statuses()
    assert (status.state, status.messages, status.holder) == ("done", 3, None)
    assert first.enqueue(["a"])["a"]  # done: a new round queues it again


def test_unreachable_redis_is_one_clear_error() -> None:
    with pytest.raises(FleetQueueError, match=r"redis redis://127\.0\.0\.1:1/0"):
        FleetQueue("redis://127.0.0.1:1/0", "x")


def test_fleet_settings_layering_and_checks(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[mail.fleet]\nqueue = "redis://10.0.0.1:6379/2"\nname = "nightly"\n'
        "max_connections_per_server = 15\n",
        "utf-8",
    )
    fleet = load_settings(path, env={}, tool="mail").mail.fleet
    assert (fleet.queue, fleet.name, fleet.max_connections_per_server) == (
        "redis://10.0.0.1:6379/2",
        "nightly",
        15,
    )
    cli = {"mail": {"fleet": {"queue": "redis://127.0.0.1:7000/0"}}}
    fleet = load_settings(path, cli, env={}, tool="mail").mail.fleet
    assert fleet.queue == "redis://127.0.0.1:7000/0" and fleet.name == "nightly"
    env = {"FETCHLAB_MAIL__FLEET__QUEUE": "redis://127.0.0.1:7001/3"}
    fleet = load_settings(path, env=env, tool="mail").mail.fleet
    assert fleet.queue == "redis://127.0.0.1:7001/3" and fleet.max_connections_per_server == 15
    path.write_text("[mail.fleet]\nheartbeat = 10\nlease = 15\n", "utf-8")
    with pytest.raises(SettingsError, match="at least twice heartbeat"):
        load_settings(path, env={}, tool="mail")
    path.write_text('[mail.fleet]\nqueue = "localhost:6379"\n', "utf-8")
    with pytest.raises(SettingsError, match="not a Redis URL"):
        load_settings(path, env={}, tool="mail")
