"""The fault server: an aiohttp app whose every path misbehaves in one named, repeatable way.

Run it as ``testbed faults --port P --robots ok|404|500|slow`` (or ``python -m testbed.faults``),
or from Python with :func:`start_fault_server`, which runs it as a child process (its CPU is not
the test's) and stops it by PID. robots.txt is per host:port, so the robots mode is per instance.

Endpoints (all GET; query parameters optional, defaults shown):

- ``/``: HTML index linking to every endpoint below (a follow crawl reaches them all).
- ``/ok``, ``/page/{n}``: small HTML pages; page links stay within /page/0 .. /page/9.
- ``/slow-drip?bytes=2000&interval=0.05&chunk=100``: Content-Length ``bytes``, sent ``chunk``
  bytes every ``interval`` seconds.
- ``/reset-mid-body?bytes=100000``: Content-Length ``bytes``, half of it sent, then a TCP RST.
- ``/flaky/{key}?fails=2&status=503``: ``status`` the first ``fails`` times for ``key``, then 200.
- ``/reset-once/{key}``: the first request for ``key`` gets a TCP RST (no response), then 200.
- ``/ratelimit/{key}?fails=1&retry_after=1``: 429 + ``Retry-After`` ``fails`` times, then 200.
- ``/redirect/chain/{n}``: 302 to ``/redirect/chain/{n-1}`` ... ``/redirect/chain/0`` is a 200.
- ``/redirect/loop/a`` <-> ``/redirect/loop/b``: 302 loop. ``/redirect/self``: 302 to itself.
- ``/redirect/relative``: ``Location: ../ok`` (resolves to ``/ok``).
- ``/redirect/external``: 302 to ``http://ext.example.invalid/`` (never to be fetched).
- ``/redirect/body?bytes=1000&status=302&length=1``: ``status`` to ``/ok`` with ``bytes`` of
  HTML filler as its body (``length=0``: chunked), streamed as generated.
- ``/chunked/bad-size?at=1``: chunked 200 with a non-hex chunk-size line after one good chunk
  (``at=0``: right after the head, in one segment), then close.
- ``/chunked/cut?chunks=3``: chunked 200, ``chunks`` good chunks, then close without the last one.
- ``/gzip-bomb?mib=1024``: ``Content-Encoding: gzip``, ~1 MB that inflates to ``mib`` MiB of
  spaces (deflate tops out near 1032:1). ``/br-bomb`` (~1 KB) and ``/zstd-bomb`` (~32 KB)
  likewise with brotli and zstd.
- ``/huge?bytes=200000000``: HTML filler, chunked; ``&length=1`` sends Content-Length instead.
- ``/no-content-type``: HTML with no Content-Type header at all.
- ``/wrong-content-type``: HTML served as ``image/png``.
- ``/bad-charset``: ``text/html; charset=no-such-charset``, UTF-8 non-ASCII body.
- ``/latin1``: ISO-8859-1 body, charset declared only in ``<meta>``.
- ``/bom-utf16``: UTF-16 body with a BOM, no charset in the header.
- ``/huge-headers?kind=one``: one 70,000-byte ``X-Filler`` header; ``kind=cookies``: 80
  Set-Cookie headers of ~1 KB (a head over 64 KB either way).
- ``/robots.txt``: mode ``ok``: ``User-agent: *`` / ``Disallow: /private/`` (no Crawl-delay);
  ``404``; ``500``; ``slow``: the ok rules after 10 s.
- ``/private/page``: a 200 page (disallowed when obeying robots.txt).
- ``/status/{code}``: that status (200-599) with a small body (none for 204 / 304).
- ``/echo/headers``: the request headers as a JSON object (repeated names joined with ", ").
- ``/stats``: ``{"total": N, "paths": {path: count}}`` of requests per path (query ignored,
  /stats itself not counted); ``POST /stats/reset`` clears counts and the per-key counters.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import click

from foundation.errors import TestbedError, UsageError
from testbed._child import ChildServer, serve_until_stopped, start_child
from testbed._fault_app import ENDPOINTS, RobotsMode
from testbed._proc import LOOPBACK, ManagedProcess

__all__ = ["ENDPOINTS", "FaultServer", "RobotsMode", "cli", "start_fault_server"]


@dataclass(frozen=True)
class FaultServer(ChildServer):
    """A running fault server child process."""

    port: int
    robots: RobotsMode
    process: ManagedProcess
    tmpdir: Path | None = None

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` (which may carry a query string)."""
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    def stats(self) -> dict[str, int]:
        """Requests per path so far (blocking; a loopback round trip)."""
        data = self._call("GET", "/stats")
        return {str(k): int(v) for k, v in data["paths"].items()}

    def targets(self) -> list[str]:
        """The raw request targets (path and query, as received) of the ``/urls/`` requests."""
        return [str(t) for t in self._call("GET", "/stats")["targets"]]

    async def astats(self) -> dict[str, int]:
        """Requests per path so far, without blocking the event loop."""
        from aiohttp import ClientSession, ClientTimeout

        async with (
            ClientSession(timeout=ClientTimeout(total=10)) as session,
            session.get(self.url("/stats")) as resp,
        ):
            data = await resp.json()
        return {str(k): int(v) for k, v in data["paths"].items()}

    def reset_stats(self) -> None:
        """Forget the request counts and the per-key counters (flaky, reset-once, ratelimit)."""
        self._call("POST", "/stats/reset")

    def _call(self, method: str, path: str) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url(path), method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            data = json.loads(resp.read())
        assert isinstance(data, dict)
        return data


def start_fault_server(*, robots: RobotsMode = "ok", workdir: Path | None = None) -> FaultServer:
    """Start a fault server child process on a free loopback port and wait until it answers.

    Its log goes to ``workdir`` (or a temporary folder removed by ``stop()``).
    """
    if robots not in get_args(RobotsMode):
        raise UsageError(f"robots must be one of {get_args(RobotsMode)}, not {robots!r}")
    tmpdir = None
    if workdir is None:
        tmpdir = Path(tempfile.mkdtemp(prefix="fetchlab-faults-"))
        workdir = tmpdir
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir
    try:
        proc, (port,) = start_child(
            f"fault server (robots={robots})",
            "testbed.faults",
            ["--robots", robots],
            lambda port: logs / f"faults-{robots}-{port}.log",
        )
    except TestbedError:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return FaultServer(port=port, robots=robots, process=proc, tmpdir=tmpdir)


async def _serve(
    port: int, robots: RobotsMode, duration: float | None, parent_pid: int | None
) -> None:
    from aiohttp import web

    from testbed._fault_app import make_app

    # handler_cancellation: a client that goes away stops its drip / sleep / stream at once
    runner = web.AppRunner(
        make_app(robots), shutdown_timeout=1.0, handler_cancellation=True, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, port, backlog=1024)
    await site.start()
    for host, real_port in runner.addresses:
        click.echo(f"fault server: http://{host}:{real_port}/ (robots={robots})")
    sys.stdout.flush()
    await serve_until_stopped(runner.cleanup, duration, parent_pid)


@click.command(name="faults")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="0 picks a free port.")
@click.option(
    "--robots",
    type=click.Choice(get_args(RobotsMode)),
    default="ok",
    show_default=True,
    help="What /robots.txt does on this instance.",
)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--parent-pid", type=int, default=None, hidden=True, help="Exit when it exits.")
def cli(port: int, robots: str, duration: float | None, parent_pid: int | None) -> None:
    """Run the fault server on 127.0.0.1 until Ctrl-C (or --duration)."""
    from foundation.runtime import run

    mode: RobotsMode = robots  # type: ignore[assignment]  # click.Choice checked it
    run(_serve(port, mode, duration, parent_pid), "uvloop")


if __name__ == "__main__":
    cli()
