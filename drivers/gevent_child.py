"""A job in a gevent child process: the parent's runner (:func:`run_child`) and the child's side
of the job file (:class:`ChildJob`, :func:`on_stop_signals`), shared by both gevent drivers.

The parent writes the job to a JSON file in a private temporary folder and starts ``python -P -m
drivers.gevent_entry MODULE:FUNCTION JOB.json`` (:func:`start_child`): in the caller's working
directory, so relative paths of the job mean what they mean in every other mode, with the project
first on ``PYTHONPATH`` and the parent's PID in the environment (the child arms the parent-death
signal before anything else). While the child runs, the parent polls it, hands what the child last
reported to a progress callback, and forwards Ctrl-C / SIGTERM (both reach it as
KeyboardInterrupt) as SIGINT; whatever ends the parent, the child is reaped or killed. The child
reads the job, may report progress, and writes its result; both files are replaced atomically, so
the parent never reads half a file. A driver keeps only its own mapping: what the job holds, how
the child builds its work, what the result means.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.errors import ModeError

__all__ = ["ChildJob", "ChildRun", "on_stop_signals", "run_child", "start_child"]

TICK = 0.05  # seconds between two looks at the child (it ends: the parent returns at once)
PROGRESS_EVERY = 5  # ticks between two reads of its progress (the child writes it each 0.5 s)
SAME_KEYPRESS = 1.0  # a terminal's Ctrl-C reaches the child, and the parent forwards it too


@dataclass(frozen=True)
class ChildRun:
    """How a child's job ended: what it returned, and whether the parent was interrupted."""

    result: Any  # the data the child passed to ChildJob.finish
    interrupted: bool  # Ctrl-C / SIGTERM reached the parent (and was forwarded) during the run


@dataclass(frozen=True)
class ChildJob:
    """The child's side: the driver's job data and where to report progress and the result."""

    data: dict[str, Any]
    progress_path: Path
    result_path: Path

    @classmethod
    def read(cls, argv: list[str]) -> ChildJob:
        """The job of a child started by :func:`run_child` (``argv`` of the entry's target)."""
        raw = json.loads(Path(argv[0]).read_text("utf-8"))
        return cls(raw["job"], Path(raw["progress"]), Path(raw["result"]))

    def progress(self, data: Any) -> None:
        _write_json(self.progress_path, data)

    def finish(self, data: Any) -> None:
        _write_json(self.result_path, data)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), "utf-8")
    os.replace(tmp, path)  # the parent never reads a half-written file


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _report(path: Path, on_progress: Callable[[Any], None]) -> None:
    data = _read_json(path)
    if data is not None:  # None: the child has not reported yet
        on_progress(data)


def start_child(target: str, *args: str) -> subprocess.Popen[bytes]:
    """Start ``python -P -m drivers.gevent_entry TARGET ARG...``: in the caller's working
    directory, the project first on ``PYTHONPATH``, told who its parent is."""
    from foundation.child_process import child_env
    from foundation.pool_worker import sigint_held

    argv = [sys.executable, "-P", "-m", "drivers.gevent_entry", target, *args]
    # the child starts with Ctrl-C blocked, until on_stop_signals takes it: a terminal's Ctrl-C
    # during its start-up (~0.5 s of imports) killed it with a traceback
    with sigint_held(start_tracker=False):
        return subprocess.Popen(argv, env=child_env())


def run_child(
    target: str,
    job: Mapping[str, Any],
    *,
    what: str,
    on_progress: Callable[[Any], None] | None = None,
) -> ChildRun:
    """Run ``target`` (``MODULE:FUNCTION``, reading its job with :meth:`ChildJob.read`) in a
    gevent child and block until it ends; ``on_progress`` gets what it last reported, four
    times a second. Ctrl-C / SIGTERM in the parent are forwarded as SIGINT and the child
    is still awaited (it stops on its own terms). Raises KeyboardInterrupt if the child was
    interrupted before it wrote a result, ModeError (with its exit status, naming ``what``) if
    it ended without one otherwise."""
    with tempfile.TemporaryDirectory(prefix="fetchlab-gevent-") as tmp:
        job_path, progress, result = (Path(tmp) / n for n in ("job.json", "progress", "result"))
        _write_json(job_path, {"job": dict(job), "progress": str(progress), "result": str(result)})
        proc = start_child(target, str(job_path))
        interrupted = False
        try:
            ticks = 0
            while proc.poll() is None:
                try:
                    # not Popen.wait(timeout): on KeyboardInterrupt it waits 0.25 s more first
                    time.sleep(TICK)
                    ticks += 1
                    if on_progress is not None and ticks % PROGRESS_EVERY == 0:
                        _report(progress, on_progress)
                except KeyboardInterrupt:
                    # a terminal's Ctrl-C reached the child too; a programmatic one may not have
                    interrupted = True
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGINT)
        finally:
            if proc.poll() is None:  # the parent itself is dying: do not leave the child behind
                proc.kill()
                proc.wait()
        data = _read_json(result)
    if data is None:
        if interrupted:
            raise KeyboardInterrupt
        raise ModeError(f"the gevent {what} process failed (exit status {proc.returncode})")
    return ChildRun(data, interrupted)


def on_stop_signals(stop: Callable[[], None]) -> None:
    """In the (patched) child: SIGINT / SIGTERM call ``stop`` in gevent's hub instead of raising
    KeyboardInterrupt in whatever greenlet runs (the hub would print it and carry on). A
    terminal's Ctrl-C reaches the child and the parent, which forwards it: a copy within
    :data:`SAME_KEYPRESS` seconds is the same keypress; a later one calls ``stop`` again."""
    import gevent

    first = 0.0

    def on_signal() -> None:
        nonlocal first
        now = time.monotonic()
        if first and now - first < SAME_KEYPRESS:
            return
        first = first or now
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, on_signal)
    # blocked since start_child (a Ctrl-C held back meanwhile is delivered now, to stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
