"""The Redis launcher: a real redis-server answers redis-py, and stops cleanly by PID."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import redis.asyncio

from testbed.redis import RedisServer, redis_config, start_redis

pytestmark = pytest.mark.needs_redis


def test_ping_set_get(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.ping() is True
        client.set("fetchlab:test:key", b"value \xff")
        assert client.get("fetchlab:test:key") == b"value \xff"
        assert client.delete("fetchlab:test:key") == 1
    finally:
        client.close()


async def test_asyncio_client(redis_server: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        assert await client.ping() is True
        await client.rpush("fetchlab:test:list", "a", "b")
        assert await client.lrange("fetchlab:test:list", 0, -1) == [b"a", b"b"]
        await client.delete("fetchlab:test:list")
    finally:
        await client.aclose()


def test_config_has_no_persistence_and_loopback_only(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
        assert client.config_get("dir")["dir"] == str(redis_server.workdir.resolve())
    finally:
        client.close()


def test_config_text(tmp_path: Path) -> None:
    text = redis_config(6399, tmp_path)
    assert "port 6399" in text
    assert 'save ""' in text
    assert "daemonize no" in text


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    client = redis.Redis.from_url(server.url)
    try:
        assert client.ping()
    finally:
        client.close()
    server.stop()
    assert not server.process.alive()
    assert server.process.popen.returncode is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1.0).close()
    # no persistence: nothing written besides our config and log
    assert not list(tmp_path.glob("*.rdb"))
    assert not list(tmp_path.glob("appendonly*"))


def test_cli_prints_url_and_stops_after_duration() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "testbed", "redis", "--duration", "0.5"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "redis: redis://127.0.0.1:" in proc.stdout
    assert "redis: stopped" in proc.stdout
