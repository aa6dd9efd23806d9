"""What ``crawler status --frontier redis://... --job NAME`` reports: the job's counts, each
worker's share, and whether the job is finished (nothing queued, leased or waiting for a retry),
read from the keys of :mod:`crawler.redis_scripts` without changing any."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from crawler.redis_conn import connect, job_prefix
from foundation.errors import StorageError

__all__ = ["JobStatus", "WorkerStatus", "job_status"]


@dataclass
class WorkerStatus:
    name: str
    done: int = 0
    failed: int = 0
    leased: int = 0
    seen_ago: float | None = None  # seconds since its last heartbeat
    pid: int | None = None
    host: str | None = None
    pages_per_s: float | None = None


@dataclass
class JobStatus:
    job: str
    exists: bool
    queued: int = 0
    leased: int = 0
    done: int = 0
    failed: int = 0
    retry_waiting: int = 0  # part of queued: retries waiting for their not-before time
    seen: int = 0  # fingerprints known (every URL ever queued)
    workers: list[WorkerStatus] = field(default_factory=list)
    pages_per_s: float | None = None

    @property
    def finished(self) -> bool:
        return self.exists and self.queued == 0 and self.leased == 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["finished"] = self.finished
        return data


def job_status(url: str, job: str, *, interval: float = 0.0) -> JobStatus:
    """The job's status; with ``interval`` > 0 the done counts are read twice that far apart
    and the rates (pages/s, the job's and each worker's) come from the difference."""
    client = connect(url)
    try:
        first = _read(client, job)
        if interval <= 0 or not first.exists:
            return first
        time.sleep(interval)
        second = _read(client, job)
    except Exception as exc:
        import redis

        if isinstance(exc, redis.exceptions.RedisError):
            raise StorageError(f"{url}: {exc}") from exc
        raise
    finally:
        client.close()
    before = {w.name: w.done + w.failed for w in first.workers}
    for w in second.workers:
        w.pages_per_s = (w.done + w.failed - before.get(w.name, 0)) / interval
    second.pages_per_s = (second.done + second.failed - first.done - first.failed) / interval
    return second


def _read(client: Any, job: str) -> JobStatus:
    p = job_prefix(job)
    status = JobStatus(job, exists=bool(client.exists(p + "job")))
    q, leased, d, f = client.hmget(p + "counts", ["q", "l", "d", "f"])
    status.queued, status.leased, status.done, status.failed = (
        int(v or 0) for v in (q, leased, d, f)
    )
    status.retry_waiting = int(client.zcard(p + "delayed"))
    status.seen = int(client.hlen(p + "st"))
    workers: dict[str, WorkerStatus] = {}
    now = time.time()
    for name, raw in client.hgetall(p + "workers").items():
        info = json.loads(raw)
        w = WorkerStatus(name.decode(), seen_ago=round(now - float(info["at"]), 1))
        w.pid, w.host = info.get("pid"), info.get("host")
        workers[w.name] = w
    for key, value in client.hgetall(p + "wstat").items():
        name, _, kind = key.decode().rpartition(":")
        w = workers.setdefault(name, WorkerStatus(name))
        if kind == "d":
            w.done = int(value)
        else:
            w.failed = int(value)
    for band in client.zrange(p + "bands", 0, -1):
        summary = client.xpending(p + "q:" + band.decode(), "g")
        for consumer in summary.get("consumers") or []:
            name = consumer["name"].decode()
            workers.setdefault(name, WorkerStatus(name)).leased += int(consumer["pending"])
    status.workers = sorted(workers.values(), key=lambda w: w.name)
    return status
