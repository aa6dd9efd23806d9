"""Crawl benchmark (a script, not a test): ``python -m tests.benchmarks.bench_crawl [--full]``.

Section 1: a full follow crawl (robots + WARC) of the generated site on nginx, reporting pages/s,
CPU ms per page and peak memory of the crawler's processes (nginx excluded), side by side with
wget ``--warc-file`` (when installed) and Scrapy (only with ``--scrapy``: it is installed into a
throwaway venv). Section 2: a URL list against the 100 ms latency port at several concurrencies.
Each tool runs ``--runs`` times, interleaved (fetchlab, wget, scrapy, fetchlab, ...), and the
table shows medians, so a burst of load from elsewhere hits every tool alike; Scrapy, at ~50-100
pages/s, runs only in the first ``--scrapy-runs`` rounds (1 by default).

How it counts: CPU is user + system time of the tool's whole process tree (the crawler, the
forkserver and its parser processes): the larger of the children's rusage and the per-process
times sampled every 50 ms (parser processes are grandchildren reaped by the forkserver, so rusage
alone misses them). Memory is the peak over time of the tree's summed RSS (shared library pages
counted once per process: an upper bound) and of its summed PSS (shared pages split between the
processes that map them: the fair figure). Pages are responses fetched: for fetchlab the
pages.jsonl rows with a status (robots-disallowed URLs are listed there but not fetched), for
wget and Scrapy the site's ground truth.

Quick size by default (2,000 pages, 500 URLs); ``--full`` (or FETCHLAB_SLOW=1) runs the sizes
of the targets (20,000 pages, 2,000 URLs) -- on a quiet machine only. ``--write`` stores the
table in docs/benchmarks/crawl.md and the raw runs in docs/benchmarks/crawl.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import cast

import psutil
from rich.console import Console

from fetchlab.bench.grid import SET_ASIDE, set_aside
from fetchlab.bench.page_cache import CacheReset, fresh_page_cache
from fetchlab.bench.report import (
    cpu_model,
    git_commit,
    libraries_text,
    library_versions,
    versions_line,
)
from fetchlab.bench.sampler import ServerCPU
from foundation.progress import summary_table
from testbed.site import serve_generated_site

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "benchmarks"
COLUMNS = [
    "tool",
    "runs",
    "pages",
    "wall s",
    "pages/s",
    "CPU ms/page",
    "peak RSS MB",
    "peak PSS MB",
    "server CPU s",
]


@dataclass(frozen=True)
class Run:
    tool: str
    pages: int
    wall: float
    cpu: float
    peak_rss: int
    peak_pss: int
    server_cpu: float = 0.0  # the web server's CPU seconds during the run (nginx master+workers)

    @property
    def rate(self) -> float:
        return self.pages / self.wall

    @property
    def cpu_ms(self) -> float:
        return self.cpu * 1000 / max(1, self.pages)


@dataclass(frozen=True)
class Summary:
    """Medians of one tool's runs."""

    tool: str
    runs: int
    pages: int
    wall: float
    rate: float
    cpu_ms: float
    rss_mb: float
    pss_mb: float
    server_cpu: float

    @property
    def row(self) -> list[object]:
        return [
            self.tool,
            self.runs,
            self.pages,
            f"{self.wall:.2f}",
            f"{self.rate:.0f}",
            f"{self.cpu_ms:.2f}",
            f"{self.rss_mb:.0f}",
            f"{self.pss_mb:.0f}",
            f"{self.server_cpu:.1f}",
        ]


def summarize(runs: list[Run]) -> list[Summary]:
    out = []
    for tool in dict.fromkeys(r.tool for r in runs):
        mine = [r for r in runs if r.tool == tool]
        out.append(
            Summary(
                tool,
                len(mine),
                int(statistics.median(r.pages for r in mine)),
                statistics.median(r.wall for r in mine),
                statistics.median(r.rate for r in mine),
                statistics.median(r.cpu_ms for r in mine),
                statistics.median(r.peak_rss for r in mine) / 1e6,
                statistics.median(r.peak_pss for r in mine) / 1e6,
                statistics.median(r.server_cpu for r in mine),
            )
        )
    return out


def measure(
    tool: str,
    argv: list[str],
    count: Callable[[], int],
    cwd: Path | None = None,
    code: Path = ROOT,
    server: ServerCPU | None = None,
) -> Run:
    """Run ``argv`` to the end (importing the project from ``code``); sample CPU and memory of
    its whole process tree."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    server = server or ServerCPU(None)
    server_before = server.snapshot()
    before = os.times()
    started = time.monotonic()
    # `python -m` imports from its working directory first: a checkout's CLI runs from there
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd or code, env=env
    )
    peak_rss = peak_pss = 0
    cpu_seen: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_rss, peak_pss
        ticks = 0
        while not stop.wait(0.05):
            ticks += 1
            try:
                top = psutil.Process(proc.pid)
                tree = [top, *top.children(recursive=True)]
            except psutil.Error:
                continue
            rss = pss = 0
            for p in tree:
                try:
                    with p.oneshot():
                        rss += p.memory_info().rss
                        t = p.cpu_times()
                        cpu_seen[p.pid] = t.user + t.system
                    if ticks % 5 == 0:  # smaps_rollup costs more: every 0.25 s is enough
                        pss += p.memory_full_info().pss
                except psutil.Error:
                    continue
            peak_rss = max(peak_rss, rss)
            peak_pss = max(peak_pss, pss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        _, err = proc.communicate(timeout=3600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop.set()
        sampler.join()
    wall = time.monotonic() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    cpu = max(cpu, sum(cpu_seen.values()))
    if proc.returncode not in (0, 1, 8):  # 1: some 404s (fetchlab), 8: the same for wget
        raise SystemExit(f"{tool} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return Run(tool, count(), wall, cpu, peak_rss, peak_pss, server.since(server_before))


def _fetched(pages: Path) -> int:
    with open(pages, "rb") as fh:
        return sum(1 for line in fh if json.loads(line).get("status") is not None)


def cli_module(code: Path) -> str:
    """The crawler's CLI module in the checkout ``code`` (it moved in the layout change)."""
    return "fetchlab.crawl_cli" if (code / "fetchlab" / "crawl_cli.py").exists() else "crawler.cli"


TUNED = ("--per-host", "64", "--concurrency", "64")
CACHE: list[CacheReset | None] = [None]  # how the last run's page cache was reset


def _fetchlab_crawl(
    base: str,
    out: Path,
    code: Path = ROOT,
    mode: str = "asyncio",
    flags: tuple[str, ...] = TUNED,
) -> tuple[list[str], Callable[[], int]]:
    argv = [
        sys.executable,
        "-m",
        cli_module(code),
        "crawl",
        "--mode",
        mode,
        base + "/",
        "--follow",
        "--out",
        str(out),
        *flags,
        "--no-progress",
    ]
    return argv, lambda: _fetched(out / "pages.jsonl")


def _wget(base: str) -> list[str]:
    return [
        "wget",
        "-r",
        "-l",
        "inf",
        "-q",
        "--warc-file=site",
        "--delete-after",
        "--no-host-directories",
        base + "/",
    ]


def _scrapy_setup(work: Path, base: str) -> tuple[list[str], Path]:
    venv = work / "scrapy-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "scrapy"], check=True)
    spider = work / "spider.py"
    counter = work / "scrapy-count.txt"
    spider.write_text(
        "import scrapy\nfrom scrapy.linkextractors import LinkExtractor\n"
        "class S(scrapy.Spider):\n    name='s'\n"
        f"    start_urls=['{base}/']\n    allowed_domains=['127.0.0.1']\n"
        "    custom_settings={'ROBOTSTXT_OBEY': True, 'CONCURRENT_REQUESTS': 64,"
        " 'CONCURRENT_REQUESTS_PER_DOMAIN': 64, 'LOG_LEVEL': 'ERROR',"
        " 'HTTPERROR_ALLOW_ALL': True, 'TELNETCONSOLE_ENABLED': False}\n"
        "    n = 0\n"
        "    def parse(self, response):\n"
        "        self.n += 1\n"
        "        if not hasattr(response, 'text'): return\n"
        "        for link in LinkExtractor().extract_links(response):\n"
        "            yield response.follow(link, self.parse)\n"
        "    def closed(self, reason):\n"
        f"        open({str(counter)!r}, 'w').write(str(self.n))\n"
    )
    return [str(venv / "bin/scrapy"), "runspider", str(spider)], counter


def crawl_section(
    work: Path,
    pages: int,
    runs: int,
    scrapy_runs: int,
    baseline: Path | None = None,
    modes: tuple[str, ...] = ("asyncio",),
    variants: tuple[tuple[str, ...], ...] = ((), TUNED),
) -> list[Run]:
    """Interleaved rounds: per round, every mode x flag variant (the crawler's defaults first,
    then tuned), the baseline checkout after each, and wget (and scrapy) -- the peers after
    the crawler in even rounds, before it in odd ones; every output is set aside, not deleted
    (see set_aside), and every run starts from the same page cache (fetchlab.bench.page_cache),
    for every tool alike."""
    info, server = serve_generated_site(work / "site", pages, 1, (100,), "nginx")
    expected = len(info.truth_obey_robots)
    scrapy_argv: list[str] | None = None
    counter = work / "none"
    if scrapy_runs > 0:
        scrapy_argv, counter = _scrapy_setup(work, server.base_url)
    results: list[Run] = []

    def reset() -> None:
        CACHE[0] = fresh_page_cache([work / "site"], work / SET_ASIDE)

    try:
        cpu = ServerCPU(server.process.pid)
        for i in range(runs):

            def ours(i: int = i) -> None:
                for flags in variants:
                    for mode in modes:
                        codes = [("", ROOT)] + ([(" @baseline", baseline)] if baseline else [])
                        for label, code in codes:
                            out = work / f"fetchlab-{mode}{label.strip()}-{len(flags)}-{i}"
                            argv, count = _fetchlab_crawl(server.base_url, out, code, mode, flags)
                            shown = " ".join(flags) if flags else "default flags"
                            tool = f"fetchlab ({mode}, WARC, {shown}){label}"
                            reset()
                            results.append(measure(tool, argv, count, code=code, server=cpu))
                            set_aside(out, work)

            def peers(i: int = i) -> None:
                if shutil.which("wget"):
                    wdir = work / f"wget-{i}"
                    wdir.mkdir()
                    reset()
                    results.append(
                        measure(
                            "wget --warc-file",
                            _wget(server.base_url),
                            lambda: expected,
                            wdir,
                            server=cpu,
                        )
                    )
                    set_aside(wdir, work)
                if scrapy_argv is not None and i < scrapy_runs:
                    reset()
                    results.append(
                        measure(
                            "scrapy (no WARC)",
                            scrapy_argv,
                            lambda: int(counter.read_text()),
                            server=cpu,
                        )
                    )

            # the peers go first in every other round: neither side always runs after the other
            for step in (ours, peers) if i % 2 == 0 else (peers, ours):
                step()
    finally:
        server.stop()
    return results


def list_section(work: Path, urls: int, levels: list[int], runs: int) -> list[Run]:
    info, server = serve_generated_site(work / "site-l", 200, 1, (100,), "nginx")
    results: list[Run] = []
    try:
        origin = server.latency_url(100)
        paths = list(info.page_paths)[:200]
        lines = [f"{origin}{paths[i % len(paths)]}?n={i}" for i in range(urls)]
        listing = work / "urls.txt"
        listing.write_text("\n".join(lines) + "\n")
        for i in range(runs):
            for c in levels:
                out = work / f"list-{c}-{i}"
                argv = [
                    sys.executable,
                    "-m",
                    "fetchlab.crawl_cli",
                    "crawl",
                    "-i",
                    str(listing),
                    "--out",
                    str(out),
                    "--concurrency",
                    str(c),
                    "--per-host",
                    str(c),
                    "--no-robots",
                    "--no-progress",
                ]
                pages = out / "pages.jsonl"
                CACHE[0] = fresh_page_cache([work / "site-l", listing], work / SET_ASIDE)
                results.append(
                    measure(f"fetchlab list, concurrency {c}", argv, partial(_fetched, pages))
                )
                set_aside(out, work)
    finally:
        server.stop()
    return results


def _markdown(title: str, summaries: list[Summary]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(COLUMNS) + " |", "|---" * len(COLUMNS) + "|"]
    lines += ["| " + " | ".join(str(c) for c in s.row) + " |" for s in summaries]
    return "\n".join(lines) + "\n"


def _machine() -> dict[str, object]:
    wget = shutil.which("wget")
    version = ""
    if wget:
        version = subprocess.run([wget, "--version"], capture_output=True, text=True).stdout
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "commit": git_commit(ROOT),
        "wget": version.splitlines()[0] if version else None,
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def write_docs(meta: dict[str, object], sections: dict[str, list[Run]]) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    data = {
        "meta": meta,
        "sections": {k: [asdict(r) for r in v] for k, v in sections.items()},
        "medians": {k: [asdict(s) for s in summarize(v)] for k, v in sections.items()},
    }
    (DOCS / "crawl.json").write_text(json.dumps(data, indent=1) + "\n")
    parts = [
        "# Crawl benchmark\n",
        "Written by `python -m tests.benchmarks.bench_crawl --write` (see its docstring for how"
        " CPU, memory and pages are counted). Medians of interleaved runs; raw runs in"
        " [crawl.json](crawl.json).\n",
        f"Machine: {meta['cpus']} cores ({meta['cpu_model']}), Python {meta['python']},"
        f" {meta['wget']}; commit {meta['commit']}; run at {meta['date']}, load average"
        f" before: {meta['load_before']}, after: {meta['load_after']}.\n",
        f"Page cache: {CACHE[0].label if CACHE[0] else 'untouched'}.\n",
        f"Libraries: {libraries_text(cast(Mapping[str, str], meta['libraries']))}.\n",
    ]
    for title, runs in sections.items():
        parts.append(_markdown(title, summarize(runs)))
    parts.append(_targets(sections))
    (DOCS / "crawl.md").write_text("\n".join(parts))


def _targets(sections: dict[str, list[Run]]) -> str:
    """The honest-benchmark targets, checked against this run's medians: the crawler at its
    default flags against wget --warc-file in the same rounds (CPU and RSS summed over the
    crawler's processes)."""
    lines = ["### Targets (default flags, against wget --warc-file in the same rounds)", ""]
    for runs in sections.values():
        summaries = {s.tool: s for s in summarize(runs)}
        wget = summaries.get("wget --warc-file")
        for want, mode in ((2.0, "asyncio"), (3.0, "processes")):
            s = summaries.get(f"fetchlab ({mode}, WARC, default flags)")
            if s is None or wget is None:
                continue
            ratio = s.rate / wget.rate
            lines += [
                f"- {mode}: {ratio:.2f}x wget (target >= {want:.1f}x:"
                f" {'met' if ratio >= want else 'NOT met'})",
                f"- {mode}: {s.cpu_ms:.2f} CPU ms/page (target <= 1.0:"
                f" {'met' if s.cpu_ms <= 1.0 else 'NOT met'})",
                f"- {mode}: {s.rss_mb:.0f} MB peak RSS summed (target <= 150:"
                f" {'met' if s.rss_mb <= 150 else 'NOT met'})",
            ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", default=os.environ.get("FETCHLAB_SLOW") == "1"
    )
    parser.add_argument("--scrapy", action="store_true", help="also run Scrapy (installs it)")
    parser.add_argument(
        "--scrapy-runs", type=int, default=1, help="Scrapy runs (the first rounds; it is slow)"
    )
    parser.add_argument("--section", choices=["crawl", "list", "all"], default="all")
    parser.add_argument("--levels", default="10,100,1000", help="list concurrencies")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per tool")
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks/crawl.*")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="also run the crawler from this checkout (e.g. a git worktree of an older commit),"
        " interleaved with this one: before/after in one run",
    )
    parser.add_argument("--modes", default="asyncio", help="crawler modes of the crawl section")
    parser.add_argument(
        "--flags",
        default=None,
        help="only these crawler flags in the crawl section ('' for its defaults); by default"
        " the defaults first, then '" + " ".join(TUNED) + "', labelled",
    )
    args = parser.parse_args()
    pages, urls = (20_000, 2_000) if args.full else (2_000, 500)
    levels = [int(x) for x in args.levels.split(",")]
    console = Console()
    meta = _machine()
    sections: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="fetchlab-bench-") as tmp:
        work = Path(tmp)
        if args.section in ("crawl", "all"):
            title = f"Follow crawl of the {pages:,}-page site (robots + WARC), nginx"
            scrapy_runs = min(args.scrapy_runs, args.runs) if args.scrapy else 0
            modes = tuple(m.strip() for m in args.modes.split(","))
            variants = ((), TUNED) if args.flags is None else (tuple(args.flags.split()),)
            sections[title] = crawl_section(
                work, pages, args.runs, scrapy_runs, args.baseline, modes, variants
            )
        if args.section in ("list", "all"):
            title = f"{urls:,} URLs at 100 ms latency (list mode, no robots)"
            sections[title] = list_section(work, urls, levels, args.runs)
    meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    for title, runs in sections.items():
        console.print(summary_table(title, COLUMNS, [s.row for s in summarize(runs)]))
    console.print(f"load average before {meta['load_before']}, after {meta['load_after']}")
    if CACHE[0] is not None:
        console.print(f"page cache: {CACHE[0].label}")
    libs = cast(Mapping[str, str], meta["libraries"])
    console.print(f"commit {meta['commit']}; {versions_line(str(meta['cpu_model']), libs)}")
    if args.write:
        write_docs(meta, sections)
        console.print(f"written: {DOCS / 'crawl.md'}, {DOCS / 'crawl.json'}")


if __name__ == "__main__":
    main()
