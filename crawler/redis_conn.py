"""Talking to the Redis server of a shared crawl job: the client (riding out a server restart),
the job's key prefix, worker names, and the translation of redis-py's errors."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from foundation.errors import StorageError, UsageError

__all__ = ["RECONNECT", "Translate", "connect", "default_worker_name", "job_prefix"]

RECONNECT = 60.0  # seconds a command is retried while Redis restarts (AOF reload included)


def connect(url: str) -> Any:
    """A redis-py client for ``redis://HOST:PORT/DB`` that rides out a server restart: commands
    are retried with backoff for up to :data:`RECONNECT` seconds (the scripts are idempotent:
    an XACK or HSETNX replayed changes nothing)."""
    try:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry
    except ImportError as exc:  # pragma: no cover - the redis extra is not installed
        raise UsageError(
            "a redis:// frontier needs the redis extra: pip install fetchlab[redis]"
        ) from exc
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise UsageError(f"not a Redis URL: {url!r} (redis://HOST:PORT/DB)")
    retries = int(RECONNECT / 0.5)
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        retry_on_error=[
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            redis.exceptions.BusyLoadingError,
        ],
        socket_connect_timeout=5,
        health_check_interval=30,
    )


def job_prefix(job: str) -> str:
    if not job or any(c in job for c in "{}\n\r "):
        raise UsageError(f"bad job name {job!r}: no spaces or braces")
    return f"fetchlab:{{{job}}}:"


def default_worker_name(tag: str) -> str:
    return f"{socket.gethostname()}-{tag}"


class Translate:
    """redis-py errors become StorageError here (KeyError and ValueError pass through)."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        import redis

        if isinstance(exc, redis.exceptions.RedisError):
            raise StorageError(f"frontier {self.url}: {exc}") from exc
