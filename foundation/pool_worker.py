"""What a process-pool worker runs besides the offloaded function itself.

Kept apart from :mod:`foundation.offload` on purpose: a spawned worker imports the module of
every function it is sent (the batch runner and the initializer included), and the offload
module pulls in asyncio. Here only the standard library's signal handling and
:mod:`foundation.lifeline` are needed: a mail parser worker so starts at ~19 MB instead of
~27 MB (measured: RSS after imports, docs/benchmarks/memory.md).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from foundation.lifeline import watch_owner

__all__ = ["apply_batch", "ignore_sigint", "pool_worker_init", "sigint_held"]

In = TypeVar("In")
Out = TypeVar("Out")


def apply_batch(fn: Callable[[In], Out], items: Sequence[In]) -> list[Out]:
    """Run ``fn`` over a batch in the worker (top level, so it pickles)."""
    return [fn(item) for item in items]


def ignore_sigint() -> None:
    """Pool worker initializer: Ctrl-C reaches the whole process group, but only the parent
    decides how to stop; a worker dying of KeyboardInterrupt would break the pool mid-shutdown.
    The worker was started with Ctrl-C blocked (:func:`sigint_held`): unblocked once ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def sigint_held(*, start_tracker: bool = True) -> Iterator[None]:
    """Start worker processes inside this: Ctrl-C is blocked in this thread meanwhile, and the
    children inherit the block (the signal mask survives fork and exec) until they ignore it
    (:func:`ignore_sigint`). Without it a Ctrl-C during a worker's start-up (a spawned one
    imports for ~0.3 s) killed the worker with KeyboardInterrupt, and the run ended as a
    worker's death instead of a stop. A Ctrl-C held back here is delivered when the block ends.

    multiprocessing's resource tracker, started by the first spawn, unblocks SIGINT in the
    thread that started it once it is up (the same trick, for itself): it is started first
    (``start_tracker=False`` for children that multiprocessing does not start)."""
    if start_tracker:
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def pool_worker_init(owner: int) -> None:
    """Pool worker initializer: ignore Ctrl-C (see :func:`ignore_sigint`) and end with the
    process that owns the pool. A worker is the fork server's child and holds its own job
    queue's write end, so after a SIGKILL of the owner it would wait on that queue for ever
    (and keep the fork server and the resource tracker alive with it)."""
    ignore_sigint()
    watch_owner(owner)
