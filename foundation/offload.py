"""Bounded, batched offload of CPU-heavy pure functions to a process pool.

Work goes through ``loop.run_in_executor`` in batches (one IPC round trip carries ``batch_size``
items, so pickling overhead does not dominate) and behind a limit on the items waiting or in flight:
``submit`` waits when ``max_pending`` items are queued, which is the backpressure that keeps memory
flat when the network outruns the parser (FACTS.md: an unbounded queue took RSS from 86 to 487 MB).

``workers=0`` runs the function inline on the loop (the baseline of the offload comparison);
``kind="thread"`` uses a thread pool instead of processes (the middle column of that comparison).
The function must be a picklable top-level function taking one item and returning a small value.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import sys
import types
from collections.abc import Callable, Iterator
from concurrent.futures import (
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from typing import Generic, Literal, TypeVar

from foundation.pool_worker import apply_batch, ignore_sigint, pool_worker_init, sigint_held

__all__ = [
    "BatchOffload",
    "apply_batch",
    "ignore_sigint",
    "main_module_hidden",
    "pool_worker_init",
]

In = TypeVar("In")
Out = TypeVar("Out")


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """While spawning workers, show multiprocessing a ``__main__`` with no file and no spec.

    That is what ``python -c`` looks like, so the spawned worker does not import the parent's
    main module. Only process start-up reads ``sys.modules["__main__"]``; the swap is brief.
    """
    real = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = real


class BatchOffload(Generic[In, Out]):
    """Collect items into batches, run them in a pool, hand each caller its own result."""

    def __init__(
        self,
        fn: Callable[[In], Out],
        *,
        workers: int = 2,
        kind: Literal["process", "thread"] = "process",
        batch_size: int = 16,
        max_pending: int = 256,
        max_wait: float = 0.005,
    ) -> None:
        self._fn = fn
        self._workers = workers
        self._batch_size = max(1, batch_size)
        self._max_wait = max_wait
        self._slots = asyncio.Semaphore(max(max_pending, self._batch_size))
        # at most two batches per worker in flight: enough to keep workers busy, no more
        self._inflight = asyncio.Semaphore(max(1, workers) * 2)
        self._kind = kind
        self._warmup: list[Future[None]] = []
        self._executor: Executor | None = self._new_executor() if workers > 0 else None
        self._batch: list[tuple[In, asyncio.Future[Out]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.items = 0

    def _new_executor(self) -> Executor:
        if self._kind != "process":
            return ThreadPoolExecutor(max_workers=self._workers)
        # spawn: forking a process that runs an event loop and threads is unsafe. Not
        # forkserver: a worker imports the function's module either way (nothing is preloaded),
        # and the fork server is one more process (14 MB RSS) idle for the whole run
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=ctx,
            initializer=pool_worker_init,
            initargs=(os.getpid(),),
        )
        # Start every worker now, while the main module is hidden: a worker would otherwise
        # re-import the program's __main__ (a CLI pulls in its HTTP client, WARC writer, UI...)
        # and cost ~40 MB more each. The function itself is imported by its own module name.
        # (A function defined in __main__ itself needs the main module: then it is imported.)
        hide = getattr(self._fn, "__module__", "__main__") != "__main__"
        with sigint_held(), main_module_hidden() if hide else contextlib.nullcontext():
            self._warmup = [pool.submit(ignore_sigint) for _ in range(self._workers)]
        return pool

    async def submit(self, item: In) -> Out:
        """Queue ``item`` (waiting while the pending limit is reached) and return its result."""
        if self._executor is None:
            self.items += 1
            return self._fn(item)
        await self._slots.acquire()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Out] = loop.create_future()
        self._batch.append((item, fut))
        if len(self._batch) >= self._batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._max_wait, self._flush)
        try:
            return await fut
        finally:
            self._slots.release()

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Wait until the workers started at construction have taken their first job.

        Until its initializer ran, a fresh worker still dies of a Ctrl-C sent to the process
        group; starting them all up front narrows that window to start-up, and a worker lost
        anyway is replaced and its batch tried once more (see :meth:`_run`).
        """
        if self._executor is None or self._kind != "process":
            return
        await asyncio.gather(*(asyncio.wrap_future(f) for f in self._warmup))

    async def _run(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        async with self._inflight:
            loop = asyncio.get_running_loop()
            items = [item for item, _ in batch]
            for attempt in (1, 2):
                executor = self._executor
                assert executor is not None
                try:
                    results = await loop.run_in_executor(executor, apply_batch, self._fn, items)
                except BrokenExecutor as exc:
                    # a dead worker breaks the whole pool: replace it, try the batch once more
                    if self._executor is executor:
                        self._executor = self._new_executor()
                        executor.shutdown(wait=False, cancel_futures=True)
                    if attempt == 1:
                        continue
                    self._fail(batch, exc)
                    return
                except BaseException as exc:
                    self._fail(batch, exc)
                    if not isinstance(exc, Exception):
                        raise
                    return
                break
            self.batches += 1
            self.items += len(items)
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    @staticmethod
    def _fail(batch: list[tuple[In, asyncio.Future[Out]]], exc: BaseException) -> None:
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(exc)

    async def aclose(self) -> None:
        """Finish queued work and shut the pool down."""
        self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
