"""Helpers of the distributed-crawl tests: a counting site server, worker processes, checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from crawler.core.urls import canonicalize
from crawler.pages import iter_pages
from crawler.warc import warc_files
from testbed._proc import LOOPBACK, ManagedProcess, free_port
from testbed.site import generate_site, site_dir
from testbed.webserver import CONCURRENCY_PATH, start_aiohttp_server
from tests.integration.crawl_support import ROOT

__all__ = [
    "CountingSite",
    "Worker",
    "check_merged",
    "counting_site",
    "new_job",
    "seed",
    "start_worker",
    "worker_env",
]


@dataclass
class CountingSite:
    """A generated site on the aiohttp server, which counts requests in flight per host."""

    origin: str
    truth: frozenset[str]
    pages: int
    process: ManagedProcess

    @property
    def start_url(self) -> str:
        return self.origin + "/"

    def concurrency(self) -> dict[str, dict[str, int]]:
        with urllib.request.urlopen(self.origin + CONCURRENCY_PATH, timeout=10) as resp:
            data: dict[str, dict[str, int]] = json.loads(resp.read())
        return data


@contextmanager
def counting_site(
    workdir: Path, pages: int, *, delay_ms: int = 20, bind: str = LOOPBACK, seed_no: int = 3
) -> Iterator[CountingSite]:
    port = free_port()
    origin = f"http://{bind}:{port}"
    info = generate_site(
        site_dir(workdir, pages, seed_no), pages=pages, seed=seed_no, origin=origin
    )
    proc = start_aiohttp_server(
        info.docroot,
        port=port,
        latency_ports={},
        workdir=workdir / "server",
        bind=bind,
        plain_delay_ms=delay_ms,
    )
    try:
        yield CountingSite(origin, info.truth_obey_robots, pages, proc)
    finally:
        proc.stop()


def new_job() -> str:
    return f"j{uuid.uuid4().hex[:10]}"


def worker_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FETCHLAB_SETTINGS", None)
    return env


def seed(redis_url: str, job: str, start_url: str, *extra: str) -> None:
    """``crawler crawl --follow --seed-only``: the job's arguments and its seed."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "fetchlab.crawl_cli", "crawl", start_url, "--follow"),
            *("--seed-only", "--frontier", redis_url, "--job", job, *extra),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=worker_env(),
    )
    assert done.returncode == 0, done.stderr


@dataclass
class Worker:
    out: Path
    popen: subprocess.Popen[bytes]
    argv: list[str]
    prefix: list[str]

    def kill(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def restart(self) -> Worker:
        return start_worker(self.out, self.argv, prefix=self.prefix)

    def log(self) -> str:
        return (self.out.parent / f"{self.out.name}.log").read_text("utf-8", "replace")[-3000:]


def start_worker(out: Path, argv: Sequence[str], *, prefix: Sequence[str] = ()) -> Worker:
    """``crawler worker ... --out OUT`` as its own OS process (``prefix``: ``ip netns exec``)."""
    full = [*prefix, sys.executable, "-m", "fetchlab.crawl_cli", "worker", "--out", str(out)]
    log = open(out.parent / f"{out.name}.log", "ab")  # noqa: SIM115 (the child holds it)
    try:
        popen = subprocess.Popen(
            [*full, "--no-progress", *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=worker_env(),
        )
    finally:
        log.close()
    return Worker(out, popen, list(argv), list(prefix))


def stop_all(workers: Sequence[Worker]) -> None:
    for w in workers:
        if w.popen.poll() is None:
            w.popen.kill()
            w.popen.wait(timeout=30)


@dataclass
class Merged:
    responses: Counter[str]
    pages: int
    robots: Counter[str]  # robots.txt URI -> response records over every worker's WARC files


def check_merged(merged: Path, truth: frozenset[str]) -> Merged:
    """The merged archive: every WARC reads to its end with digests checked, no URL has two
    response records, and the archived URLs are exactly ``truth``."""
    responses: Counter[str] = Counter()
    robots: Counter[str] = Counter()
    for path in warc_files(merged):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh, check_digests="raise"):
                rec.raw_stream.read()
                uri = rec.rec_headers.get_header("WARC-Target-URI")
                if rec.rec_type not in ("response", "revisit"):
                    continue
                (robots if uri.endswith("/robots.txt") else responses)[uri] += 1
    twice = {u: n for u, n in responses.items() if n > 1}
    assert not twice, f"URLs with two response records: {sorted(twice)[:10]}"
    rows = list(iter_pages(merged / "pages.jsonl"))
    archived = {canonicalize(r["url"]) for r in rows if r["status"] is not None}
    assert archived == truth, (sorted(truth - archived)[:10], sorted(archived - truth)[:10])
    return Merged(responses, len(rows), robots)


def wait_all(workers: Sequence[Worker], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for w in workers:
        codes.append(w.wait(max(1.0, deadline - time.monotonic())))
    return codes
