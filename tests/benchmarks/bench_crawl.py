"""Crawl benchmark (a script, not a test): ``python -m tests.benchmarks.bench_crawl [--full]``.

Section 1: a full follow crawl (robots + WARC) of the generated site on nginx, reporting pages/s,
CPU ms per page (the crawler and its parser processes, nginx excluded) and peak RSS (the whole
process tree), side by side with wget ``--warc-file`` (when installed) and Scrapy (only with
``--scrapy``: it is installed into a throwaway venv). Section 2: a URL list against the 100 ms
latency port at several concurrencies.

Quick size by default (2,000 pages, 500 URLs); ``--full`` (or FETCHLAB_SLOW=1) runs the sizes
of the targets (20,000 pages, 2,000 URLs) -- on a quiet machine only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from rich.console import Console

from modes.progress import summary_table
from testbed.site import serve_generated_site

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Run:
    tool: str
    pages: int
    wall: float
    cpu: float
    peak_rss: int

    @property
    def row(self) -> list[object]:
        return [
            self.tool,
            self.pages,
            f"{self.wall:.2f}",
            f"{self.pages / self.wall:.0f}",
            f"{self.cpu * 1000 / max(1, self.pages):.2f}",
            f"{self.peak_rss / 1e6:.0f}",
        ]


def measure(tool: str, argv: list[str], count: object, cwd: Path | None = None) -> Run:
    """Run ``argv``; sample RSS and CPU of its whole process tree.

    CPU: the larger of the tree's sampled per-process CPU times (pool workers are grandchildren
    reaped by the forkserver, so rusage alone misses them) and the child rusage.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = os.times()
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env
    )
    peak = 0
    cpu_seen: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.05):
            try:
                top = psutil.Process(proc.pid)
                tree = [top, *top.children(recursive=True)]
            except psutil.Error:
                continue
            rss = 0
            for p in tree:
                try:
                    with p.oneshot():
                        rss += p.memory_info().rss
                        t = p.cpu_times()
                        cpu_seen[p.pid] = t.user + t.system
                except psutil.Error:
                    continue
            peak = max(peak, rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate(timeout=3600)
    wall = time.monotonic() - started
    stop.set()
    sampler.join()
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    cpu = max(cpu, sum(cpu_seen.values()))
    if proc.returncode not in (0, 1, 8):  # wget: 8 = some 404s, expected on this site
        raise SystemExit(f"{tool} failed ({proc.returncode}): {err.decode()[-2000:]}")
    pages = count() if callable(count) else int(str(count))
    return Run(tool, int(pages), wall, cpu, peak)


def _lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def crawl_section(work: Path, pages: int, scrapy: bool) -> list[Run]:
    info, server = serve_generated_site(work / "site", pages, 1, (100,), "nginx")
    runs = []
    try:
        out = work / "fetchlab"
        runs.append(
            measure(
                "fetchlab (asyncio, WARC)",
                [
                    sys.executable,
                    "-m",
                    "crawler.cli",
                    "crawl",
                    server.base_url + "/",
                    "--follow",
                    "--out",
                    str(out),
                    "--per-host",
                    "64",
                    "--concurrency",
                    "64",
                    "--no-progress",
                ],
                lambda: _lines(out / "pages.jsonl"),
            )
        )
        if shutil.which("wget"):
            wdir = work / "wget"
            wdir.mkdir()
            runs.append(
                measure(
                    "wget --warc-file",
                    [
                        "wget",
                        "-r",
                        "-l",
                        "inf",
                        "-q",
                        "--warc-file=site",
                        "--delete-after",
                        "--no-host-directories",
                        server.base_url + "/",
                    ],
                    lambda: len(info.truth_obey_robots),
                    cwd=wdir,
                )
            )
        if scrapy:
            runs.append(_scrapy(work, server.base_url, len(info.truth_obey_robots)))
    finally:
        server.stop()
    return runs


def _scrapy(work: Path, base: str, expected: int) -> Run:
    venv = work / "scrapy-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "scrapy"], check=True)
    spider = work / "spider.py"
    spider.write_text(
        "import scrapy\nfrom scrapy.linkextractors import LinkExtractor\n"
        "class S(scrapy.Spider):\n    name='s'\n"
        f"    start_urls=['{base}/']\n    allowed_domains=['127.0.0.1']\n"
        "    custom_settings={'ROBOTSTXT_OBEY': True, 'CONCURRENT_REQUESTS': 64,"
        " 'CONCURRENT_REQUESTS_PER_DOMAIN': 64, 'LOG_LEVEL': 'ERROR'}\n"
        "    def parse(self, response):\n"
        "        if not hasattr(response, 'text'): return\n"
        "        for link in LinkExtractor().extract_links(response):\n"
        "            yield response.follow(link, self.parse)\n"
    )
    return measure(
        "scrapy (no WARC)", [str(venv / "bin/scrapy"), "runspider", str(spider)], expected
    )


def list_section(work: Path, urls: int, levels: list[int]) -> list[Run]:
    info, server = serve_generated_site(work / "site-l", 200, 1, (100,), "nginx")
    runs = []
    try:
        origin = server.latency_url(100)
        paths = [p for p in info.page_paths][:200]
        lines = [f"{origin}{paths[i % len(paths)]}?n={i}" for i in range(urls)]
        listing = work / "urls.txt"
        listing.write_text("\n".join(lines) + "\n")
        for c in levels:
            out = work / f"list-{c}"
            runs.append(
                measure(
                    f"fetchlab list, concurrency {c}",
                    [
                        sys.executable,
                        "-m",
                        "crawler.cli",
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
                    ],
                    lambda out=out: _lines(out / "pages.jsonl"),
                )
            )
    finally:
        server.stop()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", default=os.environ.get("FETCHLAB_SLOW") == "1"
    )
    parser.add_argument("--scrapy", action="store_true", help="also run Scrapy (installs it)")
    parser.add_argument("--section", choices=["crawl", "list", "all"], default="all")
    parser.add_argument("--levels", default="10,100,1000", help="list concurrencies")
    args = parser.parse_args()
    pages, urls = (20_000, 2_000) if args.full else (2_000, 500)
    levels = [int(x) for x in args.levels.split(",")]
    console = Console()
    with tempfile.TemporaryDirectory(prefix="fetchlab-bench-") as tmp:
        work = Path(tmp)
        cols = ["tool", "pages", "wall s", "pages/s", "CPU ms/page", "peak RSS MB"]
        if args.section in ("crawl", "all"):
            runs = crawl_section(work, pages, args.scrapy)
            console.print(
                summary_table(f"follow crawl, {pages} pages", cols, [r.row for r in runs])
            )
        if args.section in ("list", "all"):
            runs = list_section(work, urls, levels)
            console.print(summary_table(f"{urls} URLs at 100 ms", cols, [r.row for r in runs]))


if __name__ == "__main__":
    main()
