"""No process of a run outlives the run's main process, whatever ends it (SIGKILL included).

Why each kind of child needs help:

- Workers forked by the multiprocessing fork server (parse pools, the processes modes' workers)
  are children of the fork server, not of the main process, and each holds the write end of the
  fork server's "alive" pipe and of its own job queue: after a SIGKILL of the main process a pool
  worker waits on its queue for ever, the fork server waits for its workers, and the resource
  tracker for every holder of its pipe (seen alive 411 s later). :func:`watch_owner` gives such
  a worker a thread that waits on a pidfd of the main process and ends the worker when it ends;
  the fork server and the resource tracker then end on their own (end-of-file on their pipes).
- A child started with :mod:`subprocess` (the gevent modes) is a direct child: the kernel's
  parent-death signal (:func:`die_with_parent`) ends it without a thread, which matters there
  (threads started before gevent patches the standard library are not greenlet-aware).

Both check, once armed, that the process they watch is still the one meant: a parent that died
during start-up is seen at once, not never.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "OWNER_ENV",
    "die_with_parent",
    "exit_now",
    "hard_stop_after",
    "run_watched",
    "stop_signals_as_interrupt",
    "watch_owner",
]

OWNER_ENV = "FETCHLAB_OWNER_PID"  # the main process's PID, handed to a subprocess child
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_ORPHANED = 128 + signal.SIGHUP  # the exit status of a worker whose owner is gone
_watched: set[int] = set()
_watched_lock = threading.Lock()


def _gone() -> None:
    # no clean-up on purpose: what a worker holds is safe after a kill (the archives are
    # written crash-safe) and nobody is left to receive what it would flush
    os._exit(_ORPHANED)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch_owner(owner: int) -> None:
    """End this process (at once, no clean-up) when process ``owner`` ends. Idempotent."""
    with _watched_lock:
        if owner in _watched:
            return
        _watched.add(owner)
    try:
        fd: int | None = os.pidfd_open(owner)
    except ProcessLookupError:
        _gone()
        return
    except (OSError, AttributeError):  # no pidfd (kernel < 5.3, a seccomp filter): poll
        fd = None

    def wait() -> None:
        if fd is not None:
            while not select.select([fd], [], [])[0]:  # readable once the process has ended
                pass
        else:
            while _exists(owner):
                time.sleep(0.2)
        _gone()

    threading.Thread(target=wait, name=f"lifeline-{owner}", daemon=True).start()


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent (``parent``) ends (Linux); else
    fall back to :func:`watch_owner`. Call it first thing in a :mod:`subprocess` child."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        armed = False
    if not armed:
        watch_owner(parent)
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        _gone()


def run_watched(owner: int, target: Callable[..., Any], *args: Any) -> Any:
    """``target(*args)`` in a worker process that ends with process ``owner``: the top-level
    (picklable) target of a fork server's ``Process``: ``Process(target=run_watched,
    args=(os.getpid(), worker_main, ...))``."""
    watch_owner(owner)
    return target(*args)


@contextlib.contextmanager
def stop_signals_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM means what SIGINT means: whatever handler SIGINT has when the
    signal comes (the asyncio runner's, a driver's) is called, so every mode's Ctrl-C path
    (graceful stop, state saved, exit 130) serves ``kill`` and service managers too.
    Only in the main thread (elsewhere signal handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        elif handler != signal.SIG_IGN:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_now(code: int) -> None:
    """Flush the standard streams and end the process with ``code`` without waiting for
    threads: after a stop whose state is saved, an abandoned thread (a request that is still
    waiting for its timeout) must not hold the exit."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


@contextlib.contextmanager
def hard_stop_after(grace: float, code: int, note: str) -> Iterator[None]:
    """While inside, SIGINT raises KeyboardInterrupt as usual, and also arms a timer: if the
    process has not ended ``grace`` seconds later, it prints ``note`` and exits with ``code``.

    For a job whose files are consistent at any instant (what a SIGKILL leaves is repaired by
    the next run) run by threads that cannot be interrupted: a stop then takes ``grace``
    seconds at most, not as long as the slowest thread's current task. Combine it with
    :func:`stop_signals_as_interrupt` for SIGTERM. Main thread only.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = False

    def expire() -> None:
        print(note, file=sys.stderr, flush=True)
        exit_now(code)

    def on_int(signum: int, frame: Any) -> None:
        nonlocal armed
        if not armed:
            armed = True
            timer = threading.Timer(grace, expire)
            timer.daemon = True
            timer.start()
        signal.default_int_handler(signum, frame)

    previous = signal.signal(signal.SIGINT, on_int)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
