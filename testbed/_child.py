"""Starting the test bed's own Python servers (fault server, proxy) as child processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from pathlib import Path

from modes._exceptions import TestbedError
from testbed._proc import LOOPBACK, ManagedProcess

__all__ = ["ROOT", "child_env", "stop_with_parent", "wait_child_port"]

ROOT = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    """The environment with this checkout first on PYTHONPATH (``python -m testbed.X`` works
    even when the project is not installed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


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
