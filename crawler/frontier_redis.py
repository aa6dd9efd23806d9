"""The shared frontier: Redis Streams with one consumer group, for many workers on many machines.

Behind the same :class:`~crawler.core.frontier.Frontier` interface as memory and SQLite; one
instance is one *worker* (a consumer of the group) of one *job*. Key layout and the atomic
scripts: :mod:`crawler.redis_scripts`.

- ``add``: one script per chunk sets the fingerprint in the job's ``st`` hash and appends the
  URL to its band's stream only if it was unseen (HSETNX + XADD together), so two workers that
  find the same link queue it once.
- ``lease``: XREADGROUP ``>`` band by band (priority, then breadth first); a leased URL is an
  entry in this worker's pending list. ``complete``/``fail``: XACK + XDEL + the mark, called by
  the commit path only after the URL's WARC records and pages.jsonl line are written.
- A dead worker's entries are taken over with XAUTOCLAIM once idle for ``claim_idle`` seconds;
  a live worker's heartbeat thread re-claims its own entries (XCLAIM JUSTID, idle back to 0)
  every ``claim_idle / 4`` seconds, so a slow fetch is never stolen.
- A restarted worker (same name) finds its own pending entries at open: the pages checkpoint
  marks those its archive already holds (``states`` says LEASED for them) and ``release_leases``
  queues the rest again.
- ``next_ready_at`` is not None while another worker still holds leases: a worker stays for the
  job until nothing is queued, leased or waiting to be retried anywhere.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

from crawler.core.flow import host_of
from crawler.core.frontier import DONE, FAILED, LEASED, QUEUED, FrontierCounts, FrontierItem, NewURL
from crawler.core.urls import fingerprint
from crawler.redis_conn import RECONNECT, Translate, connect, job_prefix
from crawler.redis_scripts import ACK, ADD, LEASE, REQUEUE
from foundation.errors import StorageError

__all__ = ["CLAIM_IDLE", "RedisFrontier"]

CLAIM_IDLE = 60.0  # seconds a dead worker's leased URL waits before another worker takes it
_CHUNK = 500  # URLs per add / ack script call
_STATES = {b"0": QUEUED, b"2": DONE, b"3": FAILED}


def _band(priority: int, depth: int) -> tuple[str, int]:
    # lower score leases first: higher priority, then lower depth
    return f"{priority}:{depth}", -priority * 1_000_000 + depth


def _entry(band: str, url: str, depth: int, parent: str | None, attempts: int, prio: int) -> str:
    score = _band(prio, depth)[1]
    fields = {"b": band, "s": str(score), "u": url, "d": str(depth), "p": parent or ""}
    return json.dumps({**fields, "a": str(attempts), "r": str(prio)}, sort_keys=True)


class _Lease:
    __slots__ = ("attempts", "band", "depth", "id", "parent", "priority")

    def __init__(self, band: str, entry_id: str, fields: dict[str, str]) -> None:
        self.band = band
        self.id = entry_id
        self.depth = int(fields["d"])
        self.parent = fields["p"] or None
        self.attempts = int(fields["a"])
        self.priority = int(fields["r"])


class RedisFrontier:
    """One worker's view of the job ``job`` on the Redis server at ``url``. Thread-safe."""

    def __init__(
        self,
        url: str,
        job: str,
        worker: str,
        *,
        claim_idle: float = CLAIM_IDLE,
        heartbeat: bool = True,
    ) -> None:
        self.url = url
        self.job = job
        self.worker = worker
        self.prefix = job_prefix(job)
        self.claim_idle = claim_idle
        self._r = connect(url)
        self._lock = threading.RLock()
        self._leases: dict[str, _Lease] = {}  # url -> where its entry is
        self._claimed: list[FrontierItem] = []  # taken over from dead workers, not yet leased
        self._next_claim = 0.0
        self._closed = False
        self._working = False  # set by the first lease
        self._stop = threading.Event()
        # bumped when the Redis server restarted (its run_id changed): writes of its last
        # un-fsynced second may be gone, so the worker forgets the links it met (they may have
        # been lost with that second) and requeues leases of its own it no longer knows
        self.epoch = 0
        with self._errors():
            self._add = self._r.register_script(ADD)
            self._lease = self._r.register_script(LEASE)
            self._ack = self._r.register_script(ACK)
            self._requeue = self._r.register_script(REQUEUE)
            self._load_own_pending()
            self._run_id = self._server_id()
            self.beat()
        self._acks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ack_error: BaseException | None = None
        self._acker: threading.Thread | None = threading.Thread(
            target=self._ack_loop, name="redis-ack", daemon=True
        )
        self._acker.start()
        self._thread: threading.Thread | None = None
        if heartbeat:
            self._thread = threading.Thread(target=self._beat_loop, name="redis-hb", daemon=True)
            self._thread.start()

    # -- plumbing -------------------------------------------------------------------------------
    def _errors(self) -> Translate:
        if self._closed:
            raise ValueError("frontier is closed")
        return Translate(self.url)

    def _k(self, name: str) -> str:
        return self.prefix + name

    def _bands(self) -> list[str]:
        return [b.decode() for b in self._r.zrange(self._k("bands"), 0, -1)]

    def _own_pending(self, band: str) -> Iterator[tuple[str, dict[str, str]]]:
        """This worker's pending entries in ``band`` with their fields (deleted ones left out)."""
        key = self._k("q:" + band)
        start = "-"
        while True:
            rows = self._r.xpending_range(key, "g", start, "+", 1000, consumername=self.worker)
            if not rows:
                return
            for row in rows:
                eid = row["message_id"].decode()
                got = self._r.xrange(key, eid, eid)
                if got:
                    yield eid, {k.decode(): v.decode() for k, v in got[0][1].items()}
            last = rows[-1]["message_id"].decode()
            start = "(" + last
            if len(rows) < 1000:
                return

    def _load_own_pending(self) -> None:
        """A restarted worker's leases from its previous life (same worker name)."""
        for band in self._bands():
            for eid, fields in self._own_pending(band):
                self._leases[fields["u"]] = _Lease(band, eid, fields)

    # -- heartbeat and take-over ----------------------------------------------------------------
    def _server_id(self) -> str:
        return str(self._r.info("server")["run_id"])

    def _after_restart(self) -> None:
        """Entries pending for this worker that it does not hold: leases whose ack was lost with
        the server's last second. Queued again (fetched again: at least once, never lost)."""
        # under the lock throughout, the queued marks sent first: a lease or a mark of this
        # worker is all before or all after (an entry taken out to be acked is no orphan)
        with self._lock:
            self._drain()
            for band in self._bands():
                orphans = [
                    (fields["u"], _Lease(band, eid, fields))
                    for eid, fields in self._own_pending(band)
                    if fields["u"] not in self._leases
                ]
                self._requeue_leases(orphans, 0.0, 0)
            self.epoch += 1

    def beat(self) -> None:
        """Keep this worker's leases fresh and say it is alive (the heartbeat thread calls it)."""
        run_id = self._server_id()
        if run_id != self._run_id:
            self._run_id = run_id
            self._after_restart()
        with self._lock:
            by_band: dict[str, list[str]] = {}
            for lease in self._leases.values():
                by_band.setdefault(lease.band, []).append(lease.id)
        pipe = self._r.pipeline(transaction=False)
        for band, ids in by_band.items():
            key = self._k("q:" + band)
            # only entries still pending for this worker: one another worker took over (this
            # one was silent too long: a pause, a stopped process) is never taken back
            mine = {
                row["message_id"].decode()
                for row in self._r.xpending_range(
                    key, "g", "-", "+", len(ids) + 1000, consumername=self.worker
                )
            }
            ids = [i for i in ids if i in mine]
            for i in range(0, len(ids), 1000):
                pipe.xclaim(key, "g", self.worker, 0, ids[i : i + 1000], justid=True)
        if self._working:  # the seeding command is no worker
            seen = {"at": time.time(), "pid": os.getpid(), "host": socket.gethostname()}
            pipe.hset(self._k("workers"), self.worker, json.dumps(seen))
        pipe.execute()

    def _beat_loop(self) -> None:
        while not self._stop.wait(max(0.05, self.claim_idle / 4)):
            try:
                self.beat()
            except Exception:  # a Redis restart: the next beat tries again
                continue

    def _take_over(self) -> None:
        """Claim the entries of workers silent for ``claim_idle`` seconds (XAUTOCLAIM)."""
        idle_ms = int(self.claim_idle * 1000)
        for band in self._bands():
            key, cursor = self._k("q:" + band), "0-0"
            while True:
                got = self._r.xautoclaim(key, "g", self.worker, idle_ms, cursor, count=500)
                cursor = got[0].decode() if isinstance(got[0], bytes) else str(got[0])
                for eid, raw in got[1]:
                    if raw is None:
                        continue
                    fields = {k.decode(): v.decode() for k, v in raw.items()}
                    lease = _Lease(band, eid.decode(), fields)
                    url = fields["u"]
                    with self._lock:
                        if url in self._leases:  # our own, from before a restart: held already
                            continue
                        self._leases[url] = lease
                    self._claimed.append(
                        FrontierItem(url, lease.depth, host_of(url), lease.attempts, lease.parent)
                    )
                if cursor == "0-0":
                    break

    # -- the Frontier protocol ------------------------------------------------------------------
    def add(self, urls: Iterable[NewURL]) -> int:
        new = 0
        it = iter(urls)
        with self._errors():
            while chunk := list(islice(it, _CHUNK)):
                args: list[Any] = [self.prefix]
                for u in chunk:
                    band, score = _band(u.priority, u.depth)
                    args += [fingerprint(u.url), u.url, u.depth, u.parent or "", u.priority]
                    args += [band, score]
                new += int(self._add(args=args))
        return new

    def lease(self, n: int, now: float) -> list[FrontierItem]:
        if n <= 0:
            return []
        with self._errors():
            if not self._working:
                self._working = True
                self.beat()
            mono = time.monotonic()
            if mono >= self._next_claim:
                self._next_claim = mono + max(0.05, self.claim_idle / 4)
                self._take_over()
            out, self._claimed = self._claimed[:n], self._claimed[n:]
            if len(out) < n:
                # under the lock until held: the heartbeat's look for orphans (after a Redis
                # restart) must not see an entry delivered but not yet in self._leases
                with self._lock:
                    rows = self._lease(args=[self.prefix, self.worker, n - len(out), repr(now)])
                    for band, eid, flat in rows:
                        fields = {
                            flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)
                        }
                        lease = _Lease(band.decode(), eid.decode(), fields)
                        url = fields["u"]
                        self._leases[url] = lease
                        out.append(
                            FrontierItem(
                                url, lease.depth, host_of(url), lease.attempts, lease.parent
                            )
                        )
        return out

    def _take(self, urls: Iterable[str]) -> list[tuple[str, _Lease]]:
        with self._lock:
            taken: list[tuple[str, _Lease]] = []
            for url in urls:
                lease = self._leases.pop(url, None)
                if lease is None:
                    for u, back in reversed(taken):
                        self._leases[u] = back
                    raise KeyError(f"not leased: {url}")
                taken.append((url, lease))
            return taken

    def _mark(self, urls: Iterable[str], state: str) -> None:
        """Taken out of this worker's leases now (so a second mark raises KeyError at once); the
        XACK script runs on the acker thread, in order with the pages checkpoint saves."""
        with self._errors(), self._lock:
            taken = self._take(urls)
            triples: list[Any] = []
            for url, lease in taken:
                triples += [lease.band, lease.id, fingerprint(url)]
            if triples:
                self._acks.put(("mark", state, triples))

    # -- the acker thread: acknowledgements leave the event loop ------------------------------
    # (a blocking round trip per group commit stalled the loop: ~2 ms each, 20% of a one-worker
    # crawl's time on a loaded machine, cProfile)
    def _ack_loop(self) -> None:
        while (job := self._acks.get()) is not None:
            kind = job[0]
            try:
                if self._ack_error is None:
                    if kind == "mark":
                        _, state, triples = job
                        for i in range(0, len(triples), 3 * _CHUNK):
                            args = [self.prefix, self.worker, state, *triples[i : i + 3 * _CHUNK]]
                            self._ack(args=args)
                    elif kind == "meta":
                        self._r.hset(self._k("meta:" + self.worker), job[1], job[2])
            except Exception as exc:  # Redis gone for longer than RECONNECT
                self._ack_error = exc
            if kind == "drain":
                job[1].set()

    def _drain(self) -> None:
        """Wait until every acknowledgement queued so far is in Redis."""
        if self._acker is None or not self._acker.is_alive():
            return
        done = threading.Event()
        self._acks.put(("drain", done))
        done.wait()
        if self._ack_error is not None:
            import redis

            exc = self._ack_error
            if isinstance(exc, redis.exceptions.RedisError):
                raise StorageError(f"frontier {self.url}: {exc}") from exc
            raise exc

    def complete(self, url: str) -> None:
        self._mark((url,), "2")

    def complete_many(self, urls: Iterable[str]) -> None:
        """``complete`` for many URLs in one script call per chunk (the commit path's batches)."""
        self._mark(list(urls), "2")

    def fail(self, url: str) -> None:
        self._mark((url,), "3")

    def _requeue_leases(self, taken: list[tuple[str, _Lease]], not_before: float, plus: int) -> int:
        moved = 0
        for i in range(0, len(taken), _CHUNK):
            args: list[Any] = [self.prefix]
            for url, lease in taken[i : i + _CHUNK]:
                entry = _entry(
                    lease.band,
                    url,
                    lease.depth,
                    lease.parent,
                    lease.attempts + plus,
                    lease.priority,
                )
                args += [
                    lease.band,
                    lease.id,
                    repr(not_before),
                    entry,
                    _band(lease.priority, lease.depth)[1],
                ]
            moved += int(self._requeue(args=args))
        return moved

    def retry(self, url: str, not_before: float) -> None:
        with self._errors(), self._lock:
            self._requeue_leases(self._take((url,)), not_before, 1)

    def release_leases(self) -> int:
        """Queue this worker's leased URLs again (other workers' leases are theirs)."""
        with self._errors():
            self._drain()
            self._claimed = []
            with self._lock:
                taken = list(self._leases.items())
                self._leases.clear()
            return self._requeue_leases(taken, 0.0, 0)

    def next_ready_at(self) -> float | None:
        with self._errors():
            self._drain()
            counts = self._counts()
            with self._lock:
                mine = len(self._leases)
            others = counts.leased - mine
            if counts.queued <= 0:
                # another worker's leases may come back (it dies) or bring links: look again
                return time.time() + 0.5 if others > 0 else None
            delayed = int(self._r.zcard(self._k("delayed")))
            if counts.queued > delayed:
                return 0.0
            first = self._r.zrange(self._k("delayed"), 0, 0, withscores=True)
            return float(first[0][1]) if first else 0.0

    def states(self, urls: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        if not urls:
            return out
        with self._errors():
            self._drain()
            codes = self._r.hmget(self._k("st"), [fingerprint(u) for u in urls])
            with self._lock:
                for url, code in zip(urls, codes, strict=True):
                    if url in self._leases:
                        out[url] = LEASED
                    elif code is not None:
                        out[url] = _STATES.get(code, QUEUED)
        return out

    def _counts(self) -> FrontierCounts:
        q, leased, d, f = self._r.hmget(self._k("counts"), ["q", "l", "d", "f"])
        return FrontierCounts(*(int(v or 0) for v in (q, leased, d, f)))

    def counts(self) -> FrontierCounts:
        with self._errors():
            self._drain()
            return self._counts()

    def flush(self) -> None:
        """Links are in Redis when ``add`` returns; marks wait for no one (the acker sends
        them in order), so nothing is to be flushed before a page's line is written."""
        with self._errors():
            return

    # -- the job's metadata (its arguments and scope seeds, written by the seeding command) -----
    def get_job(self, key: str) -> str | None:
        with self._errors():
            raw = self._r.hget(self._k("job"), key)
        return None if raw is None else raw.decode()

    def set_job(self, key: str, value: str) -> None:
        with self._errors():
            self._r.hset(self._k("job"), key, value)

    # -- this worker's metadata (the pages checkpoint is per worker: each has its pages.jsonl) --
    def get_meta(self, key: str) -> str | None:
        with self._errors():
            self._drain()
            raw = self._r.hget(self._k("meta:" + self.worker), key)
        return None if raw is None else raw.decode()

    def set_meta(self, key: str, value: str) -> None:
        """Saved after every mark queued before it (the pages checkpoint's promise)."""
        with self._errors():
            self._acks.put(("meta", key, value))

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._drain()
        finally:
            self._acks.put(None)
            if self._acker is not None:
                self._acker.join(timeout=RECONNECT)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._closed = True
        self._r.close()
