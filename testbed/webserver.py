"""The aiohttp fallback for the test-bed web site, for machines without nginx.

It behaves like the nginx configuration of :mod:`testbed.nginx`: ``/`` is ``/index.html``, files
only (a directory is a 404, never a redirect), the same Content-Type table, nginx's 404 page byte
for byte, GET and HEAD only, and latency ports that sleep before every response. It runs as its own
process (``python -m testbed.webserver``) so that it has a core of its own, yet a Python server
may still be slower than the client it serves: benchmark against nginx.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from aiohttp import web

from foundation.errors import PortInUseError, TestbedError
from foundation.runtime import raise_nofile_limit, run
from testbed._proc import LOOPBACK, ManagedProcess, start_process
from testbed.nginx import DEFAULT_TYPE, MIME_TYPES, NOT_FOUND_BODY, check_port_free

__all__ = ["CONCURRENCY_PATH", "build_app", "main", "start_aiohttp_server"]

_ROOT = Path(__file__).resolve().parents[1]


def _lookup(docroot: Path, url_path: str) -> Path | None:
    """The file ``url_path`` names under ``docroot``, or None (-> 404)."""
    if url_path == "/":
        url_path = "/index.html"
    if not url_path.startswith("/") or url_path.endswith("/") or "\x00" in url_path:
        return None
    parts = PurePosixPath(url_path).parts[1:]
    if any(part in ("..", ".") for part in parts):
        return None
    candidate = docroot.joinpath(*parts)
    # a short stat of a local file; not worth a thread hop per request
    return candidate if candidate.is_file() else None


CONCURRENCY_PATH = "/_testbed/concurrency"


def build_app(docroot: Path, delay_ms: int = 0) -> web.Application:
    """An application serving ``docroot``, each response held ``delay_ms`` milliseconds.

    It counts the requests in flight per ``Host`` header; ``GET /_testbed/concurrency`` answers
    ``{"peak": {host: most at once}, "total": {host: requests}}`` (the politeness tests' check
    that a per-host limit held across several crawler processes)."""
    docroot = Path(docroot).resolve()
    delay = delay_ms / 1000
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    total: dict[str, int] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == CONCURRENCY_PATH:
            return web.json_response({"peak": peak, "total": total})
        host = request.host
        active[host] = active.get(host, 0) + 1
        total[host] = total.get(host, 0) + 1
        peak[host] = max(peak.get(host, 0), active[host])
        try:
            return await respond(request)
        finally:
            active[host] -= 1

    async def respond(request: web.Request) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, body=b"", content_type="text/html")
        found = _lookup(docroot, request.path)
        if found is None:
            return web.Response(status=404, body=NOT_FOUND_BODY, content_type="text/html")
        ctype = MIME_TYPES.get(found.suffix.lstrip(".").lower(), DEFAULT_TYPE)
        return web.FileResponse(found, headers={"Content-Type": ctype})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def _serve(
    docroot: Path,
    ports: Mapping[int, int],
    duration: float | None,
    bind: str = LOOPBACK,
    plain_delay_ms: int = 0,
) -> None:
    """Serve on every ``{delay_ms: port}`` until SIGTERM/SIGINT or ``duration`` seconds."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runners = []
    try:
        for delay_ms, port in ports.items():
            app = build_app(docroot, delay_ms or plain_delay_ms)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, bind, port, backlog=4096).start()
        print(f"serving {docroot} on {sorted(ports.values())}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    finally:
        for runner in runners:
            await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m testbed.webserver --root DIR --port P [--latency MS:PORT ...]``."""
    parser = argparse.ArgumentParser(prog="python -m testbed.webserver", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="directory to serve")
    parser.add_argument("--port", type=int, required=True, help="plain port (no delay)")
    parser.add_argument(
        "--latency", action="append", default=[], metavar="MS:PORT", help="a delayed port"
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    parser.add_argument("--bind", default=LOOPBACK, help="address to listen on")
    parser.add_argument(
        "--plain-delay", type=int, default=0, metavar="MS", help="hold the plain port's answers"
    )
    args = parser.parse_args(argv)
    ports = {0: args.port}
    for item in args.latency:
        delay_ms, _, port = item.partition(":")
        ports[int(delay_ms)] = int(port)
    raise_nofile_limit(65536)
    try:
        run(_serve(args.root, ports, args.duration, args.bind, args.plain_delay))
    except OSError as exc:
        print(f"cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0


def start_aiohttp_server(
    docroot: Path,
    *,
    port: int,
    latency_ports: Mapping[int, int],
    workdir: Path,
    timeout: float = 20.0,
    bind: str = LOOPBACK,
    plain_delay_ms: int = 0,
) -> ManagedProcess:
    """Run :func:`main` in a child process; return once every port answers."""
    if 0 in latency_ports:
        raise TestbedError("a latency port needs a delay above 0 ms (the plain port has none)")
    ports = [port, *latency_ports.values()]
    for each in ports:
        check_port_free(each)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "testbed.webserver", "--root", str(docroot), "--port", str(port)]
    for delay_ms, latency_port in sorted(latency_ports.items()):
        argv += ["--latency", f"{delay_ms}:{latency_port}"]
    argv += ["--bind", bind, "--plain-delay", str(plain_delay_ms)]
    env = dict(os.environ)
    # the child imports this checkout even when the project is not installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
    proc = start_process("aiohttp-site", argv, log_path=workdir / "webserver.log", env=env)
    try:
        _wait_ports(proc, ports, timeout, bind)
    except BaseException:
        proc.stop()
        raise
    return proc


def _wait_ports(
    proc: ManagedProcess, ports: list[int], timeout: float, bind: str = LOOPBACK
) -> None:
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        if not proc.alive():
            tail = proc.log_tail()
            error = PortInUseError if "address already in use" in tail else TestbedError
            raise error(
                f"the aiohttp site server exited with code {proc.popen.returncode}:\n{tail}"
            )
        try:
            with socket.create_connection((bind, pending[0]), timeout=1.0):
                pending.pop(0)
        except OSError:
            time.sleep(0.02)
    if pending:
        raise TestbedError(f"the aiohttp site server did not answer on {pending} in {timeout} s")


if __name__ == "__main__":
    raise SystemExit(main())
