"""The concurrency modes, named once: settings, CLIs, drivers, tests and the bench use this enum."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Mode"]


class Mode(StrEnum):
    """How a job runs. A member equals its value (``Mode.THREADS == "threads"``), so settings
    files, environment variables and flags spell it as before."""

    ASYNCIO = "asyncio"  # one event loop (uvloop when installed)
    THREADS = "threads"  # a thread per connection, blocking I/O
    GEVENT = "gevent"  # greenlets on monkey-patched blocking I/O, in a process of its own
    PROCESSES = "processes"  # several processes, each an asyncio loop
    SEQUENTIAL = "sequential"  # one thing at a time: the baseline
