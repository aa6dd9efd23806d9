"""Which archived messages an export or a restore takes: ``--query`` in its minimal form.

Two terms are read here, without the search index (notmuch's spelling), space-separated, all of
them required:

- ``folder:NAME`` -- the folder as the server names it (``/`` between levels); shell-style
  wildcards work (``folder:Archive/*``); several ``folder:`` terms mean any of them;
- ``date:A..B`` -- INTERNALDATE (the server's arrival date) from day A through day B, in UTC;
  each end is ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` and may be left empty (``date:2024..``);
  ``date:2024-03`` alone is that month.

Quotes group a name with spaces (``folder:"Project X"``). Any other query is the search
language's (``mailsync search``), answered by the archive's search index
(:func:`mailsync.archived.select_messages`); a typo there is one error with its position, never
"everything".
"""

from __future__ import annotations

import calendar
import fnmatch
import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from foundation.errors import UsageError

__all__ = ["Selection", "parse_query"]

_DAY = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


@dataclass(frozen=True)
class Selection:
    """``folders`` (patterns, any of them; empty: all) and ``[since, until)`` in UTC."""

    folders: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    # any other query: the (folder, UIDVALIDITY, UID) keys the search index selected
    keys: frozenset[tuple[str, int, int]] | None = None

    def key_ok(self, folder: str, uidvalidity: int, uid: int) -> bool:
        return self.keys is None or (folder, uidvalidity, uid) in self.keys

    def folder_ok(self, folder: str) -> bool:
        return not self.folders or any(fnmatch.fnmatchcase(folder, p) for p in self.folders)

    def date_ok(self, when: datetime | None) -> bool:
        if self.since is None and self.until is None:
            return True
        if when is None:
            return False  # a date range asks for known dates
        return (self.since is None or when >= self.since) and (
            self.until is None or when < self.until
        )


def _bounds(text: str, term: str) -> tuple[datetime, datetime]:
    """The first instant of the day / month / year ``text`` and the first one after it."""
    m = _DAY.match(text)
    if m is None:
        raise UsageError(f"--query: {term!r}: dates are YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = int(m[1]), int(m[2] or 0), int(m[3] or 0)
    try:
        if not month:
            return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        if not day:
            start = datetime(year, month, 1, tzinfo=UTC)
            days = calendar.monthrange(year, month)[1]
            return start, start + timedelta(days=days)
        start = datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        raise UsageError(f"--query: {term!r}: no such date") from None
    return start, start + timedelta(days=1)


def parse_query(query: str | None) -> Selection:
    """The :class:`Selection` of ``query`` (None or blank: everything)."""
    if query is None or not query.strip():
        return Selection()
    try:
        terms = shlex.split(query)
    except ValueError as exc:
        raise UsageError(f"--query: {exc}") from None
    folders: list[str] = []
    since: datetime | None = None
    until: datetime | None = None
    for term in terms:
        key, sep, value = term.partition(":")
        if not sep or not value or key not in ("folder", "date"):
            raise UsageError(
                f"--query: {term!r} is not understood yet: only folder:NAME and date:A..B "
                "(see docs/mailsync.md)"
            )
        if key == "folder":
            folders.append(value)
            continue
        first, dots, last = value.partition("..")
        lo = _bounds(first, term)[0] if first else None
        hi = _bounds(last if dots else first, term)[1] if (last or not dots) else None
        if lo is not None and hi is not None and hi <= lo:
            raise UsageError(f"--query: {term!r}: the range ends before it starts")
        since = lo if since is None or (lo is not None and lo > since) else since
        until = hi if until is None or (hi is not None and hi < until) else until
    return Selection(tuple(folders), since, until)
