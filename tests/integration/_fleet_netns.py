"""Network namespaces for the mail fleet tests: each worker a "host" of its own.

:func:`hosts` (root only) creates a bridge with an address on it and ``n`` namespaces, each
joined to the bridge by a veth pair with an address of its own (and its own loopback): a process
started with :func:`in_namespace` reaches the machine only through the bridge. The test bed's
servers listen on 127.0.0.1, so :class:`Forwarder` listens on the bridge address and relays each
connection to a loopback port. Everything is removed by name at exit (the namespaces, whose veth
ends go with them, and the bridge).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

__all__ = ["Forwarder", "Hosts", "hosts", "in_namespace"]


@dataclass(frozen=True)
class Hosts:
    gateway: str  # the bridge's address: what every namespace reaches the machine by
    namespaces: tuple[str, ...]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def hosts(n: int) -> Iterator[Hosts]:
    """``n`` network namespaces on one bridge; skips the test when not root or no ``ip``."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    tag = uuid.uuid4().hex[:6]
    subnet = f"10.{200 + int(tag[:2], 16) % 50}.{int(tag[2:4], 16)}"
    bridge = f"flbr{tag}"
    names = tuple(f"flns{tag}{i}" for i in range(n))
    made: list[str] = []
    try:
        try:
            _ip("link", "add", bridge, "type", "bridge")
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot create a bridge: {exc.stderr.decode(errors='replace')}")
        _ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i, ns in enumerate(names):
            _ip("netns", "add", ns)
            made.append(ns)
            outer, inner = f"flv{tag}{i}", f"flp{tag}{i}"
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", outer, "master", bridge)
            _ip("link", "set", outer, "up")
            _ip("link", "set", inner, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{subnet}.{10 + i}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield Hosts(gateway=f"{subnet}.1", namespaces=names)
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=30)


def in_namespace(ns: str, argv: list[str]) -> list[str]:
    """``argv`` run inside namespace ``ns`` (``ip netns exec`` execs it: same PID)."""
    return ["ip", "netns", "exec", ns, *argv]


class Forwarder:
    """Relays connections to ``listen_host``:(a free port) to 127.0.0.1:``target_port``, on an
    event loop in a thread of its own; :attr:`port` is the port it listens on. ``delay``:
    seconds each chunk waits before it is passed on, either way (a slower link)."""

    def __init__(self, listen_host: str, target_port: int, delay: float = 0.0) -> None:
        self.target_port = target_port
        self.delay = delay
        self.peers: set[str] = set()  # the addresses connections came from
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, listen_host, 0), self.loop
        ).result(timeout=10)
        self.port: int = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.add(str(writer.get_extra_info("peername")[0]))
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._server is not None:
                await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
