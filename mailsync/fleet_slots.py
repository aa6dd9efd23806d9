"""A counting semaphore in Redis: IMAP connection slots per server, shared by every worker.

One sorted set per server; each member is one slot, named by its holder, scored by the instant
(Redis server time, ms) its lease ends. Acquiring first drops the expired members, then adds as
many as the cap leaves free, at most the number asked for, in one Lua script (so two workers
never both take the last slot). Holders renew their members with their heartbeat; a SIGKILLed
worker renews nothing, so its slots expire ``ttl`` seconds later and count as free again. The
clock is Redis's own (``TIME`` inside the script), so workers' clocks may disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailsync.fleet_queue import translated

if TYPE_CHECKING:
    import redis

__all__ = ["ConnectionSlots"]

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local free = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[1])
local n = math.min(tonumber(ARGV[2]), free)
local got = {}
for i = 1, n do
  local member = ARGV[1] .. ':' .. i
  redis.call('ZADD', KEYS[1], now + ttl, member)
  got[i] = member
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], ttl * 2) end
return got
"""

# XX: a slot that expired (its holder stalled past the ttl) is not taken back silently
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local kept = 0
for i = 2, #ARGV do
  kept = kept + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return kept
"""


class ConnectionSlots:
    """The slots of one server (``key``), at most ``cap`` held at once, each for ``ttl`` s
    unless renewed."""

    def __init__(self, client: redis.Redis, url: str, key: str, cap: int, ttl: float) -> None:
        self.client = client
        self.url = url
        self.key = key
        self.cap = cap
        self.ttl_ms = max(1, int(ttl * 1000))
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)

    def acquire(self, holder: str, want: int) -> list[str]:
        """Take up to ``want`` free slots for ``holder`` (maybe none); their member names."""
        with translated(self.url):
            got = self._acquire(keys=[self.key], args=[holder, want, self.cap, self.ttl_ms])
        return [str(m) for m in got]

    def renew(self, members: Sequence[str]) -> None:
        """Push the expiry of ``members`` ``ttl`` into the future (expired ones stay gone)."""
        if members:
            with translated(self.url):
                self._renew(keys=[self.key], args=[self.ttl_ms, *members])

    def release(self, members: Sequence[str]) -> None:
        if members:
            with translated(self.url):
                self.client.zrem(self.key, *members)

    def held(self) -> int:
        """Slots held now (expired members not counted)."""
        with translated(self.url):
            sec, usec = self.client.time()
            return int(self.client.zcount(self.key, sec * 1000 + usec // 1000, "+inf"))
