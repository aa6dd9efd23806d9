"""A child job for tests/unit/test_gevent_child.py (run by drivers.gevent_entry, patched)."""

from __future__ import annotations

import os
import time

from drivers.gevent_child import ChildJob, on_stop_signals


def main(argv: list[str]) -> int:
    job = ChildJob.read(argv)
    if job.data["kind"] == "fail":
        return 3  # no result
    if job.data["kind"] == "stop":  # waits for a forwarded SIGINT, then answers
        stopped: list[float] = []
        on_stop_signals(lambda: stopped.append(time.monotonic()))
        job.progress({"n": 0})
        deadline = time.monotonic() + 20
        while not stopped and time.monotonic() < deadline:
            time.sleep(0.05)  # patched: a greenlet sleep, the hub runs the signal handler
        job.finish({"stopped": bool(stopped)})
        return 0
    for n in range(1, 4):
        job.progress({"n": n})
        time.sleep(0.3)
    job.finish({"cwd": os.getcwd(), "out": os.path.abspath(job.data["out"])})
    return 0
