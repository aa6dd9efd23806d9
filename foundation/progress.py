"""Progress display shared by both tools.

On a terminal: a rich live panel refreshed a few times a second. Otherwise (CI, pipes, logs): one
plain line every ``log_interval`` seconds, so long runs still show they are alive. At the end the
caller prints a summary table with :func:`summary_table`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from foundation.console import Console, new_table

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table

__all__ = ["ProgressReporter", "human_bytes", "summary_table"]

Snapshot = Callable[[], Mapping[str, object]]
NOTICE_EVERY = 0.5  # seconds between two looks for notices


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def summary_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    table = new_table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="left" if col == columns[0] else "right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


def _render(title: str, snap: Mapping[str, object]) -> Table:
    table = new_table(title=title, show_header=False, title_justify="left", box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in snap.items():
        table.add_row(key, str(value))
    return table


class ProgressReporter:
    """Shows ``snapshot()`` live (TTY) or as periodic log lines, from a daemon thread.

    A thread (not a task) so that it works the same under every mode, and keeps updating even
    when the event loop is busy.
    """

    def __init__(
        self,
        title: str,
        snapshot: Snapshot,
        *,
        stream: TextIO | None = None,
        log_interval: float = 10.0,
        live: bool | None = None,
        enabled: bool = True,
        notices: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self._title = title
        self._snapshot = snapshot
        self._stream = stream or sys.stderr
        self._console = Console(file=self._stream)
        if live is None:
            # rich decides (it knows FORCE_TERMINAL and the like), and is imported to, only
            # for a display that is on and may be a terminal: a plain log line needs no rich
            maybe = self._stream.isatty() or "FORCE_TERMINAL" in os.environ
            live = enabled and maybe and self._console.rich.is_terminal
        self._live_mode = live
        self._interval = 0.25 if self._live_mode else log_interval
        self._enabled = enabled
        # lines worth a log line of their own as they happen (a host waiting, unreachable):
        # printed even with the display off, so a quiet run never looks like a hang
        self._notices = notices
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Live | None = None

    def __enter__(self) -> ProgressReporter:
        if not self._enabled and self._notices is None:
            return self
        if self._enabled and self._live_mode:
            from rich.live import Live

            self._live = Live(
                _render(self._title, self._snapshot()),
                console=self._console.rich,
                refresh_per_second=4,
                transient=True,
            )
            self._live.start()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        tick = min(self._interval, NOTICE_EVERY) if self._notices else self._interval
        next_emit = time.monotonic() + self._interval
        while not self._stop.wait(tick):
            self._notify()
            if self._enabled and time.monotonic() >= next_emit:
                self._emit()
                next_emit = time.monotonic() + self._interval

    def _notify(self) -> None:
        if self._notices is None:
            return
        try:
            lines = self._notices()
        except Exception:  # a snapshot race must never kill the display
            return
        for line in lines:
            stamp = time.strftime("%H:%M:%S")
            text = f"[{stamp}] {self._title}: {line}"
            if self._live is not None:
                self._live.console.print(text, highlight=False, markup=False)
            else:
                print(text, file=self._stream, flush=True)

    def _emit(self) -> None:
        try:
            snap = self._snapshot()
        except Exception:  # a snapshot race must never kill the display
            return
        if self._live is not None:
            self._live.update(_render(self._title, snap))
        else:
            parts = " ".join(f"{k}={v}" for k, v in snap.items())
            stamp = time.strftime("%H:%M:%S")
            print(f"[{stamp}] {self._title}: {parts}", file=self._stream, flush=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._notify()  # what happened since the last tick
        if self._live is not None:
            self._live.stop()
