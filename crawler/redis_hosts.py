"""Per-host politeness and robots.txt verdicts shared by every worker of a Redis job.

Each worker keeps its own slot table (:class:`crawler.core.politeness.SlotTable`); before a fetch
starts it must also win the host's *job-wide* slot, so ``per_host`` and ``delay`` hold for the
whole job, not per worker:

- ``slot:HOST`` (zset): one member per fetch in flight, scored by its expiry (Redis server time,
  ms: no clock of any worker matters). One script call per event-loop tick frees the tick's
  places and asks for the new ones; it drops expired members first, so the
  places of a SIGKILLed worker come back after :data:`SLOT_TTL` seconds; a live worker pushes
  its members' expiry forward every :data:`REFRESH` seconds while their fetches run.
- ``next:HOST`` (string): server time before which no fetch of the host may start (the delay,
  start to start, as in the slot table; a 429/503 pause moves it too).
- ``robots:HOST`` (string): the host's robots.txt verdict as JSON; ``robots-lock:HOST`` (SET NX,
  refreshed like a slot): the one worker fetching it now. The others wait for the verdict, so the
  file is fetched (and archived) once per host per job.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from itertools import count
from typing import Any

from crawler.core.robots import RobotsRules
from crawler.redis_conn import RECONNECT, job_prefix

__all__ = ["REFRESH", "SLOT_TTL", "RedisHosts", "rules_from_json", "rules_to_json"]

SLOT_TTL = 3.0  # seconds a dead worker's slot or robots claim outlives it
REFRESH = 1.0  # seconds between a live worker's refreshes of what it holds
POLL = 0.02  # seconds between looks while a host is full (a finish elsewhere is not signalled)

# ARGV: n releases, ttl ms, (slot key, member) * n releases, then (slot key, next key, member,
# limit, delay ms) per acquire. The places freed first, then each acquire: 0 (acquired) or the
# ms to wait (-1: at the limit, wait for a finish). One call per event-loop tick of a worker:
# a round trip per fetch cost ~20% of a one-worker crawl's speed.
_BATCH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nrel, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local i = 3
for _ = 1, nrel do
  redis.call('ZREM', ARGV[i], ARGV[i + 1])
  i = i + 2
end
local out = {}
while i <= #ARGV do
  local slot, nxt, member = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local limit, delay = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  i = i + 5
  redis.call('ZREMRANGEBYSCORE', slot, '-inf', now)
  local ready = tonumber(redis.call('GET', nxt) or '0')
  if now < ready then
    out[#out + 1] = ready - now
  elseif redis.call('ZCARD', slot) >= limit then
    out[#out + 1] = -1
  else
    redis.call('ZADD', slot, now + ttl, member)
    redis.call('PEXPIRE', slot, ttl * 2)
    if delay > 0 then redis.call('SET', nxt, now + delay, 'PX', delay + 1000) end
    out[#out + 1] = 0
  end
end
return out
"""

# ARGV: next key, pause ms. Moves the host's next start at least ``pause`` ms ahead.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ = now + tonumber(ARGV[2])
local nxt = tonumber(redis.call('GET', ARGV[1]) or '0')
if until_ > nxt then redis.call('SET', ARGV[1], until_, 'PX', tonumber(ARGV[2]) + 1000) end
return 0
"""

# ARGV: ttl ms, (key, member) * n. Pushes the expiry of held slot members forward (XX: never
# revives one) and of robots claims still held by this worker.
_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  if redis.call('TYPE', ARGV[i]).ok == 'string' then
    if redis.call('GET', ARGV[i]) == ARGV[i + 1] then redis.call('PEXPIRE', ARGV[i], ttl) end
  else
    redis.call('ZADD', ARGV[i], 'XX', now + ttl, ARGV[i + 1])
    redis.call('PEXPIRE', ARGV[i], ttl * 2)
  end
end
return 0
"""


def rules_to_json(rules: RobotsRules) -> str:
    return json.dumps(
        {
            "kind": rules.kind,
            "body": base64.b64encode(rules.body).decode("ascii"),
            "fetched_at": rules.fetched_at,
            "temporary": rules.temporary,
            "cause": list(rules.cause) if rules.cause is not None else None,
        }
    )


def rules_from_json(raw: str | bytes) -> RobotsRules:
    data = json.loads(raw)
    cause = data.get("cause")
    return RobotsRules(
        data["kind"],
        base64.b64decode(data["body"]),
        float(data["fetched_at"]),
        bool(data["temporary"]),
        (str(cause[0]), str(cause[1])) if cause else None,
    )


class RedisHosts:
    """The job-wide host slots and robots verdicts, on redis-py's asyncio client (one per loop)."""

    def __init__(self, url: str, job: str, *, per_host: int, ttl: float = SLOT_TTL) -> None:
        import redis.asyncio

        self.prefix = job_prefix(job)
        self.per_host = per_host
        self.ttl_ms = int(ttl * 1000)
        # a bounded pool: each fetch in flight asks for its slot, a connection each would be
        # hundreds per worker
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=16, timeout=None, socket_connect_timeout=5
        )
        self._r: Any = redis.asyncio.Redis(connection_pool=pool)
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        self._batch = self._r.register_script(_BATCH)
        self._pause = self._r.register_script(_PAUSE)
        self._refresh = self._r.register_script(_REFRESH)
        self._me = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._ids = count()
        self._held: dict[str, tuple[str, str]] = {}  # token -> (key, member)
        self._refresher: asyncio.Task[None] | None = None
        # what this tick asks for: acquires waiting for their answer, places to free
        self._want: list[tuple[list[Any], asyncio.Future[int]]] = []
        self._free: list[tuple[str, str]] = []
        self._kicked = False
        self._flushes: set[asyncio.Task[None]] = set()

    def _k(self, name: str) -> str:
        return self.prefix + name

    def _hold(self, key: str, member: str) -> str:
        self._held[member] = (key, member)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_loop())
        return member

    async def _refresh_loop(self) -> None:
        while self._held:
            await asyncio.sleep(REFRESH)
            args: list[Any] = [self.ttl_ms]
            for key, member in list(self._held.values()):
                args += [key, member]
            with contextlib.suppress(Exception):  # Redis restarting: the next round tries again
                if len(args) > 1:
                    await self._refresh(args=args)

    async def _retried(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call()``, again while Redis is away (a restart), for up to RECONNECT seconds."""
        deadline = time.monotonic() + RECONNECT
        while True:
            try:
                return await call()
            except self._errors:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    # -- slots ------------------------------------------------------------------------------------
    def _kick(self) -> None:
        if not self._kicked:
            self._kicked = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._kicked = False
        task = asyncio.create_task(self._flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self) -> None:
        """One script call for the tick's releases and acquires (retried while Redis is away:
        a replay adds the same members again and removes the same ones, which changes nothing)."""
        want, self._want = self._want, []
        free, self._free = self._free, []
        if not want and not free:
            return
        args: list[Any] = [len(free), self.ttl_ms]
        for key, member in free:
            args += [key, member]
        for each, _ in want:
            args += each
        try:
            got = await self._retried(lambda: self._batch(args=args))
        except Exception as exc:  # Redis gone for good: the fetches fail with it
            for _, fut in want:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), wait in zip(want, got, strict=True):
            if not fut.done():
                fut.set_result(int(wait))

    async def acquire(self, host: str, delay: float) -> str:
        """Wait for a job-wide place for ``host``; returns the token to :meth:`release`."""
        member = f"{self._me}:{next(self._ids)}"
        slot, nxt = self._k("slot:" + host), self._k("next:" + host)
        args: list[Any] = [slot, nxt, member, self.per_host, int(delay * 1000)]
        while True:
            fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._want.append((args, fut))
            self._kick()
            wait = await fut
            if wait == 0:
                return self._hold(slot, member)
            await asyncio.sleep(POLL if wait < 0 else min(wait / 1000, 1.0))

    async def release(self, token: str) -> None:
        """Free a place (sent with the tick's next batch; it expires by itself if Redis is away)."""
        held = self._held.pop(token, None)
        if held is None:
            return
        if "robots-lock:" in held[0]:
            with contextlib.suppress(Exception):
                await self._r.delete(held[0])
        else:
            self._free.append(held)
            self._kick()

    async def pause(self, host: str, seconds: float) -> None:
        """A 429/503 pause for the whole job."""
        with contextlib.suppress(Exception):
            await self._pause(args=[self._k("next:" + host), int(seconds * 1000)])

    # -- robots.txt ---------------------------------------------------------------------------
    async def robots(self, host: str) -> RobotsRules | None:
        raw = await self._retried(lambda: self._r.get(self._k("robots:" + host)))
        return None if raw is None else rules_from_json(raw)

    async def claim_robots(self, host: str) -> str | None:
        """The token when this worker is to fetch ``host``'s robots.txt, else None."""
        key = self._k("robots-lock:" + host)
        member = f"{self._me}:{next(self._ids)}"
        if await self._retried(lambda: self._r.set(key, member, nx=True, px=self.ttl_ms)):
            self._held[member] = (key, member)
            if self._refresher is None or self._refresher.done():
                self._refresher = asyncio.create_task(self._refresh_loop())
            return member
        return None

    async def store_robots(self, host: str, rules: RobotsRules, token: str | None) -> None:
        key, raw = self._k("robots:" + host), rules_to_json(rules)
        await self._retried(lambda: self._r.set(key, raw, ex=24 * 3600))
        await self.unclaim_robots(token)

    async def unclaim_robots(self, token: str | None) -> None:
        if token is None:
            return
        held = self._held.pop(token, None)
        if held is not None:
            with contextlib.suppress(Exception):
                await self._r.delete(held[0])

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(BaseException):
                await self._refresher
        for token in list(self._held):
            await self.release(token)
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._flush()
        await self._r.aclose()
