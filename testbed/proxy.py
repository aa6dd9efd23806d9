"""A TCP proxy that adds latency and cuts connections, for HTTP and IMAP tests alike.

Run it as ``testbed proxy --target 127.0.0.1:PORT --delay-ms 100`` (or
``python -m testbed.proxy``), or from Python with :func:`start_proxy`, which runs it as a child
process (its CPU is not the test's; uvloop when installed) and stops it by PID.

- Delay (``--delay-ms D``, ``--direction down|up|both``): each chunk read from one side is written
  to the other D ms after it arrived, in order, without serialising the delays: a burst of chunks
  leaves together about D ms later, so latency is added and throughput is not reduced (like
  ``tc netem delay``). ``both`` adds D each way, so a request/response round trip gains 2*D.
  EOFs and resets travel in order with the data and are delayed alike.
- Cut (``--cut-after N``): once N bytes went server -> client on a connection (client -> server
  bytes do not count), the proxy resets the upstream connection, waits (at most 2 s) until the
  client's kernel has taken those N bytes, then resets the client connection (TCP RST). The
  client therefore sees exactly N bytes, then ECONNRESET.
- ``--cut-connections K``: only the first K connections are cut; later ones pass through whole,
  so a client that reconnects can finish.
- Back-pressure: a side stops being read while its direction holds more than 8 MB (so one
  connection tops out near 8 MB / delay, e.g. 80 MB/s at 100 ms, like a TCP window).
- ``--stats-port S``: each connection to S gets the totals as JSON and is closed:
  ``connections``, ``active``, ``bytes_up``, ``bytes_down``, ``cuts``, ``upstream_failures``,
  ``clients`` (connections their client has not ended yet) and ``peak_clients`` (the most of
  those at any instant: what a server's connection cap would count).

Targets are limited to loopback addresses: the test bed never sends traffic elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import click

from foundation.errors import TestbedError, UsageError
from testbed._child import ChildServer, start_child, stop_with_parent
from testbed._proc import LOOPBACK, ManagedProcess
from testbed._proxy_core import Direction, ProxyConfig, serve_proxy

__all__ = ["Direction", "ProxyServer", "ProxyStats", "cli", "start_proxy"]


@dataclass(frozen=True)
class ProxyStats:
    """Totals since the proxy started (bytes as forwarded, after any cut)."""

    connections: int
    active: int
    bytes_up: int
    bytes_down: int
    cuts: int
    upstream_failures: int
    clients: int = 0  # client connections not yet ended by their client
    peak_clients: int = 0  # the most of those at any instant


@dataclass(frozen=True)
class ProxyServer(ChildServer):
    """A running proxy child process; connect to ``(host, port)`` instead of the target."""

    port: int
    target: tuple[str, int]
    stats_port: int
    process: ManagedProcess
    tmpdir: Path | None = None

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, for an HTTP target."""
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    @property
    def stats(self) -> ProxyStats:
        """The proxy's counters right now (a blocking loopback round trip)."""
        chunks = []
        with socket.create_connection((LOOPBACK, self.stats_port), timeout=5.0) as sock:
            while chunk := sock.recv(4096):
                chunks.append(chunk)
        return ProxyStats(**json.loads(b"".join(chunks)))


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise UsageError(f"proxy target {host!r} is not a loopback address (127.0.0.0/8, ::1)")


def start_proxy(
    target: tuple[str, int],
    *,
    delay_ms: float = 0,
    cut_after_bytes: int | None = None,
    direction: Direction = "both",
    cut_connections: int | None = None,
    workdir: Path | None = None,
) -> ProxyServer:
    """Start a proxy child process in front of ``target`` and wait until it accepts."""
    host, target_port = target
    _check_loopback(host)
    if direction not in get_args(Direction):
        raise UsageError(f"direction must be one of {get_args(Direction)}, not {direction!r}")
    if delay_ms < 0 or (cut_after_bytes is not None and cut_after_bytes < 0):
        raise UsageError("delay_ms and cut_after_bytes must be >= 0")
    tmpdir = None
    if workdir is None:
        tmpdir = Path(tempfile.mkdtemp(prefix="fetchlab-proxy-"))
        workdir = tmpdir
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["--target", f"{host}:{target_port}", "--delay-ms", str(delay_ms)]
    args += ["--direction", direction]
    if cut_after_bytes is not None:
        args += ["--cut-after", str(cut_after_bytes)]
    if cut_connections is not None:
        args += ["--cut-connections", str(cut_connections)]
    logs = workdir
    try:
        # the stats listener opens after the proxy listener: once it answers, both do
        proc, (port, stats_port) = start_child(
            f"delay proxy -> {host}:{target_port}",
            "testbed.proxy",
            args,
            lambda port: logs / f"proxy-{port}.log",
            port_options=("--listen-port", "--stats-port"),
        )
    except TestbedError:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return ProxyServer(
        port=port, target=(host, target_port), stats_port=stats_port, process=proc, tmpdir=tmpdir
    )


async def _run(
    config: ProxyConfig,
    port: int,
    stats_port: int | None,
    duration: float | None,
    parent_pid: int | None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    watchdog = None
    if parent_pid is not None:
        watchdog = asyncio.create_task(stop_with_parent(parent_pid, stop))

    def ready(server: asyncio.Server) -> None:
        for sock in server.sockets:
            host, real_port = sock.getsockname()[:2]
            click.echo(
                f"delay proxy: {host}:{real_port} -> {config.target_host}:{config.target_port} "
                f"(delay {config.delay_s * 1000:g} ms {config.direction}, "
                f"cut after {config.cut_after} bytes, cut connections {config.cut_connections})"
            )
        sys.stdout.flush()

    totals = await serve_proxy(config, LOOPBACK, port, stats_port, stop, ready)
    if watchdog is not None:
        await watchdog
    click.echo(f"delay proxy stopped: {json.dumps(totals.as_dict())}")


def _parse_target(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter("expected HOST:PORT", param_hint="--target")
    host = host.strip("[]")
    try:
        _check_loopback(host)
    except UsageError as exc:
        raise click.BadParameter(str(exc), param_hint="--target") from exc
    return host, int(port)


@click.command(name="proxy")
@click.option("--target", required=True, help="HOST:PORT to forward to (loopback only).")
@click.option("--listen-port", type=click.IntRange(0, 65535), default=0, help="0: a free port.")
@click.option("--delay-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option(
    "--direction", type=click.Choice(get_args(Direction)), default="both", show_default=True
)
@click.option("--cut-after", type=click.IntRange(min=0), default=None, help="Server->client bytes.")
@click.option("--cut-connections", type=click.IntRange(min=0), default=None, help="Cut first K.")
@click.option("--stats-port", type=click.IntRange(1, 65535), default=None, help="JSON totals.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--parent-pid", type=int, default=None, hidden=True, help="Exit when it exits.")
def cli(
    target: str,
    listen_port: int,
    delay_ms: float,
    direction: str,
    cut_after: int | None,
    cut_connections: int | None,
    stats_port: int | None,
    duration: float | None,
    parent_pid: int | None,
) -> None:
    """Run the delay / cut TCP proxy on 127.0.0.1 until Ctrl-C (or --duration)."""
    from foundation.runtime import run

    host, port = _parse_target(target)
    config = ProxyConfig(
        target_host=host,
        target_port=port,
        delay_s=delay_ms / 1000.0,
        direction=direction,  # type: ignore[arg-type]  # click.Choice checked it
        cut_after=cut_after,
        cut_connections=cut_connections,
    )
    run(_run(config, listen_port, stats_port, duration, parent_pid), "uvloop")


if __name__ == "__main__":
    cli()
