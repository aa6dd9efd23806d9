"""Worker processes started as plain ``python -c`` children that talk over pipes alone.

Why not :mod:`multiprocessing`'s ``spawn`` (the crawler's processes mode used it until
2026-12-07): its first start also starts multiprocessing's resource tracker, a Python process of
its own that tracks named semaphores and shared memory. These workers make neither (their
:class:`~multiprocessing.connection.Connection` pipes are plain file descriptors), yet the
tracker cost 13 MB of RSS for the whole run, a fifth of a crawl worker (20,000-page crawl,
docs/benchmarks/crawl.md). Here the child gets its pipes with ``pass_fds``, its target and
arguments pickled through one more pipe, the parent's ``sys.path``, and the kernel's
parent-death signal (:func:`foundation.lifeline.die_with_parent`: it ends with this process,
SIGKILL included). Ctrl-C is blocked while it starts (:func:`foundation.pool_worker.sigint_held`),
so its target must ignore or unblock it (:func:`foundation.pool_worker.ignore_sigint`).

:class:`ChildProcess` has the part of ``multiprocessing.Process``'s interface the drivers use
(``start``, ``pid``, ``exitcode``, ``join``, ``is_alive``, ``kill``, ``name``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from foundation.lifeline import OWNER_ENV, die_with_parent
from foundation.pool_worker import sigint_held

__all__ = ["ChildProcess", "child_env"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env() -> dict[str, str]:
    """The environment of a child that imports the project: this one, with the project first
    on ``PYTHONPATH`` and this process's PID as its owner (it arms the parent-death signal)."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **{OWNER_ENV: str(os.getpid())})


@dataclass(frozen=True)
class _Pipe:
    """A Connection argument, as it crosses: its descriptor number (the same in the child)."""

    fd: int
    readable: bool
    writable: bool


class ChildProcess:
    """``target(*args)`` in a child process; ``Connection`` arguments are handed over as
    themselves (the parent closes its copies after :meth:`start`, as with multiprocessing).
    ``target`` may be named (``"package.module:function"``): the parent then never imports its
    module (a worker's imports stay out of the coordinator's memory)."""

    def __init__(
        self, target: Callable[..., Any] | str, args: tuple[Any, ...], *, name: str
    ) -> None:
        self.name = name
        self._target = target
        self._args = args
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    @property
    def exitcode(self) -> int | None:
        """None while it runs; its exit status, or minus the signal that killed it."""
        return None if self._popen is None else self._popen.poll()

    def start(self) -> None:
        args = tuple(
            _Pipe(a.fileno(), a.readable, a.writable) if isinstance(a, Connection) else a
            for a in self._args
        )
        fds = tuple(a.fd for a in args if isinstance(a, _Pipe))
        # pickled before the child exists: an argument that cannot cross fails here, in the parent
        payload = pickle.dumps((self._target, args), protocol=pickle.HIGHEST_PROTOCOL)
        boot_r, boot_w = os.pipe()
        argv = [sys.executable, "-c", "from foundation.child_process import _main; _main()"]
        try:
            with sigint_held(start_tracker=False):
                self._popen = subprocess.Popen(
                    [*argv, str(boot_r)], pass_fds=(boot_r, *fds), env=child_env()
                )
        finally:
            os.close(boot_r)
        try:
            with open(boot_w, "wb") as boot:  # (a pipe holds 64 KiB: the child reads meanwhile)
                pickle.dump(sys.path, boot)
                boot.write(payload)
        except BrokenPipeError:
            # it died before reading its job: its exit status tells why, and its pipes' end of
            # file tells the caller, as for any death of a worker
            pass

    def join(self, timeout: float | None = None) -> None:
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout)

    def is_alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def kill(self) -> None:
        if self._popen is not None and self._popen.poll() is None:
            self._popen.kill()


def _main() -> None:
    """The child's side (``python -c``): arm the lifeline, read the job, run it."""
    parent = int(os.environ.pop(OWNER_ENV))
    die_with_parent(parent)
    with open(int(sys.argv[1]), "rb") as boot:
        sys.path[:] = pickle.load(boot)  # before the job's modules are imported to unpickle it
        target, args = pickle.load(boot)
    if isinstance(target, str):
        module, _, name = target.partition(":")
        target = getattr(importlib.import_module(module), name)
    target(*(Connection(a.fd, a.readable, a.writable) if isinstance(a, _Pipe) else a for a in args))
