"""foundation.child_process: a worker started as a plain ``python -c`` child, with its pipes."""

from __future__ import annotations

import multiprocessing
import os

import psutil

from foundation.child_process import ChildProcess
from tests.unit import _child_targets


def test_pipes_cross_and_a_named_target_is_imported_only_in_the_child() -> None:
    to_child, from_parent = multiprocessing.Pipe(duplex=False)[::-1]
    from_child, to_parent = multiprocessing.Pipe(duplex=False)
    proc = ChildProcess(
        "tests.unit._child_targets:echo", (from_parent, to_parent, {"k": 1}), name="echo"
    )
    proc.start()
    from_parent.close()
    to_parent.close()
    assert proc.pid is not None and proc.is_alive()
    assert psutil.Process(proc.pid).ppid() == os.getpid()  # a direct child, no tracker beside it
    to_child.send("hello")
    assert from_child.recv() == ("hello", {"k": 1}, proc.pid)
    to_child.send(None)
    modules = from_child.recv()
    proc.join(10)
    assert proc.exitcode == 0 and not proc.is_alive()
    assert "multiprocessing.resource_tracker" not in modules
    assert "multiprocessing.spawn" not in modules
    assert proc.pid not in {c.pid for c in psutil.Process().children()}  # reaped


def test_exit_status_and_signal_read_as_multiprocessing_reads_them() -> None:
    by_status = ChildProcess(_child_targets.die, ("status",), name="status")
    by_signal = ChildProcess(_child_targets.die, ("signal",), name="signal")
    for proc in (by_status, by_signal):
        proc.start()
        proc.join(10)
    assert by_status.exitcode == 3
    assert by_signal.exitcode == -9


def test_join_with_a_timeout_returns_and_kill_ends_it() -> None:
    inq, keep = multiprocessing.Pipe(duplex=False)
    out, _ = multiprocessing.Pipe(duplex=False)[::-1]
    proc = ChildProcess(_child_targets.echo, (inq, out, None), name="waits")
    proc.start()
    proc.join(0.2)
    assert proc.is_alive() and proc.exitcode is None
    proc.kill()
    proc.join(10)
    assert proc.exitcode == -9
    keep.close()
