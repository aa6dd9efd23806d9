"""Starting the test bed's own Python servers (fault server, proxy, token server) as child
processes: spawn on a free port with retries, wait until they listen, stop by PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Self

from foundation.errors import TestbedError
from testbed._proc import LOOPBACK, ManagedProcess, free_port, start_process

__all__ = [
    "ROOT",
    "ChildServer",
    "child_env",
    "serve_until_stopped",
    "start_child",
    "stop_with_parent",
    "wait_child_port",
]

ROOT = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    """The environment with this checkout first on PYTHONPATH (``python -m testbed.X`` works
    even when the project is not installed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


class ChildServer:
    """``stop()`` and the context manager for a server dataclass with ``process`` (the child)
    and ``tmpdir`` (a folder of its own to remove, or None) fields."""

    process: ManagedProcess
    tmpdir: Path | None

    def stop(self) -> None:
        """Stop the server by PID and remove its temporary folder."""
        self.process.stop()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_child(
    name: str,
    module: str,
    args: list[str],
    log_for: Callable[[int], Path],
    *,
    port_options: tuple[str, ...] = ("--port",),
) -> tuple[ManagedProcess, tuple[int, ...]]:
    """Start ``python -m module OPTION PORT ... *args --parent-pid PID`` with a free port for each
    of ``port_options``, its log at ``log_for(first port)``; return the process and the ports
    once it listens on the last one (a child opens its listeners in that order). free_port()
    can race with another process, so a child that dies on bind is retried (3 tries)."""
    last: TestbedError | None = None
    for _ in range(3):
        ports = tuple(free_port() for _ in port_options)
        argv = [sys.executable, "-m", module]
        for option, port in zip(port_options, ports, strict=True):
            argv += [option, str(port)]
        argv += [*args, "--parent-pid", str(os.getpid())]
        proc = start_process(name, argv, log_path=log_for(ports[0]), cwd=ROOT, env=child_env())
        try:
            wait_child_port(proc, ports[-1])
        except TestbedError as exc:
            proc.stop()
            last = exc
            continue
        return proc, ports
    raise TestbedError(f"the {name} did not start: {last}")


def wait_child_port(proc: ManagedProcess, port: int, timeout: float = 20.0) -> None:
    """Wait until ``proc`` accepts on ``port``; fail fast (with its log) if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise TestbedError(
                f"{proc.name} exited with code {proc.popen.returncode}:\n{proc.log_tail()}"
            )
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.02)
    proc.stop()
    raise TestbedError(
        f"{proc.name} did not listen on {port} in {timeout:.0f} s:\n{proc.log_tail()}"
    )


async def stop_with_parent(parent_pid: int, stop: asyncio.Event, every: float = 0.5) -> None:
    """Set ``stop`` once ``parent_pid`` is no longer our parent (it died: we were re-parented),
    so a test run killed before its teardown does not leave servers behind."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


async def serve_until_stopped(
    cleanup: Callable[[], Awaitable[None]], duration: float | None, parent_pid: int | None
) -> None:
    """Wait (the server already serving) for SIGTERM / SIGINT, ``duration`` seconds, or the
    parent's death; then run ``cleanup``. The test bed's aiohttp children end this way."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watchdog = None
    if parent_pid is not None:
        watchdog = asyncio.create_task(stop_with_parent(parent_pid, stop))
    try:
        await asyncio.wait_for(stop.wait(), timeout=duration)
    except TimeoutError:
        pass
    finally:
        stop.set()
        if watchdog is not None:
            await watchdog
        await cleanup()
