"""Process and port helpers shared by the test-bed launchers.

Servers are started as child processes in their own process group and stopped by PID (never by
name), first politely, then with SIGKILL, so a failed test never leaves a server behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from foundation.errors import TestbedError

__all__ = [
    "ManagedProcess",
    "free_port",
    "require_binary",
    "start_process",
    "wait_for_port",
]

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port that is free right now on ``host`` (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = LOOPBACK, timeout: float = 15.0) -> None:
    """Block until something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as exc:
            last = exc
            time.sleep(0.02)
    raise TestbedError(f"nothing listens on {host}:{port} after {timeout:.0f} s ({last})")


def require_binary(name: str, package: str, *, extra_paths: Sequence[str] = ()) -> str:
    """The path of ``name``, or a TestbedError that says which Debian package provides it."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", *extra_paths])
    found = shutil.which(name, path=search)
    if found is None:
        raise TestbedError(
            f"{name} is not installed: run `apt-get install {package}` "
            "(scripts/test does it for you when run as root)"
        )
    return found


@dataclass
class ManagedProcess:
    """A child server process, stopped by PID."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None = None
    extra_pids: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text("utf-8", "replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group, wait, then SIGKILL what is left."""
        pids = [self.popen.pid, *self.extra_pids]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
            # extra (daemonised) pids: wait for them to vanish
            deadline = time.monotonic() + timeout
            while any(_pid_alive(p) for p in self.extra_pids) and time.monotonic() < deadline:
                time.sleep(0.02)
            if not any(_pid_alive(p) for p in self.extra_pids):
                return


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # reap if it is our zombie child
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> ManagedProcess:
    """Start ``argv`` in a new session (its own process group) with output to ``log_path``."""
    out = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise TestbedError(f"cannot start {name} ({argv[0]}): {exc}") from exc
    finally:
        if log_path is not None and not isinstance(out, int):
            out.close()
    return ManagedProcess(name=name, popen=popen, log_path=log_path)
