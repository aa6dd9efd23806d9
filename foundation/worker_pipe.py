"""What the processes modes' workers send back on: one pipe per worker, and how a death reads.

Why not one ``multiprocessing.Queue`` shared by every worker: its write lock is a semaphore that
a worker SIGKILLed (the OOM killer, a user) while sending never releases, so the other workers
block for good; and a message it left half-written makes the reader block inside ``recv`` (a
``get`` timeout covers only the wait for the first byte) or unpickle garbage. A pipe with one
writer has neither problem: when its worker dies the coordinator reads what was sent whole and
then end-of-file, at once, and knows which worker it was.
"""

from __future__ import annotations

import queue
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["PipeSender", "death_note"]


class PipeSender:
    """The worker's end: ``put`` never blocks the caller (an event loop); a thread pickles and
    sends, as a ``multiprocessing.Queue``'s feeder thread does, in ``put`` order."""

    def __init__(self, conn: Connection, name: str) -> None:
        self._conn = conn
        self._items: queue.SimpleQueue[tuple[object] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._feed, name=name, daemon=True)
        self._thread.start()

    def put(self, item: object) -> None:
        self._items.put((item,))

    def _feed(self) -> None:
        while (got := self._items.get()) is not None:
            try:
                self._conn.send(got[0])
            except OSError:  # the coordinator is gone: nobody to tell
                return

    def close(self) -> None:
        """Send what is queued, then close the pipe (the coordinator reads end-of-file)."""
        self._items.put(None)
        self._thread.join()
        self._conn.close()


def death_note(what: str, process: Any) -> str:
    """``"crawl worker 1 (pid 4242) died: killed by SIGKILL"`` for a ``multiprocessing.Process``
    that ended (or whose pipe closed) without being asked to."""
    process.join(1.0)  # its pipe can close a moment before the exit status is there to read
    code = process.exitcode
    if code is None:
        how = "closed its pipe"
    elif code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exit status {code}"
    return f"{what} (pid {process.pid}) died: {how}"
