"""rich's Console and Table, imported at their first use.

rich is the commands' way to print (tables, colour, wrapping), but importing it costs ~5 MB of
memory in every process that does (72 modules for ``rich.console`` alone, measured with
``/proc/self/status`` around the import), and a crawl or a backup run without a live display
prints nothing until its summary. Made here, a :class:`Console` imports rich at its first
``print``: a crawl's coordinator and a backup keep that memory while they work (the bench
counts it in the peak, summed over the process tree).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console as RichConsole
    from rich.table import Table

__all__ = ["Console", "new_table"]


class Console:
    """What the commands use of ``rich.console.Console``: made with the same options, it makes
    the real one at the first :meth:`print`."""

    def __init__(self, file: TextIO | None = None, **options: Any) -> None:
        self._file = file
        self._options = options
        self._rich: RichConsole | None = None

    @property
    def rich(self) -> RichConsole:
        if self._rich is None:
            from rich.console import Console as RichConsole

            self._rich = RichConsole(file=self._file, **self._options)
        return self._rich

    def print(self, *objects: Any, **options: Any) -> None:
        self.rich.print(*objects, **options)


def new_table(*args: Any, **options: Any) -> Table:
    """``rich.table.Table(*args, **options)``, rich imported now rather than with the module."""
    from rich.table import Table

    return Table(*args, **options)
