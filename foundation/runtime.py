"""Event-loop choice and process limits, shared by every asyncio-based driver."""

from __future__ import annotations

import asyncio
import resource
import warnings
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["loop_factory", "raise_nofile_limit", "run"]

T = TypeVar("T")


def loop_factory(
    kind: Literal["uvloop", "asyncio"],
) -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """The loop constructor for ``kind`` and the name of what is really used.

    uvloop is taken when asked for and installed; otherwise the stdlib loop (and the name says so,
    so benchmarks never report uvloop figures for the stdlib loop).
    """
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            warnings.warn("uvloop is not installed; using the asyncio loop", stacklevel=2)
        else:
            return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"


def run(main: Coroutine[Any, Any, T], kind: Literal["uvloop", "asyncio"] = "uvloop") -> T:
    """Run ``main`` to completion on a fresh loop of ``kind``."""
    factory, _ = loop_factory(kind)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def raise_nofile_limit(needed: int) -> int:
    """Raise the open-files soft limit towards ``needed`` (capped by the hard limit).

    Each concurrent connection costs a descriptor, plus the archive files, pools and pipes; a
    crawl at concurrency 5,000 fails with EMFILE under the common default soft limit of 1,024.
    Returns the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if want > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            return soft
        return want
    return soft
