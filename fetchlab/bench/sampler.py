"""Sample the CPU time and memory of this process's descendants (pool workers) while a cell runs.

``getrusage(RUSAGE_CHILDREN)`` misses forkserver pool workers (they are the forkserver's children,
reaped only when it exits), so a daemon thread reads them with psutil every ``interval`` seconds
and keeps the last CPU reading of each worker and the peak of the whole tree's RSS.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil

__all__ = ["ServerCPU", "TreeSample", "TreeSampler"]


@dataclass(frozen=True)
class TreeSample:
    cpu_s: float  # CPU seconds of every descendant seen (user + system)
    peak_tree_rss_mb: float  # highest RSS of this process plus its descendants at one sample
    own_cpu_s: float  # CPU the sampler thread itself used (subtracted from the run's figure)


class TreeSampler:
    def __init__(self, interval: float = 0.1) -> None:
        self._interval = interval
        self._me = psutil.Process()
        self._cpu: dict[int, float] = {}
        self._base: dict[int, float] = {}
        self._peak = 0.0
        self._own_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def start(self) -> None:
        # descendants alive before the run (none, normally) count from their current CPU time
        for child in self._children():
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue
            self._base[child.pid] = times.user + times.system
        self._thread.start()

    def _children(self) -> list[psutil.Process]:
        try:
            return list(self._me.children(recursive=True))
        except psutil.Error:
            return []

    def _sample(self) -> None:
        try:
            total = float(self._me.memory_info().rss)
        except psutil.Error:
            return
        for child in self._children():
            try:
                with child.oneshot():
                    times = child.cpu_times()
                    total += child.memory_info().rss
            except psutil.Error:
                continue
            used = times.user + times.system - self._base.get(child.pid, 0.0)
            self._cpu[child.pid] = max(self._cpu.get(child.pid, 0.0), used)
        self._peak = max(self._peak, total / 2**20)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()
        self._own_cpu = time.thread_time()

    def stop(self) -> TreeSample:
        self._stop.set()
        self._thread.join()
        self._sample()
        return TreeSample(
            cpu_s=sum(self._cpu.values()), peak_tree_rss_mb=self._peak, own_cpu_s=self._own_cpu
        )


class ServerCPU:
    """CPU seconds a server (a master process and its workers) spends while a client runs.

    Workers may come and go within a run (Dovecot forks an imap process per connection), and an
    exited one's time moves into its master's children times: so the server's CPU over a run is
    the master's growth (its reaped children included), plus what the processes alive at the
    end have used, minus what those alive at the start had used. A figure near the wall time
    means the server, not the client, was the limit.
    """

    def __init__(self, master_pid: int | None) -> None:
        self._pid = master_pid

    def snapshot(self) -> tuple[float, dict[int, float]]:
        if self._pid is None:
            return 0.0, {}
        try:
            master = psutil.Process(self._pid)
            own = master.cpu_times()
            workers = master.children(recursive=True)
        except psutil.Error:
            return 0.0, {}
        total = own.user + own.system + own.children_user + own.children_system
        alive: dict[int, float] = {}
        for proc in workers:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            alive[proc.pid] = times.user + times.system
        return total, alive

    def since(self, before: tuple[float, dict[int, float]]) -> float:
        after = self.snapshot()
        return after[0] - before[0] + sum(after[1].values()) - sum(before[1].values())
