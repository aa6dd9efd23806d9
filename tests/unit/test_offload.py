"""BatchOffload: batching, the pending bound, a crashed worker, Ctrl-C to the process group."""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor

import psutil
import pytest

from foundation.offload import BatchOffload


def square(x: int) -> int:
    return x * x


def crash_on_minus_one(x: int) -> int:
    if x == -1:
        os._exit(3)  # a worker dying hard (a segfaulting parser would look the same)
    return x


async def test_results_in_order_and_batched() -> None:
    off: BatchOffload[int, int] = BatchOffload(square, workers=2, batch_size=8)
    await off.start()
    try:
        results = await asyncio.gather(*(off.submit(i) for i in range(40)))
    finally:
        await off.aclose()
    assert results == [i * i for i in range(40)]
    assert off.items == 40 and off.batches <= 40 // 8 + 2


async def test_inline_and_threads() -> None:
    for kind, workers in (("process", 0), ("thread", 2)):
        off: BatchOffload[int, int] = BatchOffload(square, workers=workers, kind=kind)  # type: ignore[arg-type]
        try:
            assert await asyncio.gather(*(off.submit(i) for i in range(5))) == [0, 1, 4, 9, 16]
        finally:
            await off.aclose()


async def test_pending_is_bounded() -> None:
    off: BatchOffload[int, int] = BatchOffload(square, workers=1, batch_size=2, max_pending=4)
    await off.start()
    try:
        tasks = [asyncio.create_task(off.submit(i)) for i in range(20)]
        await asyncio.sleep(0)
        # only max_pending items are queued or in flight; the rest wait in submit()
        assert off._slots._value == 0
        assert sum(1 for _ in off._batch) <= 4
        assert await asyncio.gather(*tasks) == [i * i for i in range(20)]
    finally:
        await off.aclose()


async def test_crashed_worker_fails_its_batch_and_pool_recovers() -> None:
    off: BatchOffload[int, int] = BatchOffload(crash_on_minus_one, workers=1, batch_size=1)
    await off.start()
    try:
        with pytest.raises(BrokenExecutor):
            await off.submit(-1)
        assert await off.submit(7) == 7  # a new pool took over
    finally:
        await off.aclose()


async def test_workers_ignore_sigint() -> None:
    off: BatchOffload[int, int] = BatchOffload(square, workers=2)
    await off.start()
    try:
        executor = off._executor
        assert isinstance(executor, ProcessPoolExecutor)
        pool = [psutil.Process(pid) for pid in executor._processes]  # this pool's workers
        assert len(pool) == 2
        # a worker ignores SIGINT once its initializer ran (the kernel shows it in SigIgn)
        for _ in range(200):
            if all(_ignores_sigint(p.pid) for p in pool):
                break
            await asyncio.sleep(0.02)
        assert all(_ignores_sigint(p.pid) for p in pool)
        for p in pool:
            os.kill(p.pid, signal.SIGINT)
        await asyncio.sleep(0.2)
        assert await off.submit(3) == 9
        assert all(p.is_running() for p in pool)
    finally:
        await off.aclose()


def _ignores_sigint(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False
