"""Helpers of the process-hygiene tests: start a CLI as a child, watch its process tree, stop it.

A run is started in a session of its own (the clean-up can reach all it made) from a temporary
working directory, with relative paths only, so every test also checks that a relative path means
the same in every mode. Its descendants are read with psutil (never by name): the fork server's
workers are grandchildren of the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
STOP_WITHIN = 2.0  # seconds from SIGINT / SIGTERM to the command's exit (the requirement)
GONE_WITHIN = 5.0  # seconds from the main process's death to the last descendant's


def env(**extra: str) -> dict[str, str]:
    out = {**os.environ, "PYTHONPATH": str(ROOT), "FETCHLAB_PROCESSES": "2", **extra}
    out.pop("FETCHLAB_SETTINGS", None)
    return out


def start(argv: list[str], cwd: Path, environ: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *argv],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def alive(p: psutil.Process) -> bool:
    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def tree(pid: int) -> list[psutil.Process]:
    """``pid``'s descendants (children of children included)."""
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def wait_for(ready: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.communicate()[1]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def assert_all_gone(procs: list[psutil.Process], within: float = GONE_WITHIN) -> None:
    deadline = time.monotonic() + within
    while (left := [p for p in procs if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"still running {within} s after the main process ended: {describe(left)}"


def describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.Error:
            out.append(str(p.pid))
    return out


def sigkill_main(proc: subprocess.Popen[str], runs: Runs) -> list[psutil.Process]:
    """SIGKILL the command alone (not its group); its descendants as they were just before."""
    before = runs.note(tree(proc.pid))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)  # not communicate(): a survivor holds the pipes open
    return before


def stop_with(
    proc: subprocess.Popen[str], runs: Runs, sig: signal.Signals, *, group: bool
) -> tuple[int, str, float]:
    """Send ``sig`` (to the process group, as a terminal's Ctrl-C does, or to the command only,
    as ``kill`` does); the exit code, stderr and the seconds the command took to exit."""
    before = runs.note(tree(proc.pid))
    sent = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    try:
        _, err = proc.communicate(timeout=STOP_WITHIN + 30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no exit {STOP_WITHIN + 30} s after {sig.name}") from None
    took = time.monotonic() - sent
    assert_all_gone(before)
    return proc.returncode, err, took


def ctrl_c_as_workers_start(
    proc: subprocess.Popen[str], runs: Runs, wanted: int, begun: Callable[[], bool]
) -> None:
    """Ctrl-C (to the process group) the moment ``proc`` has ``wanted`` descendants (its
    workers, still importing), or once ``begun()`` when it starts none: it must stop as any
    stop does: exit 130 within :data:`STOP_WITHIN`, no traceback, no worker reported dead."""
    if wanted:
        wait_for(lambda: len(tree(proc.pid)) >= wanted, proc, f"{wanted} descendants started")
    else:  # no worker processes: as soon as the run has begun
        wait_for(begun, proc, "the run began")
    code, err, took = stop_with(proc, runs, signal.SIGINT, group=True)
    assert code == 130, err
    assert "Traceback" not in err and "died" not in err, err
    assert took < STOP_WITHIN, f"{took:.2f} s"


class Runs:
    """Runs started by a test and every descendant seen: all killed at the end, whatever is left."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.seen: list[psutil.Process] = []

    def start(self, argv: list[str], cwd: Path, environ: dict[str, str]) -> subprocess.Popen[str]:
        proc = start(argv, cwd, environ)
        self.procs.append(proc)
        return proc

    def note(self, procs: list[psutil.Process]) -> list[psutil.Process]:
        self.seen.extend(procs)
        return procs

    def cleanup(self) -> None:
        for proc in self.procs:
            self.seen.extend(tree(proc.pid))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for p in self.seen:
            if alive(p):
                p.kill()
        for proc in self.procs:
            proc.communicate(timeout=10)


@pytest.fixture
def runs() -> Iterator[Runs]:
    made = Runs()
    try:
        yield made
    finally:
        made.cleanup()
