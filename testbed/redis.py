"""A throw-away redis-server (Debian's) on a free loopback port, for the shared crawl frontier.

Run it as ``testbed redis`` or from Python with :func:`start_redis`. The project writes the whole
config: loopback only (or ``bind``), protected mode, no persistence (no RDB snapshots, no AOF)
unless ``aof=True`` (``appendonly yes``, ``appendfsync everysec``: what a shared crawl job runs
on, for the resume tests), working folder in ``workdir``, no daemonising (so the PID we hold is
the server's and stop-by-PID works). Started again on the same ``port`` and ``workdir`` with
``aof=True``, the server loads the job back from its append-only file.
"""

from __future__ import annotations

import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

from foundation.errors import TestbedError
from testbed._child import wait_child_port
from testbed._proc import LOOPBACK, ManagedProcess, free_port, require_binary, start_process

__all__ = ["RedisServer", "cli", "redis_config", "start_redis"]


@dataclass(frozen=True)
class RedisServer:
    """A running redis-server child process."""

    port: int
    workdir: Path
    process: ManagedProcess
    bind: str = LOOPBACK

    @property
    def host(self) -> str:
        return self.bind

    @property
    def url(self) -> str:
        return f"redis://{self.bind}:{self.port}/0"

    def stop(self) -> None:
        """Stop redis-server by PID (SIGTERM: it writes what its AOF still holds, then exits)."""
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL: a crash, losing what AOF everysec had not written yet."""
        self.process.popen.kill()
        self.process.popen.wait(timeout=10)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def redis_config(port: int, workdir: Path, *, aof: bool = False, bind: str = LOOPBACK) -> str:
    """The redis.conf text for a test-bed server on ``port`` working in ``workdir``."""
    persistence = ["appendonly yes", "appendfsync everysec"] if aof else ["appendonly no"]
    return "\n".join(
        [
            f"bind {bind}",
            f"port {port}",
            # protected mode refuses clients not on loopback when there is no password: a server
            # bound to a test's private veth address serves the other namespaces
            f"protected-mode {'yes' if bind == LOOPBACK else 'no'}",
            "daemonize no",
            "supervised no",
            f'dir "{workdir}"',
            'save ""',
            *persistence,
            'logfile ""',
            "loglevel notice",
            "databases 16",
            "tcp-backlog 511",
            "timeout 0",
            # never refuse writes because a snapshot failed: there are no snapshots
            "stop-writes-on-bgsave-error no",
            "",
        ]
    )


def _ping(port: int, timeout: float, host: str = LOOPBACK) -> None:
    """Wait until the server answers PING with +PONG (it may accept before it is ready)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                last = sock.recv(64).decode("ascii", "replace")
                if last.startswith("+PONG"):
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.02)
    raise TestbedError(f"redis-server on {port} did not answer PING: {last!r}")


def start_redis(
    workdir: Path, *, aof: bool = False, bind: str = LOOPBACK, port: int | None = None
) -> RedisServer:
    """Start redis-server on a free port (or ``port``) of ``bind`` with its config and log in
    ``workdir``; ``aof``: persistence on (append-only file, fsync every second)."""
    binary = require_binary("redis-server", "redis-server")
    workdir.mkdir(parents=True, exist_ok=True)
    last: TestbedError | None = None
    fixed = port
    for _ in range(1 if fixed else 3):  # free_port() can race with another process: retry
        port = fixed or free_port()
        conf = workdir / f"redis-{port}.conf"
        conf.write_text(redis_config(port, workdir, aof=aof, bind=bind), "utf-8")
        proc = start_process(
            "redis-server", [binary, str(conf)], log_path=workdir / f"redis-{port}.log"
        )
        try:
            if bind == LOOPBACK:
                wait_child_port(proc, port, timeout=15.0)
            _ping(port, timeout=15.0, host=bind)
        except TestbedError as exc:
            proc.stop()
            last = exc
            continue
        return RedisServer(port=port, workdir=workdir, process=proc, bind=bind)
    raise TestbedError(f"redis-server did not start: {last}")


@click.command(name="redis")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Config and log folder (default: a temporary folder, removed at exit).",
)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
def cli(workdir: Path | None, duration: float | None) -> None:
    """Run a test-bed redis-server on 127.0.0.1 until Ctrl-C (or --duration)."""
    tmp = Path(tempfile.mkdtemp(prefix="fetchlab-redis-")) if workdir is None else None
    try:
        server = start_redis(workdir if workdir is not None else Path(str(tmp)))
    except TestbedError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise click.ClickException(str(exc)) from exc
    click.echo(f"redis: {server.url} (pid {server.process.pid}, workdir {server.workdir})")
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    old = signal.signal(signal.SIGTERM, on_signal)
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while not stopping and server.process.alive():
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        click.echo("redis: stopped")
