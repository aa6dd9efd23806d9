"""Crawl counters, the live snapshot shown by the progress display, and the summary table.

The engine (event-loop thread) writes the counters; the progress thread only reads plain ints and
floats, so no lock is needed (a snapshot may be a few microseconds inconsistent, never wrong
enough to matter on screen).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.pages import iter_pages

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["NO_RESPONSE", "ArchiveSummary", "CrawlStats", "is_archive", "summarize_archive"]

# the status label of a page that got no HTTP response (connection error, timeout, robots)
NO_RESPONSE = "no response"

# clocks of the process that made the object: meaningless in another, never sent
PROCESS_LOCAL = frozenset({"started", "cpu_start"})
UNREACHABLE_HOSTS = 1000  # hosts kept with their cause for the display and the summary
WAIT_LOG = 200  # waits kept for the log thread between two of its looks


def _left(entry: tuple[str, str, float]) -> float:
    return entry[2]


@dataclass
class CrawlStats:
    """Live counters of one run (this process only; the archive summary covers all runs)."""

    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    bytes: int = 0
    responses: int = 0
    retries: int = 0
    revisits: int = 0
    skipped: int = 0  # robots-retry-later, already archived before a crash
    in_flight: int = 0
    queued: int = 0
    pending: int = 0  # fetched pages in parse/write (bounded by max_pending_parse)
    max_pending: int = 0
    held: int = 0  # fetched pages not yet committed (bodies in memory)
    max_held: int = 0
    total_hint: int | None = None  # list mode: number of URLs, for the ETA
    previous: int = 0  # pages archived by earlier runs of this output folder
    errors: Counter[str] = field(default_factory=Counter)
    failed_urls: list[tuple[str, str]] = field(default_factory=list)
    # hosts that could not be connected to (refused, unknown, TLS): their URLs fail at once
    unreachable: dict[str, str] = field(default_factory=dict)
    # hosts whose URLs wait (robots.txt retries after a failed connect): host -> (why, until,
    # wall clock)
    waiting: dict[str, tuple[str, float]] = field(default_factory=dict)
    # every wait as it was noted, (host, why, until), the last WAIT_LOG of them; waits_noted
    # counts them all, so the log thread prints each one even when two come between its looks
    wait_log: list[tuple[str, str, float]] = field(default_factory=list)
    waits_noted: int = 0
    cpu_start: float = field(default_factory=time.process_time)

    def note_unreachable(self, host: str, cause: str) -> None:
        self.waiting.pop(host, None)
        if host in self.unreachable or len(self.unreachable) < UNREACHABLE_HOSTS:
            self.unreachable[host] = cause

    def __post_init__(self) -> None:
        self._told: dict[str, str] = {}  # host -> the last unreachable notice given about it
        self._waits_told = 0

    def notices(self) -> list[str]:
        """New lines for the log since the last call: a host starts (or goes on) waiting, a
        host is found unreachable. Called by the progress thread only."""
        out: list[str] = []
        now = time.time()
        noted, log = self.waits_noted, list(self.wait_log)  # the engine appends meanwhile
        fresh = log[len(log) - min(len(log), noted - self._waits_told) :]
        self._waits_told = noted
        for host, why, until in fresh:  # each wait, however short: a retry-1 wait of 0.3 s
            left = max(0.0, until - now)  # that was over before this look still gets its line
            out.append(f"waiting for {host}: {why} (next try in {left:.1f} s)")
        for host, cause in list(self.unreachable.items()):
            if self._told.get(host) != cause:
                self._told[host] = cause
                out.append(f"{cause}; its URLs fail")
        return out

    def note_waiting(self, host: str, why: str, until: float) -> None:
        """``host``'s URLs wait until wall-clock ``until`` because of ``why`` (shown live)."""
        # ended waits are kept a minute (the log notices them however short), then dropped
        stale = time.time() - 60
        for old in [h for h, (_, end) in list(self.waiting.items()) if end < stale]:
            self.waiting.pop(old, None)  # threads mode: workers note concurrently
        if host in self.waiting or len(self.waiting) < UNREACHABLE_HOSTS:
            self.waiting[host] = (why, until)
        self.wait_log.append((host, why, until))
        if len(self.wait_log) > WAIT_LOG:
            del self.wait_log[: len(self.wait_log) - WAIT_LOG]
        self.waits_noted += 1

    def waiting_now(self) -> list[tuple[str, str, float]]:
        """(host, why, seconds left) of the hosts still waiting, soonest first."""
        now = time.time()
        items = list(self.waiting.items())  # the progress thread reads while the engine writes
        return sorted(((h, why, end - now) for h, (why, end) in items if end > now), key=_left)

    @property
    def elapsed(self) -> float:
        return max(1e-9, time.monotonic() - self.started)

    def to_json(self) -> dict[str, Any]:
        """Every counter as JSON-able data, for a run in another process (the gevent mode's
        child); the clocks (:data:`PROCESS_LOCAL`) stay behind."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in PROCESS_LOCAL}
        data["errors"] = dict(self.errors)
        data["failed_urls"] = [list(pair) for pair in self.failed_urls]
        data["waiting"] = {h: list(entry) for h, entry in self.waiting.items()}
        data["wait_log"] = [list(entry) for entry in self.wait_log]
        return data

    def load_json(self, data: Mapping[str, Any]) -> None:
        """Set every counter from :meth:`to_json` data, in place (a live display may hold this
        object); this process's clocks are kept."""
        for f in fields(self):
            if f.name in PROCESS_LOCAL:
                continue
            value = data[f.name]
            if f.name == "errors":
                self.errors = Counter({str(k): int(v) for k, v in value.items()})
            elif f.name == "failed_urls":
                self.failed_urls = [(str(url), str(why)) for url, why in value]
            elif f.name == "unreachable":
                self.unreachable = {str(host): str(why) for host, why in value.items()}
            elif f.name == "waiting":
                self.waiting = {str(h): (str(why), float(end)) for h, (why, end) in value.items()}
            elif f.name == "wait_log":
                self.wait_log = [(str(h), str(why), float(end)) for h, why, end in value]
            elif f.name == "total_hint":
                self.total_hint = None if value is None else int(value)
            else:
                setattr(self, f.name, int(value))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CrawlStats:
        """A new object (with this process's clocks) holding the counters of ``data``."""
        stats = cls()
        stats.load_json(data)
        return stats

    def snapshot(self) -> Mapping[str, object]:
        el = self.elapsed
        pages = self.done + self.failed
        snap: dict[str, object] = {
            "pages/s": f"{pages / el:.0f}",
            "MB/s": f"{self.bytes / el / 1e6:.1f}",
            "in flight": self.in_flight,
            "queued": self.queued,
            "done": self.done,
            "failed": self.failed,
        }
        if self.errors:
            snap["errors"] = ", ".join(f"{k} {v}" for k, v in self.errors.most_common(4))
        waiting = self.waiting_now()
        if waiting:
            shown = "; ".join(f"{host}: {why}, {left:.0f} s" for host, why, left in waiting[:3])
            more = f" (+{len(waiting) - 3} more)" if len(waiting) > 3 else ""
            snap["waiting"] = shown + more
        if self.unreachable:
            host, why = next(iter(self.unreachable.items()))
            more = f" (+{len(self.unreachable) - 1} more)" if len(self.unreachable) > 1 else ""
            snap["unreachable"] = f"{host}: {why.split(':', 1)[0]}{more}"
        if self.total_hint and pages:
            left = max(0, self.total_hint - pages - self.previous)
            snap["ETA"] = f"{left / (pages / el):.0f} s"
        return snap

    def summary(self) -> Table:
        # rich is imported here, not with the module: the processes mode's workers count pages
        # with this class and never draw a table (rich: ~4 MB in each of them)
        from foundation.progress import human_bytes, summary_table

        el = self.elapsed
        pages = self.done + self.failed
        cpu = time.process_time() - self.cpu_start
        rows: list[tuple[str, object]] = [
            ("URLs done", self.done),
            ("URLs failed", self.failed),
            ("responses archived", self.responses),
            ("revisit records", self.revisits),
            ("retries", self.retries),
            ("bytes received", human_bytes(self.bytes)),
            ("elapsed", f"{el:.2f} s"),
            ("pages/s", f"{pages / el:.1f}"),
            ("CPU ms/page (main process)", f"{cpu * 1000 / pages:.2f}" if pages else "-"),
        ]
        if self.previous:
            rows.insert(0, ("archived by earlier runs", self.previous))
        if self.unreachable:
            rows.append(("hosts unreachable", len(self.unreachable)))
        rows += [(f"error: {k}", v) for k, v in self.errors.most_common()]
        return summary_table("crawl summary", ["", "value"], rows)


@dataclass(frozen=True)
class ArchiveSummary:
    pages: int
    ok: int
    failed: int
    bytes: int
    revisits: int
    statuses: dict[str, int]
    errors: dict[str, int]
    warc_files: int
    warc_bytes: int
    failed_urls: tuple[tuple[str, str], ...]

    def table(self, title: str) -> Table:
        from foundation.progress import human_bytes, summary_table

        rows: list[tuple[str, object]] = [
            ("pages", self.pages),
            ("ok", self.ok),
            ("failed", self.failed),
            ("bytes (as received)", human_bytes(self.bytes)),
            ("revisit records", self.revisits),
            ("WARC files", self.warc_files),
            ("WARC bytes", human_bytes(self.warc_bytes)),
        ]
        rows += [
            (k if k == NO_RESPONSE else f"status {k}", v) for k, v in sorted(self.statuses.items())
        ]
        rows += [(f"error: {k}", v) for k, v in sorted(self.errors.items())]
        return summary_table(title, ["", "value"], rows)

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-able data (``crawler stats --json``)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["failed_urls"] = [list(pair) for pair in self.failed_urls]
        return data


def is_archive(out: Path, warcs: Iterable[Path]) -> bool:
    """True when ``out`` holds (the start of) a crawl: pages, crawl state or WARC files."""
    return (out / "pages.jsonl").is_file() or (out / "state.sqlite").is_file() or any(warcs)


def summarize_archive(out: Path, warcs: Iterable[Path]) -> ArchiveSummary:
    """Read ``pages.jsonl`` of an output folder into totals (``crawler stats DIR``)."""
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    pages = ok = failed = size = revisits = 0
    failed_urls: list[tuple[str, str]] = []
    for row in iter_pages(out / "pages.jsonl"):
        pages += 1
        status = row.get("status")
        statuses[NO_RESPONSE if status is None else str(status)] += 1
        size += int(row.get("bytes") or 0)
        revisits += bool(row.get("revisit"))
        err: Any = row.get("error_class")
        if err:
            failed += 1
            errors[str(err)] += 1
            failed_urls.append((str(row.get("url")), f"{err}: {row.get('error')}"))
        else:
            ok += 1
    files = list(warcs)
    return ArchiveSummary(
        pages,
        ok,
        failed,
        size,
        revisits,
        dict(statuses),
        dict(errors),
        len(files),
        sum(p.stat().st_size for p in files),
        tuple(failed_urls),
    )
