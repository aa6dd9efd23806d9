"""The delay / cut proxy, measured against real loopback servers started in the test."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import psutil
import pytest

from foundation.errors import UsageError
from testbed.faults import FaultServer
from testbed.proxy import start_proxy
from tests.fixtures.proxy import ProxyFactory

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BIG = 200_000


@contextlib.asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[tuple[str, int]]:
    """A loopback server running ``handler`` per connection, closed (with its tasks) at exit."""
    tasks: set[asyncio.Task[None]] = set()

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            # cancelled at teardown: end normally, or asyncio's stream callback logs an error
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    try:
        host, port = server.sockets[0].getsockname()[:2]
        yield host, port
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def send_big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send BIG bytes at once, then wait for the client to go away."""
    writer.write(bytes(range(256)) * (BIG // 256) + b"x" * (BIG % 256))
    await writer.drain()
    writer.write_eof()
    await reader.read()


async def burst(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """40 chunks of 1 KB, 2 ms apart, so the proxy reads them as separate chunks."""
    for _ in range(40):
        writer.write(b"b" * 1024)
        await writer.drain()
        await asyncio.sleep(0.002)
    writer.write_eof()
    await reader.read()


async def read_all(reader: asyncio.StreamReader) -> tuple[bytes, BaseException | None]:
    """Everything until EOF, and the reset that ended it early if there was one."""
    buf = bytearray()
    try:
        while chunk := await reader.read(65536):
            buf += chunk
    except ConnectionResetError as exc:
        return bytes(buf), exc
    return bytes(buf), None


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def round_trips(port: int, n: int) -> list[float]:
    times = []
    async with connect(port) as (reader, writer):
        for i in range(n):
            msg = f"ping {i}\n".encode()
            t0 = time.perf_counter()
            writer.write(msg)
            await writer.drain()
            assert await reader.readexactly(len(msg)) == msg
            times.append(time.perf_counter() - t0)
        writer.write_eof()
        assert await reader.read() == b""
    return times


async def test_delay_both_ways_adds_two_delays_per_round_trip(delay_proxy: ProxyFactory) -> None:
    async with tcp_server(echo) as target:
        proxy = delay_proxy(target, delay_ms=50)
        rtts = await round_trips(proxy.port, 4)
    assert min(rtts) >= 0.099, rtts
    assert max(rtts) < 0.4, rtts
    stats = proxy.stats
    assert stats.connections == 1
    assert stats.bytes_up == stats.bytes_down == sum(len(f"ping {i}\n") for i in range(4))


async def test_delay_one_direction(delay_proxy: ProxyFactory) -> None:
    async with tcp_server(echo) as target:
        proxy = delay_proxy(target, delay_ms=150, direction="down")
        rtts = await round_trips(proxy.port, 3)
    # one delay per round trip, not two
    assert min(rtts) >= 0.149 and max(rtts) < 0.29, rtts


async def test_burst_is_not_serialised(delay_proxy: ProxyFactory) -> None:
    """40 chunks delayed 100 ms each arrive in ~100 ms + the burst, not 40 x 100 ms."""
    async with tcp_server(burst) as target:
        proxy = delay_proxy(target, delay_ms=100)
        t0 = time.perf_counter()
        async with connect(proxy.port) as (reader, _):
            first = await reader.readexactly(1024)
            t_first = time.perf_counter() - t0
            rest, exc = await read_all(reader)
            t_all = time.perf_counter() - t0
    assert exc is None
    assert len(first) + len(rest) == 40 * 1024
    assert t_first >= 0.099, t_first
    # the burst itself lasts >= 80 ms; serialised delays would take >= 4 s
    assert t_all < 1.0, t_all


async def test_bulk_throughput_with_delay(delay_proxy: ProxyFactory) -> None:
    """8 MB through a 20 ms proxy: back-pressure holds, and the rate is far above 1 chunk/20 ms."""
    size = 8 * 1024 * 1024

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while chunk := await reader.read(1 << 20):
            n += len(chunk)
        writer.write(str(n).encode())
        await writer.drain()

    async with tcp_server(sink) as target:
        proxy = delay_proxy(target, delay_ms=20)
        t0 = time.perf_counter()
        async with connect(proxy.port) as (reader, writer):
            block = b"z" * (1 << 20)
            for _ in range(size // len(block)):
                writer.write(block)
                await writer.drain()
            writer.write_eof()
            answer, exc = await read_all(reader)
        elapsed = time.perf_counter() - t0
    assert exc is None
    assert int(answer) == size
    assert elapsed < 5.0, elapsed
    assert proxy.stats.bytes_up == size


async def test_back_pressure_bounds_the_proxy_memory(delay_proxy: ProxyFactory) -> None:
    """A client that does not read stalls the sender instead of filling the proxy's memory."""
    size = 64 * 1024 * 1024
    written = 0

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        block = b"f" * (1 << 20)
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()
            written += len(block)
        writer.write_eof()
        await reader.read()

    async with tcp_server(flood) as target:
        proxy = delay_proxy(target, delay_ms=20)
        rss_before = psutil.Process(proxy.process.pid).memory_info().rss
        async with connect(proxy.port) as (reader, _):
            await asyncio.sleep(0.6)  # not reading: buffers fill, then everything stalls
            stalled_at = written
            rss_stalled = psutil.Process(proxy.process.pid).memory_info().rss
            data, exc = await read_all(reader)
    assert exc is None and len(data) == size
    # proxy queue (8 MB) + socket buffers on three sockets: far below the 64 MB offered
    assert stalled_at < 40 * 1024 * 1024, stalled_at
    assert rss_stalled - rss_before < 40 * 1024 * 1024, (rss_before, rss_stalled)


async def test_cut_after_bytes_resets_the_client(delay_proxy: ProxyFactory) -> None:
    async with tcp_server(send_big) as target:
        proxy = delay_proxy(target, cut_after_bytes=10_000)
        async with connect(proxy.port) as (reader, _):
            data, exc = await read_all(reader)
    assert len(data) == 10_000
    assert isinstance(exc, ConnectionResetError)
    assert data == (bytes(range(256)) * 40)[:10_000]
    stats = proxy.stats
    assert stats.cuts == 1
    assert stats.bytes_down == 10_000


async def test_cut_with_delay_still_delivers_n_bytes(delay_proxy: ProxyFactory) -> None:
    async with tcp_server(send_big) as target:
        proxy = delay_proxy(target, delay_ms=30, cut_after_bytes=150_000)
        async with connect(proxy.port) as (reader, _):
            data, exc = await read_all(reader)
    assert len(data) == 150_000
    assert isinstance(exc, ConnectionResetError)


async def test_only_first_connections_are_cut(delay_proxy: ProxyFactory) -> None:
    async with tcp_server(send_big) as target:
        proxy = delay_proxy(target, cut_after_bytes=5_000, cut_connections=1)
        async with connect(proxy.port) as (reader, _):
            first, first_exc = await read_all(reader)
        async with connect(proxy.port) as (reader, _):
            second, second_exc = await read_all(reader)
    assert len(first) == 5_000 and isinstance(first_exc, ConnectionResetError)
    assert len(second) == BIG and second_exc is None
    stats = proxy.stats
    assert stats.connections == 2 and stats.cuts == 1


async def test_http_through_proxy(delay_proxy: ProxyFactory, fault_server: FaultServer) -> None:
    proxy = delay_proxy((fault_server.host, fault_server.port), delay_ms=30)
    async with aiohttp.ClientSession() as session:
        t0 = time.perf_counter()
        async with session.get(proxy.url("/ok")) as resp:
            body = await resp.read()
        elapsed = time.perf_counter() - t0
        assert resp.status == 200 and b"<h1>ok</h1>" in body
        assert elapsed >= 0.059, elapsed
        # a reset from the server reaches the client through the proxy, after the partial body
        async with session.get(proxy.url("/reset-mid-body?bytes=20000")) as resp:
            got = bytearray()
            with pytest.raises(aiohttp.ClientPayloadError):
                async for chunk in resp.content.iter_any():
                    got += chunk
        assert 0 < len(got) < 20_000


def test_unreachable_target_resets_the_client(delay_proxy: ProxyFactory) -> None:
    proxy = delay_proxy(("127.0.0.1", _closed_port()))
    sock = socket.create_connection(proxy.address, timeout=5)
    with sock, contextlib.suppress(ConnectionResetError):
        assert sock.recv(10) == b""
    assert proxy.stats.upstream_failures == 1


def test_stop_leaves_no_process() -> None:
    proxy = start_proxy(("127.0.0.1", _closed_port()), delay_ms=10)
    assert proxy.process.alive()
    proxy.stop()
    assert not proxy.process.alive()
    with pytest.raises(OSError):
        socket.create_connection(proxy.address, timeout=1.0).close()


def test_refuses_non_loopback_target() -> None:
    with pytest.raises(UsageError):
        start_proxy(("192.0.2.1", 80))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_prints_address_and_stops_after_duration() -> None:
    argv = [sys.executable, "-m", "testbed", "proxy", "--target", f"127.0.0.1:{_closed_port()}"]
    proc = subprocess.run(
        [*argv, "--delay-ms", "5", "--duration", "0.5"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "delay proxy: 127.0.0.1:" in proc.stdout
    assert "delay proxy stopped:" in proc.stdout


def test_cli_refuses_non_loopback_target() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "testbed", "proxy", "--target", "example.org:80"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "not a loopback address" in proc.stderr
