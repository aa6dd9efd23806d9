"""What each bench section runs (its cells at quick or full size) and the servers it needs.

Sections:

- ``http``: N requests to the nginx latency ports (0 / 100 / 300 ms) with C workers per mode;
  the full size includes the classic table's shape (100 requests at 300 ms, 1-50 threads).
- ``mem``: peak RSS while holding C connections open at 100 ms latency (threads up to 1,000;
  greenlets and coroutines up to 5,000 at full size).
- ``parse``: ``parse_page`` over the test-bed HTML, inline vs 2 threads vs 2 processes (the
  per-pixel experiment's shape).
- ``sleep``: sleep-bound tasks: processes vs threads vs coroutines vs greenlets vs sequential.
- ``crawl``: the real job, a follow crawl of the generated site into WARC, in every mode
  (asyncio with its parse pool and with parsing inline, threads, gevent, processes, sequential).
- ``mail``: the real mail job, ``mailsync backup`` of a whole multi-folder account in every mode,
  direct and through the delay proxy.
- ``imap``: mails fetched one ``FETCH n (RFC822)`` at a time, sequential vs 10 connections in
  threads (and greenlets), direct and through the delay proxy.

Servers (nginx site with latency ports, Dovecot with a loaded corpus, delay proxies) start in the
bench's own process, once, before any cell runs; the cells' children are clients only, so their
CPU and memory figures are the client's alone.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from fetchlab.bench.grid import Cell

__all__ = ["FULL", "QUICK", "SECTIONS", "BenchServers", "Size", "build_cells"]

SECTIONS = ("http", "mem", "parse", "sleep", "imap", "crawl", "mail")


@dataclass(frozen=True)
class Size:
    name: str
    repeats: int
    cell_timeout: float
    http_latencies: tuple[int, ...]
    http_concurrency: tuple[int, ...]
    http_requests: int  # per cell at a latency above 0
    http_requests_0: int  # per cell at 0 ms (more, or the run is over before it is measured)
    http_modes: tuple[str, ...]
    mem_threads: tuple[int, ...]
    mem_async: tuple[int, ...]
    parse_pages: int
    parse_repeat: int
    sleep_tasks: int
    sleep_seconds: float
    imap_count: int
    imap_threads: int
    imap_delay_ms: int
    crawl_pages: int
    crawl_concurrency: tuple[int, ...]
    mail_count: int


QUICK = Size(
    name="quick",
    repeats=3,
    cell_timeout=60.0,
    http_latencies=(0, 100),
    http_concurrency=(1, 5, 20, 50),
    http_requests=30,
    http_requests_0=400,
    http_modes=("sequential", "threads", "gevent", "asyncio"),
    mem_threads=(200,),
    mem_async=(200, 1000),
    parse_pages=200,
    parse_repeat=10,
    sleep_tasks=10,
    sleep_seconds=0.2,
    imap_count=40,
    imap_threads=10,
    imap_delay_ms=25,
    crawl_pages=1000,
    crawl_concurrency=(16,),
    mail_count=300,
)

FULL = Size(
    name="full",
    repeats=3,
    cell_timeout=300.0,
    http_latencies=(0, 100, 300),
    http_concurrency=(1, 2, 5, 10, 20, 50, 100, 200),
    http_requests=100,
    http_requests_0=2000,
    http_modes=("sequential", "threads", "gevent", "asyncio", "processes"),
    mem_threads=(100, 1000),
    mem_async=(100, 1000, 5000),
    parse_pages=200,
    parse_repeat=50,
    sleep_tasks=10,
    sleep_seconds=1.0,
    imap_count=100,
    imap_threads=10,
    imap_delay_ms=100,
    crawl_pages=2000,
    crawl_concurrency=(8, 32),
    mail_count=2000,
)


class BenchServers:
    """Starts the servers a run needs, once, and stops every one of them (by PID) on exit."""

    def __init__(self, workdir: Path, latencies: Sequence[int]) -> None:
        self.workdir = workdir
        self._latencies = tuple(sorted({ms for ms in latencies if ms > 0}))
        self._stack = contextlib.ExitStack()
        self._site: tuple[Any, Any] | None = None
        self._imap: dict[str, Any] | None = None
        self._crawl_sites: dict[int, tuple[Any, Any]] = {}

    def __enter__(self) -> BenchServers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def site(self) -> tuple[Any, Any]:
        """(SiteInfo, SiteServer): the generated 200-page site on nginx with latency ports."""
        if self._site is None:
            from testbed.site import serve_generated_site

            info, server = serve_generated_site(
                self.workdir / "site", 200, 1, self._latencies or (100,), "auto"
            )
            self._stack.callback(server.stop)
            self._site = (info, server)
        return self._site

    def crawl_site(self, pages: int) -> tuple[Any, Any]:
        """A site of ``pages`` pages for the crawl section (the 200-page one when it matches)."""
        if pages == 200:
            return self.site()
        if pages not in self._crawl_sites:
            from testbed.site import serve_generated_site

            info, server = serve_generated_site(self.workdir / "site", pages, 1, (100,), "auto")
            self._stack.callback(server.stop)
            self._crawl_sites[pages] = (info, server)
        return self._crawl_sites[pages]

    def imap(self, count: int, delay_ms: int) -> dict[str, Any]:
        """Connection data of a Dovecot account holding ``count`` messages in INBOX, plus the
        port of a delay proxy (``delay_ms`` each way) in front of it."""
        if self._imap is None:
            from testbed.corpus import generate_corpus
            from testbed.dovecot import start_dovecot
            from testbed.imap_load import load_corpus
            from testbed.proxy import start_proxy

            # not under a 0700 temp parent: Dovecot's unprivileged mail user must reach it
            home = Path(tempfile.mkdtemp(prefix="fetchlab-bench-dovecot-"))
            self._stack.callback(shutil.rmtree, home, True)
            server = start_dovecot(home, users={"bench": "secret"})
            self._stack.callback(server.stop)
            corpus = generate_corpus(
                messages=count, seed=1, folders=("INBOX",), max_bytes=count * 30_000
            )
            load_corpus(server, "bench", corpus)
            proxy = start_proxy(
                (server.host, server.port), delay_ms=delay_ms, workdir=self.workdir / "proxy"
            )
            self._stack.callback(proxy.stop)
            self._imap = {
                "host": server.host,
                "port": server.port,
                "proxy_port": proxy.port,
                "user": "bench",
                "password": "secret",
                "folder": "INBOX",
                "server": server,
            }
        return self._imap

    def mail_account(self, count: int, imap_count: int, delay_ms: int) -> dict[str, Any]:
        """A second account ("backup") holding a ``count``-message corpus over every corpus
        folder (odd names included), on the same Dovecot and proxy as :meth:`imap`."""
        conn = self.imap(imap_count, delay_ms)
        if "backup_user" not in conn:
            from testbed.corpus import generate_corpus
            from testbed.imap_load import load_corpus

            conn["server"].add_user("backup", "secret")
            corpus = generate_corpus(messages=count, seed=3, max_bytes=count * 40_000)
            load_corpus(conn["server"], "backup", corpus)
            conn["backup_user"] = "backup"
        return conn


def _urls(servers: BenchServers, latency: int, n: int) -> list[str]:
    info, server = servers.site()
    base = server.base_url if latency == 0 else server.latency_url(latency)
    paths = info.page_paths
    return [base + paths[i % len(paths)] for i in range(n)]


def _http(servers: BenchServers, size: Size) -> list[Cell]:
    cells = []
    for latency in size.http_latencies:
        n = size.http_requests_0 if latency == 0 else size.http_requests
        spec = {"exp": "http", "urls": _urls(servers, latency, n), "timeout": 60.0}
        for mode in size.http_modes:
            for conc in size.http_concurrency:
                if (mode == "sequential") != (conc == 1):
                    continue  # sequential is the c=1 baseline; the others from c=2 on...
                if mode == "processes" and conc < 2:
                    continue
                cells.append(Cell("http", mode, conc, latency, spec=spec))
            if mode == "threads":  # ...except threads, whose 1-thread row is the classic one
                cells.append(Cell("http", "threads", 1, latency, spec=spec))
    return cells


def _mem(servers: BenchServers, size: Size) -> list[Cell]:
    cells = []
    for mode, levels in (
        ("threads", size.mem_threads),
        ("gevent", size.mem_async),
        ("asyncio", size.mem_async),
    ):
        for conc in levels:
            spec = {"exp": "http", "urls": _urls(servers, 100, conc), "timeout": 120.0}
            cells.append(Cell("mem", mode, conc, 100, spec=spec))
    return cells


def _parse(servers: BenchServers, size: Size) -> list[Cell]:
    info, _ = servers.site()
    spec = {
        "exp": "parse",
        "docroot": str(info.docroot),
        "paths": list(info.page_paths[: size.parse_pages]),
        "origin": info.origin,
        "repeat": size.parse_repeat,
        "batch": 16,
    }
    return [
        Cell("parse", "inline", 1, spec=spec),
        Cell("parse", "threads", 2, spec=spec),
        Cell("parse", "processes", 2, spec=spec),
    ]


def _sleep(size: Size) -> list[Cell]:
    spec = {"exp": "sleep", "tasks": size.sleep_tasks, "seconds": size.sleep_seconds}
    tasks = size.sleep_tasks
    return [
        Cell("sleep", "processes", tasks, spec=spec),
        Cell("sleep", "threads", tasks, spec=spec),
        Cell("sleep", "asyncio", tasks, spec=spec),
        Cell("sleep", "gevent", tasks, spec=spec),
        Cell("sleep", "sequential", 1, spec=spec),
    ]


def _imap(servers: BenchServers, size: Size) -> list[Cell]:
    conn = servers.imap(size.imap_count, size.imap_delay_ms)
    cells = []
    for variant, port, latency in (
        ("direct", conn["port"], 0),
        ("proxy", conn["proxy_port"], size.imap_delay_ms),
    ):
        spec = {
            "exp": "imap",
            "host": conn["host"],
            "port": port,
            "user": conn["user"],
            "password": conn["password"],
            "folder": conn["folder"],
            "count": size.imap_count,
        }
        cells.append(Cell("imap", "sequential", 1, latency, variant, spec=spec))
        cells.append(Cell("imap", "threads", size.imap_threads, latency, variant, spec=spec))
        cells.append(Cell("imap", "gevent", size.imap_threads, latency, variant, spec=spec))
    return cells


def _crawl(servers: BenchServers, size: Size) -> list[Cell]:
    _, server = servers.crawl_site(size.crawl_pages)
    spec = {
        "exp": "crawl",
        "start_url": server.base_url + "/",
        "workdir": str(servers.workdir / "crawls"),
        "processes": 2,
    }
    cells = []
    for conc in size.crawl_concurrency:
        cells += [
            Cell("crawl", "asyncio", conc, spec=spec),
            Cell("crawl", "asyncio", conc, 0, "inline", spec={**spec, "variant": "inline"}),
            Cell("crawl", "processes", conc, spec=spec),
            Cell("crawl", "threads", conc, spec=spec),
            Cell("crawl", "gevent", conc, spec=spec),
        ]
    cells.append(Cell("crawl", "sequential", 1, spec=spec))
    return cells


def _mail(servers: BenchServers, size: Size) -> list[Cell]:
    conn = servers.mail_account(size.mail_count, size.imap_count, size.imap_delay_ms)
    cells = []
    for variant, port, latency in (
        ("direct", conn["port"], 0),
        ("proxy", conn["proxy_port"], size.imap_delay_ms),
    ):
        spec = {
            "exp": "mail",
            "host": conn["host"],
            "port": port,
            "user": conn["backup_user"],
            "password": conn["password"],
            "workdir": str(servers.workdir / "mail"),
        }
        for mode in ("asyncio", "threads", "gevent", "processes"):
            cells.append(Cell("mail", mode, 4, latency, variant, spec=spec))
        cells.append(Cell("mail", "sequential", 1, latency, variant, spec=spec))
    return cells


def build_cells(sections: Sequence[str], size: Size, servers: BenchServers) -> list[Cell]:
    """Every cell of ``sections`` at ``size`` (servers start on first need)."""
    builders: Mapping[str, Any] = {
        "http": lambda: _http(servers, size),
        "mem": lambda: _mem(servers, size),
        "parse": lambda: _parse(servers, size),
        "sleep": lambda: _sleep(size),
        "imap": lambda: _imap(servers, size),
        "crawl": lambda: _crawl(servers, size),
        "mail": lambda: _mail(servers, size),
    }
    cells: list[Cell] = []
    for name in sections:
        if name not in builders:
            raise ValueError(f"unknown section {name!r}: choose from {', '.join(SECTIONS)}")
        cells += builders[name]()
    return cells
