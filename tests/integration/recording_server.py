"""A loopback aiohttp server that records when each request started and ended, per host.

It runs its own event loop in a thread, so a crawl in any mode (the asyncio engine builds its own
loop; gevent mode runs in a child process) can fetch from it while the test reads the record.
Each *host* is a port of its own (the crawler's politeness slot is ``host:port``), with its own
robots.txt. Paths:

- ``/robots.txt``: the host's ``robots`` text, or its ``robots_status`` (e.g. 500).
- ``/p/{name}?hold=S``: an HTML page, answered after ``hold`` seconds (default 0).
- ``/retry/{key}?status=429&retry_after=1&fails=1``: ``status`` with ``Retry-After`` the first
  ``fails`` requests for ``key``, then 200.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass

from aiohttp import web

__all__ = ["Hit", "HostSpec", "RecordingServer"]


@dataclass(frozen=True)
class HostSpec:
    robots: str = "User-agent: *\nAllow: /\n"
    robots_status: int = 200


@dataclass(frozen=True)
class Hit:
    host: str  # the name given to RecordingServer
    path: str  # with the query
    start: float  # time.monotonic() when the handler began
    end: float  # ... and when it returned


class RecordingServer:
    """``RecordingServer({"a": HostSpec(), ...})``; ``.url(host, path)``, ``.hits``, ``.stop()``."""

    def __init__(self, hosts: dict[str, HostSpec]) -> None:
        self.hosts = hosts
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        self._keys: Counter[str] = Counter()
        self._socks = {name: self._bind() for name in hosts}
        self._names = {s.getsockname()[1]: name for name, s in self._socks.items()}
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("recording server did not start")

    @staticmethod
    def _bind() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        return sock

    def url(self, host: str, path: str) -> str:
        return f"http://127.0.0.1:{self._socks[host].getsockname()[1]}{path}"

    def between(self, start: float, end: float) -> list[Hit]:
        """The hits that began in ``[start, end]`` (one crawl's, when crawls run one by one)."""
        with self._lock:
            return [h for h in self.hits if start <= h.start <= end]

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._cleanup())
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/robots.txt", self._robots)
        app.router.add_get("/p/{name}", self._page)
        app.router.add_get("/retry/{key}", self._retry)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for sock in self._socks.values():
            await web.SockSite(self._runner, sock).start()

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _host(self, request: web.Request) -> str:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return self._names[sockname[1]] if sockname else "?"

    def _record(self, request: web.Request, start: float) -> None:
        hit = Hit(self._host(request), request.path_qs, start, time.monotonic())
        with self._lock:
            self.hits.append(hit)

    async def _robots(self, request: web.Request) -> web.Response:
        start = time.monotonic()
        spec = self.hosts[self._host(request)]
        self._record(request, start)
        return web.Response(text=spec.robots, status=spec.robots_status)

    async def _page(self, request: web.Request) -> web.Response:
        start = time.monotonic()
        try:
            await asyncio.sleep(float(request.query.get("hold", "0")))
        finally:
            self._record(request, start)
        return web.Response(text="<title>p</title>", content_type="text/html")

    async def _retry(self, request: web.Request) -> web.Response:
        start = time.monotonic()
        key = request.match_info["key"]
        seen = self._keys[key]
        self._keys[key] += 1
        self._record(request, start)
        if seen < int(request.query.get("fails", "1")):
            status = int(request.query.get("status", "429"))
            retry_after = request.query.get("retry_after", "1")
            return web.Response(status=status, text="later", headers={"Retry-After": retry_after})
        return web.Response(text="<title>recovered</title>", content_type="text/html")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
