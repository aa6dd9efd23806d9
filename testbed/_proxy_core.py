"""The delay / cut TCP proxy engine (asyncio protocols); launched by ``testbed.proxy``.

Delay works like netem: each chunk read from one side is written to the other ``delay`` seconds
after it arrived, in order, with one timer per direction, so a burst of chunks leaves together
~``delay`` later (latency is added, throughput is not divided).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import socket
import struct
import termios
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

__all__ = ["Counters", "ProxyConfig", "serve_proxy"]

Direction = Literal["down", "up", "both"]
Role = Literal["client", "server"]
# what travels through a pipe: bytes, or an end marker kept in order with them
Item = bytes | Literal["eof", "rst"]

# back-pressure: stop reading a side while its direction holds more than this (queue + held
# bytes, or the destination's buffer is full). Like a TCP window it caps one connection's rate
# at about HIGH_WATER / delay: 80 MB/s at 100 ms.
HIGH_WATER = 8 * 1024 * 1024
LOW_WATER = 2 * 1024 * 1024
# a cut waits at most this long for the client to take the last bytes before the RST
CUT_DRAIN_S = 2.0


@dataclass(frozen=True)
class ProxyConfig:
    """What the proxy does; ``cut_after`` counts server-to-client bytes per connection."""

    target_host: str
    target_port: int
    delay_s: float = 0.0
    direction: Direction = "both"
    cut_after: int | None = None
    cut_connections: int | None = None  # None: cut every connection; K: only the first K


@dataclass
class Counters:
    """Process-wide totals, served as JSON on the stats port."""

    connections: int = 0
    active: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    cuts: int = 0
    upstream_failures: int = 0
    # client connections the client has not ended yet (an EOF or reset from the client ends
    # one at once, before the server side closes) and their most at any instant: what a
    # server-side connection cap would count
    clients: int = 0
    peak_clients: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _rst(transport: asyncio.BaseTransport | None) -> None:
    """Close ``transport`` with a TCP RST (SO_LINGER 0) instead of a FIN."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]


def _unsent(transport: asyncio.WriteTransport) -> int:
    """Bytes still in our buffer plus the kernel's send queue (not yet acknowledged)."""
    pending = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, ValueError):
            raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
            pending += struct.unpack("i", raw)[0]
    return pending


class _Pipe:
    """One direction: bytes read from ``src`` go to ``dst`` ``delay`` seconds later, in order."""

    def __init__(self, conn: _Conn, delay: float, name: Role) -> None:
        self.conn = conn
        self.delay = delay
        self.name = name  # the role that *reads* into this pipe
        self.loop = conn.loop
        self.queue: deque[tuple[float, Item]] = deque()
        self.queued = 0
        self.timer: asyncio.TimerHandle | None = None
        self.eof_in = False
        self.rst_in = False
        # items due before the destination exists (client bytes while upstream connects)
        self.held: list[Item] | None = [] if name == "client" else None
        self.eof_out = False
        self.dst_blocked = False
        self.src_paused = False

    def feed(self, data: Item) -> None:
        if data == "eof":
            if self.eof_in:
                return
            self.eof_in = True
        elif data == "rst":
            if self.rst_in:
                return
            self.rst_in = True
        if self.delay <= 0 and not self.queue:
            self._send(data)
            return
        self.queue.append((self.loop.time() + self.delay, data))
        self.queued += len(data) if isinstance(data, bytes) else 0
        if self.timer is None:
            self.timer = self.loop.call_at(self.queue[0][0], self._flush)
        self.update_flow()

    def _flush(self) -> None:
        self.timer = None
        now = self.loop.time() + 0.0005  # call_at may fire a hair early on a ms clock
        while self.queue and self.queue[0][0] <= now and not self.conn.stopped:
            _, data = self.queue.popleft()
            self.queued -= len(data) if isinstance(data, bytes) else 0
            self._send(data)
        if self.queue and not self.conn.stopped:
            self.timer = self.loop.call_at(self.queue[0][0], self._flush)
        self.update_flow()

    def release(self) -> None:
        """Destination connected: pass on what was held back, in order."""
        held, self.held = self.held, None
        for data in held or ():
            self.queued -= len(data) if isinstance(data, bytes) else 0
            self._send(data)
        self.update_flow()

    def _send(self, data: Item) -> None:
        if self.held is not None:
            self.held.append(data)
            self.queued += len(data) if isinstance(data, bytes) else 0
            self.update_flow()
            return
        if data == "eof":
            self.eof_out = True
            self.conn.deliver_eof(self)
        elif data == "rst":
            self.conn.deliver_rst(self)
        else:
            assert isinstance(data, bytes)
            self.conn.deliver(self, data)

    def update_flow(self) -> None:
        """Pause the reading side while this direction is over the high-water mark."""
        src = self.conn.transport_of(self.name)
        if src is None or src.is_closing():
            return
        full = self.dst_blocked or self.queued > HIGH_WATER
        if full and not self.src_paused:
            self.src_paused = True
            src.pause_reading()
        elif self.src_paused and not self.dst_blocked and self.queued < LOW_WATER:
            self.src_paused = False
            src.resume_reading()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.queued = 0


class _Side(asyncio.Protocol):
    def __init__(self, conn: _Conn, role: Role) -> None:
        self.conn = conn
        self.role = role

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn.attach(self.role, transport)

    def data_received(self, data: bytes) -> None:
        self.conn.pipe_from(self.role).feed(data)

    def eof_received(self) -> bool:
        if self.role == "client":
            self.conn.client_gone()
        self.conn.pipe_from(self.role).feed("eof")
        return True  # keep the other half open until the delayed EOF is delivered

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.lost(self.role, exc)

    def pause_writing(self) -> None:
        self.conn.pipe_to(self.role).dst_blocked = True
        self.conn.pipe_to(self.role).update_flow()

    def resume_writing(self) -> None:
        self.conn.pipe_to(self.role).dst_blocked = False
        self.conn.pipe_to(self.role).update_flow()


class _Conn:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: _Proxy, index: int) -> None:
        cfg = proxy.config
        self.proxy = proxy
        self.loop = proxy.loop
        self.index = index
        delay_up = cfg.delay_s if cfg.direction in ("up", "both") else 0.0
        delay_down = cfg.delay_s if cfg.direction in ("down", "both") else 0.0
        self.up = _Pipe(self, delay_up, "client")
        self.down = _Pipe(self, delay_down, "server")
        self.client: asyncio.Transport | None = None
        self.server: asyncio.Transport | None = None
        self.cut_at = cfg.cut_after
        if cfg.cut_connections is not None and index >= cfg.cut_connections:
            self.cut_at = None
        self.sent_down = 0
        self.closed = False
        self.cutting = False
        self.client_open = True

    @property
    def stopped(self) -> bool:
        return self.closed or self.cutting

    def pipe_from(self, role: Role) -> _Pipe:
        return self.up if role == "client" else self.down

    def pipe_to(self, role: Role) -> _Pipe:
        return self.down if role == "client" else self.up

    def transport_of(self, role: Role) -> asyncio.Transport | None:
        return self.client if role == "client" else self.server

    def attach(self, role: Role, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        transport = cast(asyncio.Transport, transport)
        if role == "client":
            self.client = transport
            # uvloop starts reading right after connection_made, whatever we ask here, so what
            # the client sends before upstream is connected is held by the up pipe instead
            self.proxy.spawn(self._connect_upstream())
        else:
            self.server = transport
            self.up.release()

    async def _connect_upstream(self) -> None:
        cfg = self.proxy.config
        try:
            await self.loop.create_connection(
                lambda: _Side(self, "server"), cfg.target_host, cfg.target_port
            )
        except OSError:
            self.proxy.counters.upstream_failures += 1
            self.abort()

    def deliver(self, pipe: _Pipe, data: bytes) -> None:
        dst = self.server if pipe is self.up else self.client
        if dst is None or dst.is_closing() or self.closed or self.cutting:
            return
        counters = self.proxy.counters
        if pipe is self.up:
            counters.bytes_up += len(data)
            dst.write(data)
            return
        if self.cut_at is not None and self.sent_down + len(data) >= self.cut_at:
            data = data[: self.cut_at - self.sent_down]
            self.sent_down += len(data)
            counters.bytes_down += len(data)
            if data:
                dst.write(data)
            self._cut()
            return
        self.sent_down += len(data)
        counters.bytes_down += len(data)
        dst.write(data)

    def deliver_rst(self, pipe: _Pipe) -> None:
        """A reset read from one side reaches the other (after the data before it)."""
        self.proxy.spawn(self._drain_then_abort(self.server if pipe is self.up else self.client))

    def deliver_eof(self, pipe: _Pipe) -> None:
        if self.cutting:
            return
        dst = self.server if pipe is self.up else self.client
        if dst is not None and not dst.is_closing() and dst.can_write_eof():
            dst.write_eof()
        if self.up.eof_out and self.down.eof_out:
            self.close()

    def _cut(self) -> None:
        """Server-to-client byte limit reached: RST upstream now, RST the client once drained."""
        if self.cutting:
            return
        self.cutting = True  # from here on nothing else is forwarded, not even a queued EOF
        self.proxy.counters.cuts += 1
        self.up.cancel()
        self.down.cancel()
        _rst(self.server)
        self.proxy.spawn(self._drain_then_abort(self.client))

    async def _drain_then_abort(self, dst: asyncio.Transport | None) -> None:
        """RST both sides once ``dst`` has taken what was written to it (bounded wait): an RST
        sent while bytes sit in the send queue would make the kernel drop them."""
        if dst is not None:
            with contextlib.suppress(RuntimeError):
                dst.pause_reading()
            deadline = self.loop.time() + CUT_DRAIN_S
            # polled: the kernel's send queue has no readiness event to await
            while not dst.is_closing() and _unsent(dst) > 0 and self.loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
        self.abort()

    def client_gone(self) -> None:
        if self.client_open:
            self.client_open = False
            self.proxy.counters.clients -= 1

    def lost(self, role: Role, exc: Exception | None) -> None:
        if role == "client":
            self.client_gone()
        if self.closed or self.cutting:
            return
        if exc is not None:
            # a reset on one side is passed on, in order and delayed, as a reset on the other
            self.pipe_to(role).cancel()
            self.pipe_from(role).feed("rst")
            return
        self.pipe_from(role).feed("eof")
        if self.up.eof_out and self.down.eof_out:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self._finish()
        for t in (self.client, self.server):
            if t is not None and not t.is_closing():
                t.close()

    def abort(self) -> None:
        if self.closed:
            return
        self._finish()
        _rst(self.server)
        _rst(self.client)

    def _finish(self) -> None:
        self.closed = True
        self.client_gone()
        self.up.cancel()
        self.down.cancel()
        self.proxy.counters.active -= 1
        self.proxy.conns.discard(self)


class _Proxy:
    def __init__(self, config: ProxyConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.counters = Counters()
        self.conns: set[_Conn] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def new_side(self) -> _Side:
        conn = _Conn(self, self.counters.connections)
        self.counters.connections += 1
        self.counters.active += 1
        self.counters.clients += 1
        self.counters.peak_clients = max(self.counters.peak_clients, self.counters.clients)
        self.conns.add(conn)
        return _Side(conn, "client")

    def abort_all(self) -> None:
        for conn in list(self.conns):
            conn.abort()


async def serve_proxy(
    config: ProxyConfig,
    listen_host: str,
    listen_port: int,
    stats_port: int | None,
    stop: asyncio.Event,
    on_ready: Callable[[asyncio.Server], None] | None = None,
) -> Counters:
    """Run the proxy (and its JSON stats listener) until ``stop`` is set; return the totals."""
    loop = asyncio.get_running_loop()
    proxy = _Proxy(config, loop)
    server = await loop.create_server(proxy.new_side, listen_host, listen_port, backlog=1024)

    async def send_stats(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(json.dumps(proxy.counters.as_dict()).encode())
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    stats_server = None
    if stats_port is not None:
        stats_server = await asyncio.start_server(send_stats, listen_host, stats_port)
    if on_ready is not None:
        on_ready(server)
    try:
        await stop.wait()
    finally:
        server.close()
        if stats_server is not None:
            stats_server.close()
        proxy.abort_all()
        for task in list(proxy.tasks):
            task.cancel()
        await asyncio.gather(*proxy.tasks, return_exceptions=True)
    return proxy.counters
