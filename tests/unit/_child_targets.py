"""Targets for tests/unit/test_child_process.py (importable by name in a fresh child)."""

from __future__ import annotations

import os
import signal
import sys
from multiprocessing.connection import Connection


def echo(inq: Connection, outq: Connection, extra: object) -> None:
    """Send back each message with ``extra``, until None; then report the modules imported."""
    while (msg := inq.recv()) is not None:
        outq.send((msg, extra, os.getpid()))
    outq.send(sorted(sys.modules))
    outq.close()


def die(how: str) -> None:
    if how == "signal":
        os.kill(os.getpid(), signal.SIGKILL)
    raise SystemExit(3)
