"""Crawl memory at two scales, side by side (a script, not a test):
``python -m tests.benchmarks.bench_memory_crawl [--full] [--write]``.

Issue 16's targets: peak RSS summed over the crawler's processes may grow at most 1.15x from the
small to the large site, in asyncio and processes modes, with the pages/s of the large crawl at
least 95% of the small one's; a list crawl of 1,000,000 distinct URLs stays under 250 MB summed
at >= 90% of the pages/s of a 100,000-URL list crawl.

- **Site crawl:** the test bed's generated site on nginx, ``--follow`` at the crawler's default
  flags (robots.txt obeyed, WARC, parser pool), small and large site alternated round by round.
- **List crawl:** N distinct URLs (``/p/<i>``, each a cheap 404 from the same nginx) given with
  ``-i``, default flags: the frontier, the seen set, the CDXJ index and pages.jsonl all grow
  with N while the pages stay tiny, so what grows is the crawler's own bookkeeping.

Every run writes into a fresh folder, set aside afterwards (not deleted: see ``set_aside``); the
table gives wall time, pages/s, client CPU, nginx's CPU, and peak RSS and PSS of the whole tree.
Quick sizes by default (sites 2,000 / 10,000, lists 10,000 / 100,000); ``--full`` (or
FETCHLAB_SLOW=1) runs the issue's sizes (20,000 / 100,000 and 100,000 / 1,000,000).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from fetchlab.bench.grid import set_aside  # noqa: E402
from fetchlab.bench.sampler import ServerCPU  # noqa: E402
from foundation.progress import summary_table  # noqa: E402
from testbed.site import serve_generated_site  # noqa: E402
from tests.benchmarks.bench_crawl import Run, _fetched, _fetchlab_crawl, measure  # noqa: E402

QUICK_SITES, FULL_SITES = (2_000, 10_000), (20_000, 100_000)
QUICK_LISTS, FULL_LISTS = (10_000, 100_000), (100_000, 1_000_000)
RSS_GROWTH, SITE_SPEED, LIST_SPEED, LIST_RSS_MB = 1.15, 0.95, 0.90, 250


@dataclass(frozen=True)
class Point:
    """The median of one scenario's runs."""

    scenario: str
    mode: str
    size: int
    pages: int
    wall: float
    rate: float
    cpu: float
    server_cpu: float
    rss_mb: float
    pss_mb: float


def _median(label: str, mode: str, size: int, runs: Sequence[Run]) -> Point:
    def med(values: Sequence[float]) -> float:
        return float(statistics.median(values))

    return Point(
        label,
        mode,
        size,
        int(med([r.pages for r in runs])),
        med([r.wall for r in runs]),
        med([r.rate for r in runs]),
        med([r.cpu for r in runs]),
        med([r.server_cpu for r in runs]),
        med([r.peak_rss / 2**20 for r in runs]),
        med([r.peak_pss / 2**20 for r in runs]),
    )


def site_section(work: Path, sizes: Sequence[int], modes: Sequence[str], runs: int) -> list[Point]:
    """Both site sizes served at once (one nginx each), crawled alternately, every mode."""
    served = {n: serve_generated_site(work / "sites", n, 1, (), "nginx") for n in sizes}
    got: dict[tuple[str, int], list[Run]] = {}
    try:
        for i in range(runs):
            for mode in modes:
                for n in sizes:
                    _, server = served[n]
                    out = work / f"site-{mode}-{n}-{i}"
                    argv, count = _fetchlab_crawl(server.base_url, out, mode=mode, flags=())
                    cpu = ServerCPU(server.process.pid)
                    run = measure(f"site {n}", argv, count, server=cpu)
                    got.setdefault((mode, n), []).append(run)
                    set_aside(out, work)
    finally:
        for _, server in served.values():
            server.stop()
    return [_median("site crawl", m, n, got[(m, n)]) for m in modes for n in sizes]


def list_section(work: Path, sizes: Sequence[int], modes: Sequence[str], runs: int) -> list[Point]:
    """One nginx, N distinct cheap URLs (404s of the generated site), the lists alternated."""
    _, server = serve_generated_site(work / "sites", 200, 1, (), "nginx")
    listings: dict[int, Path] = {}
    for n in sizes:
        listings[n] = work / f"urls-{n}.txt"
        with listings[n].open("w") as fh:
            fh.writelines(f"{server.base_url}/p/{i}\n" for i in range(n))
    got: dict[tuple[str, int], list[Run]] = {}
    try:
        cpu = ServerCPU(server.process.pid)
        for i in range(runs):
            for mode in modes:
                for n in sizes:
                    out = work / f"list-{mode}-{n}-{i}"
                    argv = [
                        sys.executable,
                        "-m",
                        "fetchlab.crawl_cli",
                        "crawl",
                        "--mode",
                        mode,
                        "-i",
                        str(listings[n]),
                        "--out",
                        str(out),
                        "--no-progress",
                    ]
                    count = partial(_fetched, out / "pages.jsonl")
                    got.setdefault((mode, n), []).append(
                        measure(f"list {n}", argv, count, server=cpu)
                    )
                    set_aside(out, work)
    finally:
        server.stop()
    return [_median("list crawl", m, n, got[(m, n)]) for m in modes for n in sizes]


def verdicts(points: Sequence[Point]) -> list[str]:
    """One line per (scenario, mode): the large size against the small one, and the targets."""
    lines: list[str] = []
    pairs: dict[tuple[str, str], list[Point]] = {}
    for p in points:
        pairs.setdefault((p.scenario, p.mode), []).append(p)
    for (scenario, mode), pts in pairs.items():
        small, large = min(pts, key=lambda p: p.size), max(pts, key=lambda p: p.size)
        growth, speed = large.rss_mb / small.rss_mb, large.rate / small.rate
        want_speed = SITE_SPEED if scenario == "site crawl" else LIST_SPEED
        ok = growth <= RSS_GROWTH and speed >= want_speed
        extra = ""
        if scenario == "list crawl":
            ok = ok and large.rss_mb < LIST_RSS_MB
            extra = f", {large.rss_mb:.0f} MB at {large.size:,} (target < {LIST_RSS_MB})"
        lines.append(
            f"{scenario}, {mode}: RSS x{growth:.2f} (target <= {RSS_GROWTH}), pages/s "
            f"x{speed:.2f} (target >= {want_speed}){extra}: {'met' if ok else 'NOT met'}"
        )
    return lines


COLUMNS: tuple[str, ...] = (
    "scenario",
    "mode",
    "size",
    "pages",
    "wall s",
    "pages/s",
    "client CPU s",
)
COLUMNS += ("nginx CPU s", "peak RSS MB", "peak PSS MB")


def _rows(points: Sequence[Point]) -> list[tuple[object, ...]]:
    return [
        (
            p.scenario,
            p.mode,
            f"{p.size:,}",
            f"{p.pages:,}",
            f"{p.wall:.1f}",
            f"{p.rate:.0f}",
            f"{p.cpu:.1f}",
            f"{p.server_cpu:.1f}",
            f"{p.rss_mb:.0f}",
            f"{p.pss_mb:.0f}",
        )
        for p in points
    ]


def markdown(points: Sequence[Point], runs: int) -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        f"Measured {when}, {os.cpu_count()} cores, load average {load} at the end; "
        f"median of {runs} run(s) per row; default flags.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---" * len(COLUMNS) + "|",
    ]
    body = ["| " + " | ".join(str(c) for c in row) + " |" for row in _rows(points)]
    return "\n".join(head + body + [""] + [f"- {v}" for v in verdicts(points)]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--full", action="store_true", default=bool(os.environ.get("FETCHLAB_SLOW"))
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--modes", default="asyncio,processes")
    parser.add_argument("--sections", default="site,list")
    parser.add_argument("--sites", default="", help="two site sizes, e.g. 20000,100000")
    parser.add_argument("--lists", default="", help="two list sizes, e.g. 100000,1000000")
    parser.add_argument("--write", type=Path, help="append the Markdown table to this file")
    args = parser.parse_args(argv)
    modes = tuple(args.modes.split(","))
    sites = tuple(int(x) for x in args.sites.split(",")) if args.sites else None
    lists = tuple(int(x) for x in args.lists.split(",")) if args.lists else None
    sites = sites or (FULL_SITES if args.full else QUICK_SITES)
    lists = lists or (FULL_LISTS if args.full else QUICK_LISTS)
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    points: list[Point] = []
    try:
        if "site" in args.sections:
            points += site_section(work, sites, modes, args.runs)
        if "list" in args.sections:
            points += list_section(work, lists, modes, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    console = Console()
    console.print(summary_table("crawl memory at two scales", COLUMNS, _rows(points)))
    for line in verdicts(points):
        console.print(line, highlight=False)
    if args.write:
        with args.write.open("a", encoding="utf-8") as fh:
            fh.write("\n" + markdown(points, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
