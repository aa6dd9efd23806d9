"""The mail fleet's job queue on Redis: one stream entry per account to back up.

Keys of fleet ``N`` (all under ``mailsync:fleet:N:``)::

    jobs           stream, consumer group "workers": one entry per queued or leased account
    acct:<name>    hash: state, worker, entry, attempts, error, updated, messages, bytes, seconds
    accounts       set of the account names ever enqueued (what fleet-status lists)
    conn:<server>  sorted set: connection slots per IMAP server (:mod:`mailsync.fleet_slots`)

A worker takes an entry with XREADGROUP (or XAUTOCLAIM: an entry whose holder stopped renewing
it for ``lease`` seconds), renews it while it works (XCLAIM JUSTID, only while it still holds it:
a Lua script checks the owner first), and XACKs it only after the account's backup returned with
its files and state durable; the entry is deleted with its ack, so the stream's length is what
is queued or leased, and 0 means the fleet is drained. Several keys that change together (the
ack, the account's record, a retry's new entry) change in one Lua script.

redis-py is the optional ``redis`` extra; it is imported when a queue is opened.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from foundation.errors import MailError, ModeError

if TYPE_CHECKING:
    import redis

__all__ = [
    "GROUP",
    "AccountStatus",
    "FleetQueue",
    "FleetQueueError",
    "Job",
    "connect",
    "worker_id",
]

GROUP = "workers"
LIVE_STATES = ("queued", "leased", "retrying", "waiting")


class FleetQueueError(MailError, ConnectionError):
    """The Redis server of the fleet cannot be reached or refused a command."""


def worker_id() -> str:
    """A consumer name unique to this process: host, PID and a random tail (PIDs repeat)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def connect(url: str) -> redis.Redis:
    """A redis-py client for ``url`` (answers decoded as text), checked with PING."""
    try:
        import redis
    except ImportError:
        raise ModeError("the mail fleet needs redis-py: pip install 'fetchlab[redis]'") from None
    with translated(url):
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=30, socket_connect_timeout=10
        )
        client.ping()
    return client


@contextmanager
def translated(url: str) -> Iterator[None]:
    """redis-py's errors as :class:`FleetQueueError` naming the server (the boundary)."""
    import redis

    try:
        yield
    except redis.RedisError as exc:
        raise FleetQueueError(f"redis {_safe(url)}: {exc}") from exc


def _safe(url: str) -> str:
    """``url`` without a password (redis://:secret@host -> redis://***@host)."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


_ENQUEUE = """
local st = redis.call('HGET', KEYS[2], 'state')
local entry = redis.call('HGET', KEYS[2], 'entry')
if st and (st == 'queued' or st == 'leased' or st == 'retrying' or st == 'waiting') and entry
   and #redis.call('XRANGE', KEYS[1], entry, entry) > 0 then
  return ''
end
local id = redis.call('XADD', KEYS[1], '*', 'account', ARGV[1])
redis.call('HSET', KEYS[2], 'state', 'queued', 'entry', id, 'attempts', 0, 'error', '',
           'worker', '', 'updated', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return id
"""

# renew a lease only while this worker still holds the entry (another may have claimed it)
_RENEW = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[3])
if #p == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 1
"""

# ack + delete the entry and record the account's end (done / failed / waiting) together;
# ARGV[2] ~= '': queue the account again as a new entry (a retry, or a worker stopping)
_FINISH = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
local fields = cjson.decode(ARGV[4])
local id = ''
if ARGV[2] ~= '' then
  id = redis.call('XADD', KEYS[1], '*', 'account', ARGV[2])
  table.insert(fields, 'entry')
  table.insert(fields, id)
end
redis.call('HSET', KEYS[2], unpack(fields))
if ARGV[5] ~= '0' then redis.call('HINCRBY', KEYS[2], 'attempts', tonumber(ARGV[5])) end
return id
"""


@dataclass(frozen=True)
class Job:
    """One taken stream entry: the account to back up and its attempt number (1 = first)."""

    entry: str
    account: str
    attempt: int
    reclaimed: bool  # taken over from a worker whose lease expired


@dataclass(frozen=True)
class AccountStatus:
    """An account's record as ``fleet-status`` shows it (``holder``: the worker holding its
    entry now, from the consumer group; ``idle``: seconds since that worker renewed it)."""

    account: str
    state: str
    attempts: int
    worker: str
    error: str
    updated: float
    messages: int
    bytes: int
    holder: str | None = None
    idle: float | None = None


class FleetQueue:
    """The fleet ``name``'s queue on the Redis server ``url``; ``consumer``: this worker."""

    def __init__(self, url: str, name: str, *, consumer: str | None = None) -> None:
        self.url = url
        self.name = name
        self.consumer = consumer if consumer is not None else worker_id()
        self.client = connect(url)
        self.prefix = f"mailsync:fleet:{name}:"
        self.stream = self.prefix + "jobs"
        self._enqueue = self.client.register_script(_ENQUEUE)
        self._renew = self.client.register_script(_RENEW)
        self._finish = self.client.register_script(_FINISH)
        with translated(url):
            try:
                self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
            except Exception as exc:  # the group exists already: what every later worker sees
                if "BUSYGROUP" not in str(exc):
                    raise

    def _acct(self, account: str) -> str:
        return self.prefix + "acct:" + account

    def slot_key(self, server: str) -> str:
        return self.prefix + "conn:" + server

    # enqueue ----------------------------------------------------------------------------------

    def enqueue(self, accounts: Sequence[str]) -> dict[str, str | None]:
        """Add one job per account; an account already queued or leased keeps its job (None)."""
        out: dict[str, str | None] = {}
        with translated(self.url):
            for name in accounts:
                keys = [self.stream, self._acct(name), self.prefix + "accounts"]
                entry = self._enqueue(keys=keys, args=[name, f"{time.time():.3f}"])
                out[name] = str(entry) or None
        return out

    # taking and renewing ----------------------------------------------------------------------

    def take(self, lease: float, block: float) -> Job | None:
        """An entry whose holder stopped renewing it for ``lease`` s, else a new one (waiting
        up to ``block`` s for it); None when there is neither."""
        with translated(self.url):
            claimed: Any = self.client.xautoclaim(
                self.stream, GROUP, self.consumer, int(lease * 1000), "0-0", count=1
            )
            entries: Any = claimed[1] if claimed else []
            reclaimed = True
            if not entries:
                reclaimed = False
                got: Any = self.client.xreadgroup(
                    GROUP, self.consumer, {self.stream: ">"}, count=1, block=int(block * 1000)
                )
                entries = got[0][1] if got else []
            if not entries:
                return None
            entry, fields = entries[0]
            account = str(fields.get("account", "")) if fields else ""
            key = self._acct(account)
            pipe = self.client.pipeline(transaction=True)
            pipe.hincrby(key, "attempts", 1)
            pipe.hset(
                key,
                mapping={
                    "state": "leased",
                    "worker": self.consumer,
                    "entry": entry,
                    "updated": f"{time.time():.3f}",
                },
            )
            attempt = int(pipe.execute()[0])
        return Job(entry=str(entry), account=account, attempt=attempt, reclaimed=reclaimed)

    def renew(self, job: Job) -> bool:
        """Reset the entry's idle time; False when another worker holds it now."""
        with translated(self.url):
            return bool(self._renew(keys=[self.stream], args=[GROUP, job.entry, self.consumer]))

    # ending a job -----------------------------------------------------------------------------

    def _end(self, job: Job, fields: Mapping[str, Any], *, again: bool, attempts: int = 0) -> None:
        flat: list[str] = []
        for k, v in {**fields, "worker": self.consumer, "updated": f"{time.time():.3f}"}.items():
            flat += [k, str(v)]
        args = [GROUP, job.account if again else "", job.entry, json.dumps(flat), str(attempts)]
        with translated(self.url):
            self._finish(keys=[self.stream, self._acct(job.account)], args=args)

    def done(self, job: Job, *, messages: int, bytes_: int, seconds: float) -> None:
        """The account's backup finished and is durable: ack."""
        fields = {
            "state": "done",
            "error": "",
            "messages": messages,
            "bytes": bytes_,
            "seconds": f"{seconds:.2f}",
        }
        self._end(job, fields, again=False)

    def failed(self, job: Job, error: str) -> None:
        """No more attempts: ack and record the cause."""
        self._end(job, {"state": "failed", "error": error}, again=False)

    def retry(self, job: Job, error: str) -> None:
        """Ack this entry and queue the account again (its attempts count on)."""
        self._end(job, {"state": "retrying", "error": error}, again=True)

    def give_back(self, job: Job, note: str) -> None:
        """This worker stops before the account is done: queue it again at once, the attempt
        not counted (a lease left to expire would hold the account for ``lease`` seconds)."""
        self._end(job, {"state": "queued", "error": note}, again=True, attempts=-1)

    def wait_busy(self, job: Job, note: str) -> None:
        """Another run holds the archive: leave the entry pending without renewing it, so it
        is taken again after ``lease`` (this attempt not counted)."""
        with translated(self.url):
            pipe = self.client.pipeline(transaction=True)
            pipe.hincrby(self._acct(job.account), "attempts", -1)
            pipe.hset(self._acct(job.account), mapping={"state": "waiting", "error": note})
            pipe.execute()

    # looking ----------------------------------------------------------------------------------

    def outstanding(self) -> int:
        """Entries queued or leased (acked entries are deleted): 0 = drained."""
        with translated(self.url):
            return int(self.client.xlen(self.stream))

    def leave(self) -> None:
        """Remove this worker's consumer from the group when it holds nothing."""
        with translated(self.url):
            pending = self.client.xpending_range(
                self.stream, GROUP, "-", "+", 1, consumername=self.consumer
            )
            if not pending:
                self.client.xgroup_delconsumer(self.stream, GROUP, self.consumer)

    def statuses(self) -> list[AccountStatus]:
        """Every enqueued account's record, with the worker holding its entry now."""
        with translated(self.url):
            members: Any = self.client.smembers(self.prefix + "accounts")
            names: list[str] = sorted(members)
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(self._acct(name))
            records = pipe.execute()
            pending: Any = self.client.xpending_range(self.stream, GROUP, "-", "+", 10_000)
        holders = {
            str(p["message_id"]): (str(p["consumer"]), p["time_since_delivered"] / 1000)
            for p in pending
        }
        out = []
        for name, rec in zip(names, records, strict=True):
            holder = holders.get(rec.get("entry", ""))
            out.append(
                AccountStatus(
                    account=name,
                    state=rec.get("state", "?"),
                    attempts=int(rec.get("attempts", 0)),
                    worker=rec.get("worker", ""),
                    error=rec.get("error", ""),
                    updated=float(rec.get("updated", 0) or 0),
                    messages=int(rec.get("messages", 0) or 0),
                    bytes=int(rec.get("bytes", 0) or 0),
                    holder=holder[0] if holder else None,
                    idle=holder[1] if holder else None,
                )
            )
        return out

    def servers(self) -> dict[str, list[str]]:
        """Connection slots held now per IMAP server (expired ones not counted)."""
        out: dict[str, list[str]] = {}
        with translated(self.url):
            sec, usec = self.client.time()
            now_ms = sec * 1000 + usec // 1000
            for key in self.client.scan_iter(match=self.prefix + "conn:*", count=500):
                live = self.client.zrangebyscore(key, now_ms, "+inf")
                if live:
                    out[str(key).removeprefix(self.prefix + "conn:")] = [str(m) for m in live]
        return out
