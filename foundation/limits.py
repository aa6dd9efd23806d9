"""Mode limits, checked before a run starts, with the reason in the message.

The limits are where each mode stops being a sensible design on one machine, not hard walls of
the OS: a thread costs a stack (8 MiB reserved, tens of KiB touched) and a share of the GIL's
switching, so thousands of threads spend their time contending rather than fetching (the bench's
``mem`` section measures it); greenlets and coroutines cost a few KiB each.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

from foundation.errors import ModeError

__all__ = [
    "MAX_GREENLETS",
    "MAX_MAIL_PROCESSES",
    "MAX_PROCESSES",
    "MAX_THREADS",
    "WARN_THREADS",
    "check_gevent_installed",
    "check_greenlet_count",
    "check_process_count",
    "check_thread_count",
]

WARN_THREADS = 1_000
MAX_THREADS = 2_000
MAX_GREENLETS = 20_000
MAX_PROCESSES = 64
MAX_MAIL_PROCESSES = 16  # mailsync starts one per connection of an account


def check_thread_count(n: int) -> int:
    """``n`` threads are fine; above ``WARN_THREADS`` a warning; above ``MAX_THREADS`` refused."""
    if n < 1:
        raise ModeError(f"mode 'threads' needs at least 1 thread (got {n})")
    if n > MAX_THREADS:
        raise ModeError(
            f"mode 'threads' refuses {n:,} threads (limit {MAX_THREADS:,}): each thread reserves "
            "its own stack and they contend for one GIL, so past a few hundred threads adding more "
            "slows the crawl and can exhaust memory or the process's thread limit; use "
            "--mode asyncio or --mode gevent for thousands of connections"
        )
    if n > WARN_THREADS:
        warnings.warn(
            f"mode 'threads' with {n:,} threads: expect GIL contention and high memory; "
            "--mode asyncio holds thousands of connections more cheaply",
            RuntimeWarning,
            stacklevel=2,
        )
    return n


def check_greenlet_count(n: int) -> int:
    if not 1 <= n <= MAX_GREENLETS:
        raise ModeError(
            f"mode 'gevent' takes 1 to {MAX_GREENLETS:,} greenlets (got {n:,}): beyond that the "
            "open-files limit and one CPU core are the wall, not the number of greenlets"
        )
    return n


def check_process_count(n: int, limit: int = MAX_PROCESSES) -> int:
    cpus = os.cpu_count() or 1
    if not 1 <= n <= limit:
        raise ModeError(
            f"mode 'processes' takes 1 to {limit} worker processes (got {n}); each is a Python "
            f"interpreter of its own (tens of MB), this machine has {cpus} CPU(s), and workers "
            "beyond that only add IPC"
        )
    return n


def check_gevent_installed() -> None:
    """Raise a ModeError naming the extra to install when gevent is missing."""
    if importlib.util.find_spec("gevent") is None:
        raise ModeError(
            "mode 'gevent' needs the gevent package: pip install 'fetchlab[gevent]' "
            "(or scripts/test, which installs every extra)"
        )
