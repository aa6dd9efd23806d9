"""One contract suite for every frontier backend, plus SQLite's durability and memory bounds."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from crawler.core.frontier import Frontier, FrontierCounts, FrontierItem, MemoryFrontier, NewURL
from crawler.frontier_redis import RedisFrontier
from crawler.frontier_sqlite import SqliteFrontier
from foundation.errors import CorruptArchiveError, StorageError
from testbed.redis import RedisServer

ROOT = Path(__file__).resolve().parents[2]

Factory = Callable[[], Frontier]


class Backend:
    """Opens a backend; ``reopen`` simulates a crash and restart (SQLite: close, open again;
    Redis: a new worker object of the same name on the same job)."""

    def __init__(self, kind: str, tmp: Path, redis_url: str | None = None) -> None:
        self.kind = kind
        self.path = tmp / "frontier.db"
        self.redis_url = redis_url
        self.job = f"t-{uuid.uuid4().hex[:12]}"
        self.current: Frontier | None = None

    def open(self) -> Frontier:
        if self.kind == "redis":
            assert self.redis_url is not None
            self.current = RedisFrontier(self.redis_url, self.job, "w1")
        elif self.kind == "memory":
            self.current = MemoryFrontier()
        else:
            self.current = SqliteFrontier(self.path)
        return self.current

    def reopen(self, f: Frontier) -> Frontier:
        if self.kind == "memory":
            return f  # nothing survives a real crash; the same object stands in
        f.close()
        return self.open()

    def close(self) -> None:
        if self.current is not None:
            with contextlib.suppress(ValueError, StorageError, sqlite3.ProgrammingError):
                self.current.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.needs_redis)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    url = None
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
    b = Backend(request.param, tmp_path, url)
    yield b
    b.close()


def urls(*paths: str, depth: int = 0, parent: str | None = None) -> list[NewURL]:
    return [NewURL(f"http://example.com/{p}", depth, parent) for p in paths]


def leased_urls(items: list[FrontierItem]) -> list[str]:
    return [i.url for i in items]


def test_is_a_frontier(backend: Backend) -> None:
    assert isinstance(backend.open(), Frontier)


def test_add_dedups_against_everything_ever_added(backend: Backend) -> None:
    f = backend.open()
    assert f.add(urls("a", "b", "a")) == 2
    assert f.add(urls("b", "c")) == 1
    assert f.counts() == FrontierCounts(3, 0, 0, 0)
    [item] = f.lease(1, 0.0)
    f.complete(item.url)
    assert f.add(urls("a", depth=5)) == 0  # done URLs stay known
    assert f.add([]) == 0
    assert f.add(iter(urls("d"))) == 1
    assert f.counts() == FrontierCounts(3, 0, 1, 0)


def test_lease_is_breadth_first_then_fifo(backend: Backend) -> None:
    f = backend.open()
    f.add(urls("d2a", "d2b", depth=2))
    f.add(urls("d0a", depth=0))
    f.add(urls("d1a", "d1b", depth=1))
    f.add(urls("d0b", depth=0))
    got = leased_urls(f.lease(4, 0.0)) + leased_urls(f.lease(10, 0.0))
    assert [u.rsplit("/", 1)[1] for u in got] == ["d0a", "d0b", "d1a", "d1b", "d2a", "d2b"]
    assert f.lease(10, 0.0) == []


def test_priority_before_depth(backend: Backend) -> None:
    f = backend.open()
    f.add([NewURL("http://example.com/low", 0), NewURL("http://example.com/high", 3, None, 5)])
    assert leased_urls(f.lease(2, 0.0)) == ["http://example.com/high", "http://example.com/low"]


def test_lease_item_fields(backend: Backend) -> None:
    f = backend.open()
    f.add([NewURL("https://example.com:8443/x", 2, "https://example.com:8443/")])
    [item] = f.lease(5, 0.0)
    assert item == FrontierItem(
        "https://example.com:8443/x", 2, "example.com:8443", 0, "https://example.com:8443/"
    )
    assert f.lease(0, 0.0) == []


def test_complete_fail_and_counts(backend: Backend) -> None:
    f = backend.open()
    f.add(urls("a", "b", "c"))
    a, b, c = f.lease(3, 0.0)
    assert f.counts() == FrontierCounts(0, 3, 0, 0)
    f.complete(a.url)
    f.fail(b.url)
    assert f.counts() == FrontierCounts(0, 1, 1, 1)
    assert f.counts().total == 3
    with pytest.raises(KeyError):
        f.complete(a.url)  # already done
    with pytest.raises(KeyError):
        f.fail("http://example.com/never-added")
    with pytest.raises(KeyError):
        f.retry(b.url, 0.0)  # failed is final
    f.complete(c.url)
    assert f.counts() == FrontierCounts(0, 0, 2, 1)


def test_retry_with_not_before(backend: Backend) -> None:
    f = backend.open()
    f.add(urls("a", "b"))
    a, b = f.lease(2, 100.0)
    f.retry(a.url, 150.0)
    assert f.counts() == FrontierCounts(1, 1, 0, 0)
    assert f.next_ready_at() == 150.0
    assert f.lease(5, 149.9) == []
    [again] = f.lease(5, 150.0)
    assert again.url == a.url
    assert again.attempts == 1
    f.retry(again.url, 0.0)  # ready at once
    assert f.next_ready_at() == 0.0
    [third] = f.lease(5, 151.0)
    assert third.attempts == 2
    f.complete(third.url)
    f.complete(b.url)
    assert f.counts() == FrontierCounts(0, 0, 2, 0)
    assert f.next_ready_at() is None


def test_waiting_retry_does_not_block_ready_urls(backend: Backend) -> None:
    f = backend.open()
    f.add(urls("first"))
    [first] = f.lease(1, 0.0)
    f.retry(first.url, 1000.0)
    f.add(urls("second", "third", depth=3))
    assert leased_urls(f.lease(5, 10.0)) == [
        "http://example.com/second",
        "http://example.com/third",
    ]
    assert f.next_ready_at() == 1000.0
    assert leased_urls(f.lease(5, 2000.0)) == ["http://example.com/first"]


def test_next_ready_at(backend: Backend) -> None:
    f = backend.open()
    assert f.next_ready_at() is None
    f.add(urls("a", "b"))
    assert f.next_ready_at() == 0.0
    a, b = f.lease(2, 0.0)
    assert f.next_ready_at() is None
    f.retry(a.url, 30.0)
    f.retry(b.url, 20.0)
    assert f.next_ready_at() == 20.0


def test_release_leases_after_crash(backend: Backend) -> None:
    f = backend.open()
    f.add(urls("a", "b", "c", "d"))
    a, b, _c = f.lease(3, 0.0)
    f.complete(a.url)
    f.retry(b.url, 5.0)
    f = backend.reopen(f)  # "crash": c was leased, never finished
    assert f.counts() == FrontierCounts(2, 1, 1, 0)
    assert f.release_leases() == 1
    assert f.release_leases() == 0
    assert f.counts() == FrontierCounts(3, 0, 1, 0)
    got = f.lease(10, 10.0)
    assert sorted(leased_urls(got)) == [f"http://example.com/{p}" for p in ("b", "c", "d")]
    assert {i.url: i.attempts for i in got}["http://example.com/b"] == 1
    assert f.add(urls("a", "b", "c", "d")) == 0


def test_closed_frontier_refuses_work(backend: Backend) -> None:
    f = backend.open()
    f.add(urls("a"))
    f.close()
    with pytest.raises((ValueError, StorageError, sqlite3.ProgrammingError)):
        f.add(urls("b"))


def test_backend_extras(backend: Backend) -> None:
    # Not in the Frontier protocol, but every backend has them.
    f = backend.open()
    assert isinstance(f, MemoryFrontier | SqliteFrontier | RedisFrontier)
    f.add(urls("a", "b"))
    f.complete_many(i.url for i in f.lease(2, 0.0))
    f.flush()
    assert f.counts() == FrontierCounts(0, 0, 2, 0)
    assert f.get_meta("k") is None
    f.set_meta("k", "v")
    assert f.get_meta("k") == "v"


# -- SQLite only ---------------------------------------------------------------------------------


def test_sqlite_persists_state_and_meta(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    with SqliteFrontier(path) as f:
        f.add(urls("a", "b", "c"))
        a, _b = f.lease(2, 0.0)
        f.complete(a.url)
        assert f.get_meta("args") is None
        f.set_meta("args", '{"follow": true}')
        f.set_meta("args", '{"follow": false}')
    with SqliteFrontier(path) as f:
        assert f.counts() == FrontierCounts(1, 1, 1, 0)
        assert f.get_meta("args") == '{"follow": false}'
        f.release_leases()
        assert leased_urls(f.lease(5, 0.0)) == ["http://example.com/b", "http://example.com/c"]
    assert not (tmp_path / "f.db-wal").exists() or (tmp_path / "f.db-wal").stat().st_size == 0


def test_sqlite_complete_many_and_wal(tmp_path: Path) -> None:
    with SqliteFrontier(tmp_path / "f.db") as f:
        f.add(urls(*map(str, range(50))))
        items = f.lease(50, 0.0)
        f.complete_many(i.url for i in items)
        assert f.counts() == FrontierCounts(0, 0, 50, 0)
        journal = f._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert journal == "wal"


def test_sqlite_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    path.write_bytes(b"this is not a database file at all" * 200)
    with pytest.raises(CorruptArchiveError):
        SqliteFrontier(path)


def test_sqlite_unwritable_place(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        SqliteFrontier(tmp_path / "missing-dir" / "f.db")


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


@pytest.mark.slow
def test_sqlite_memory_stays_flat(tmp_path: Path, slow_size: bool) -> None:
    total = 1_000_000 if slow_size else 100_000
    batch = 10_000
    with SqliteFrontier(tmp_path / "f.db") as f:
        # Warm up: caches, statements, the page cache (16 MiB) fill with the first batches.
        f.add(NewURL(f"http://h{i % 1000}.example/w/{i}", 0) for i in range(2 * batch))
        base = _rss()
        t0 = time.perf_counter()
        for start in range(2 * batch, total, batch):
            assert (
                f.add(
                    NewURL(f"http://h{i % 1000}.example/p/{i}", 1, "http://seed.example/")
                    for i in range(start, start + batch)
                )
                == batch
            )
        add_s = time.perf_counter() - t0
        assert f.counts().queued == total
        growth_added = _rss() - base
        t0 = time.perf_counter()
        leased = 0
        while items := f.lease(1000, 0.0):
            leased += len(items)
            f.complete_many(i.url for i in items)
        lease_s = time.perf_counter() - t0
        assert leased == total
        assert f.counts() == FrontierCounts(0, 0, total, 0)
        growth = _rss() - base
    print(
        f"\nsqlite frontier {total:,} URLs: add {total / add_s:,.0f} URLs/s, "
        f"lease+complete {total / lease_s:,.0f} URLs/s, RSS growth after add "
        f"{growth_added / 2**20:.1f} MiB, after lease {growth / 2**20:.1f} MiB"
    )
    # Nothing per URL is kept in Python: growth stays within SQLite's page cache and slack.
    assert growth < 48 * 2**20, growth


CRASH_CHILD = textwrap.dedent(
    """
    import sys, time
    from crawler.core.frontier import NewURL
    from crawler.frontier_sqlite import SqliteFrontier

    f = SqliteFrontier(sys.argv[1])
    n = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and n < 100_000:
        f.add(NewURL(f"http://c{j % 7}.example/{n}/{j}", n) for j in range(300))
        items = f.lease(200, 0.0)
        for k, item in enumerate(items):
            if k % 8 == 0:
                f.retry(item.url, 0.0)
            elif k % 8 == 1:
                f.fail(item.url)
            elif k % 8 != 2:  # k % 8 == 2 stays leased, as if in flight
                f.complete(item.url)
        n += 1
        print(n, flush=True)
    """
)


def test_sqlite_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        for _ in range(12):  # let it commit a few rounds, then kill it mid-batch
            assert child.stdout.readline(), child.stderr.read() if child.stderr else ""
        time.sleep(0.013)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL

    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = raw.execute("SELECT COUNT(*) FROM urls").fetchone()[0]
    raw.close()
    assert rows >= 12 * 300
    with SqliteFrontier(path) as f:
        before = f.counts()
        assert before.total == rows
        assert before.leased > 0
        released = f.release_leases()
        assert released == before.leased
        after = f.counts()
        assert after == FrontierCounts(before.queued + released, 0, before.done, before.failed)
        # Work continues: everything queued can be leased and finished.
        while items := f.lease(5000, 0.0):
            f.complete_many(i.url for i in items)
        final = f.counts()
        assert final == FrontierCounts(0, 0, after.queued + after.done, after.failed)


# -- Redis only: several workers on one job ------------------------------------------------------


@pytest.mark.needs_redis
def test_redis_workers_share_dedup_and_take_over_a_dead_worker(redis_server: RedisServer) -> None:
    job = f"t-{uuid.uuid4().hex[:12]}"
    a = RedisFrontier(redis_server.url, job, "a", claim_idle=0.3)
    b = RedisFrontier(redis_server.url, job, "b", claim_idle=0.3)
    try:
        assert a.add(urls("x", "y", "z")) == 3
        assert b.add(urls("x", "y", "w")) == 1  # dedup across workers, by fingerprint
        got_a = a.lease(2, 0.0)
        got_b = b.lease(5, 0.0)
        assert {i.url for i in got_a} | {i.url for i in got_b} == {
            f"http://example.com/{p}" for p in "xyzw"
        }
        assert not {i.url for i in got_a} & {i.url for i in got_b}
        assert b.counts() == FrontierCounts(0, 4, 0, 0)
        # a live worker holds: b cannot complete a's URLs, nor are they free to take
        assert b.next_ready_at() is not None
        with pytest.raises(KeyError):
            b.complete(got_a[0].url)
        b.complete_many(i.url for i in got_b)
        # a dies (its heartbeat stops); after claim_idle b takes its URLs over
        a._stop.set()
        a._r.close()
        time.sleep(0.6)
        b._next_claim = 0.0
        taken = b.lease(10, 0.0)
        assert sorted(i.url for i in taken) == sorted(i.url for i in got_a)
        b.complete_many(i.url for i in taken)
        assert b.counts() == FrontierCounts(0, 0, 4, 0)
        assert b.next_ready_at() is None
    finally:
        a.close()
        b.close()


@pytest.mark.needs_redis
def test_redis_live_worker_keeps_its_leases(redis_server: RedisServer) -> None:
    job = f"t-{uuid.uuid4().hex[:12]}"
    a = RedisFrontier(redis_server.url, job, "a", claim_idle=0.3)
    b = RedisFrontier(redis_server.url, job, "b", claim_idle=0.3)
    try:
        a.add(urls("slow"))
        [item] = a.lease(1, 0.0)
        time.sleep(1.0)  # longer than claim_idle: a's heartbeat keeps the lease fresh
        b._next_claim = 0.0
        assert b.lease(5, 0.0) == []
        a.complete(item.url)
        a.counts()  # waits for a's acknowledgements (they leave from its acker thread)
        assert b.states([item.url]) == {item.url: 2}
    finally:
        a.close()
        b.close()


@pytest.mark.needs_redis
def test_redis_restarted_worker_finds_its_own_leases(redis_server: RedisServer) -> None:
    job = f"t-{uuid.uuid4().hex[:12]}"
    a = RedisFrontier(redis_server.url, job, "a")
    a.add(urls("p", "q"))
    p, q = a.lease(2, 0.0)
    a.set_meta("pages_checkpoint", "10")
    a._stop.set()  # SIGKILL stand-in: nothing released
    a._r.close()
    again = RedisFrontier(redis_server.url, job, "a")
    other = RedisFrontier(redis_server.url, job, "b")
    try:
        assert again.get_meta("pages_checkpoint") == "10"
        assert other.get_meta("pages_checkpoint") is None  # per worker
        assert again.states([p.url, q.url]) == {p.url: LEASED_CODE, q.url: LEASED_CODE}
        assert other.states([p.url]) == {p.url: 0}
        again.complete(p.url)  # its archive holds p: re-acknowledged, not fetched again
        assert again.release_leases() == 1
        [back] = other.lease(5, 0.0)
        assert back.url == q.url
        other.complete(back.url)
        assert other.counts() == FrontierCounts(0, 0, 2, 0)
    finally:
        again.close()
        other.close()


LEASED_CODE = 1


@pytest.mark.needs_redis
def test_redis_worker_back_from_a_pause_does_not_take_back_its_leases(
    redis_server: RedisServer,
) -> None:
    job = f"t-{uuid.uuid4().hex[:12]}"
    a = RedisFrontier(redis_server.url, job, "a", claim_idle=0.3, heartbeat=False)
    b = RedisFrontier(redis_server.url, job, "b", claim_idle=0.3)
    try:
        a.add(urls("x"))
        [item] = a.lease(1, 0.0)
        time.sleep(0.5)  # a is silent (no heartbeat): b takes x over
        b._next_claim = 0.0
        assert [i.url for i in b.lease(5, 0.0)] == [item.url]
        a.beat()  # a wakes up: x stays b's
        time.sleep(0.4)
        b.complete(item.url)
        assert b.counts() == FrontierCounts(0, 0, 1, 0)
    finally:
        a.close()
        b.close()
