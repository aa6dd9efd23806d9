"""The figures of ``mailsync report``, read from the search index (and the state DB's join).

One pass over the selected messages' index rows, counting as it goes (no row is kept): memory
stays flat whatever the archive's size. Times are UTC. Charts are drawn elsewhere
(:mod:`fetchlab.mail_report`): this module is plain data.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import getaddresses
from pathlib import Path

from mailsync.core.query import parse_query
from mailsync.search_index import SearchIndex

__all__ = ["ArchiveStats", "gather"]

_ADDR = re.compile(r"[^\s<>,;\"']+@[^\s<>,;\"']+")


@dataclass
class ArchiveStats:
    accounts: tuple[str, ...]
    query: str
    top: int = 15
    messages: int = 0
    bytes: int = 0
    first: float | None = None
    last: float | None = None
    undated: int = 0
    with_attachments: int = 0
    parse_problems: int = 0
    per_month: dict[str, list[int]] = field(default_factory=dict)  # YYYY-MM -> [count, bytes]
    senders: Counter[str] = field(default_factory=Counter)
    recipients: Counter[str] = field(default_factory=Counter)
    domains: Counter[str] = field(default_factory=Counter)  # sender domains
    heatmap: list[list[int]] = field(default_factory=lambda: [[0] * 24 for _ in range(7)])
    folder_year_bytes: dict[tuple[str, str], int] = field(default_factory=dict)
    attachment_types: Counter[str] = field(default_factory=Counter)
    folders: dict[str, list[int]] = field(default_factory=dict)  # folder -> [count, bytes]

    def months(self) -> list[tuple[str, int, int]]:
        """Every month from the first to the last (empty months as zero), in order."""
        if not self.per_month:
            return []
        keys = sorted(self.per_month)
        y, m = map(int, keys[0].split("-"))
        end = keys[-1]
        out: list[tuple[str, int, int]] = []
        while True:
            key = f"{y:04d}-{m:02d}"
            count, size = self.per_month.get(key, [0, 0])
            out.append((key, count, size))
            if key >= end:
                return out
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def _addresses(text: str) -> list[str]:
    if not text:
        return []
    found = [a.lower() for _, a in getaddresses([text]) if "@" in a]
    return found or [a.lower() for a in _ADDR.findall(text)]


def gather(archives: Sequence[tuple[str, Path]], query: str = "", *, top: int = 15) -> ArchiveStats:
    """The report's figures over ``archives`` ((account, root) pairs), restricted by ``query``
    (raises :class:`~foundation.errors.QuerySyntaxError` before reading anything)."""
    node = parse_query(query)
    stats = ArchiveStats(tuple(a for a, _ in archives), query, top)
    several = len(archives) > 1
    for account, root in archives:
        index = SearchIndex(root, readonly=True)
        try:
            from_where, params = index.select(node, account)
            sql = (
                "SELECT d.date, d.size, d.folder, d.from_addr, d.recipient, d.cc, d.types,"
                f" d.attachments, d.error {from_where}"
            )
            for row in index.rows(sql, params):
                folder = f"{account}/{row[2]}" if several else str(row[2])
                _count(stats, row, folder)
        finally:
            index.close()
    return stats


def _count(stats: ArchiveStats, row: tuple[object, ...], folder: str) -> None:
    date, size, _, sender, to, cc, types, attachments, error = row
    size = int(size) if isinstance(size, int) else 0
    stats.messages += 1
    stats.bytes += size
    entry = stats.folders.setdefault(folder, [0, 0])
    entry[0] += 1
    entry[1] += size
    if isinstance(date, int | float):
        when = datetime.fromtimestamp(date, UTC)
        stats.first = date if stats.first is None else min(stats.first, date)
        stats.last = date if stats.last is None else max(stats.last, date)
        month = stats.per_month.setdefault(when.strftime("%Y-%m"), [0, 0])
        month[0] += 1
        month[1] += size
        stats.heatmap[when.weekday()][when.hour] += 1
        key = (folder, str(when.year))
        stats.folder_year_bytes[key] = stats.folder_year_bytes.get(key, 0) + size
    else:
        stats.undated += 1
    if isinstance(sender, str) and sender:
        stats.senders[sender] += 1
        stats.domains[sender.rpartition("@")[2]] += 1
    for addr in _addresses(str(to or "")) + _addresses(str(cc or "")):
        stats.recipients[addr] += 1
    if isinstance(attachments, int) and attachments:
        stats.with_attachments += 1
        for t in str(types or "").split():
            stats.attachment_types[t] += 1
    if error:
        stats.parse_problems += 1


def by_folder_year(stats: ArchiveStats) -> tuple[list[str], list[str], dict[str, list[int]]]:
    """(folders, years, folder -> bytes per year) for a stacked chart."""
    folders = sorted({f for f, _ in stats.folder_year_bytes})
    years = sorted({y for _, y in stats.folder_year_bytes})
    table: dict[str, list[int]] = defaultdict(lambda: [0] * len(years))
    for (f, y), n in stats.folder_year_bytes.items():
        table[f][years.index(y)] = n
    return folders, years, dict(table)
