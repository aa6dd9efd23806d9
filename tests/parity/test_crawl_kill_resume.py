"""A crawl SIGKILLed mid-run in one mode is finished by another: every URL archived exactly once,
valid WARC records, nothing lost (list mode over the site's 100 ms latency port, so the kill
lands while requests are in flight)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from crawler.cdxj import build_index
from crawler.frontier_sqlite import SqliteFrontier
from crawler.settings import CrawlerSettings
from crawler.warc import warc_files
from drivers.dispatch import run_crawl
from foundation.frozen import build
from foundation.mode import Mode
from tests.fixtures.web import WebSite
from tests.integration.crawl_support import check_archive, pages

ROOT = Path(__file__).resolve().parents[2]


def start_child(mode: str, out: Path, urls_file: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.parity._crawl_child", str(out), mode, "4", str(urls_file)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        start_new_session=True,  # its group holds the gevent child / worker processes too
    )


def wait_rows(proc: subprocess.Popen[bytes], out: Path, n: int) -> None:
    deadline = time.monotonic() + 60
    while _count_rows(out) < n and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the first crawl ended before it could be stopped"


def latency_urls(site: WebSite, tmp_path: Path, n: int = 120) -> tuple[list[str], Path]:
    base = site.server.latency_url(100)
    urls = sorted({base + p for p in site.info.page_paths})[:n]
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("\n".join(urls) + "\n", "utf-8")
    return urls, urls_file


def finish_in(mode: str, out: Path) -> Any:
    settings = build(
        CrawlerSettings,
        {"out": out, "mode": mode, "concurrency": 8, "per_host": 8, "parse_workers": 0},
    )
    frontier = SqliteFrontier(out / "state.sqlite")
    try:
        result = run_crawl(settings, frontier)
        counts = frontier.counts()  # what the caller's frontier object says after the run
    finally:
        frontier.close()
    with SqliteFrontier(out / "state.sqlite") as fresh:
        stored = fresh.counts()  # what the state database holds
    assert stored.done == len(pages(out)) and stored.queued == stored.leased == 0, stored
    build_index(out, warc_files(out))
    return result, counts


def _count_rows(out: Path) -> int:
    path = out / "pages.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


# each mode is killed once and resumes the next one's crawl
_ORDER = list(Mode)
NEXT = {m: _ORDER[(i + 1) % len(_ORDER)] for i, m in enumerate(_ORDER)}


@pytest.mark.needs_nginx
def test_sigkill_then_resume_in_another_mode(mode: Mode, web_site: WebSite, tmp_path: Path) -> None:
    first, second = mode.value, NEXT[mode].value
    # processes mode commits in batches: wait for more rows so the kill lands mid-crawl
    kill_after = 100 if mode is Mode.PROCESSES else 20
    urls, urls_file = latency_urls(web_site, tmp_path)
    out = tmp_path / "out"
    proc = start_child(first, out, urls_file)
    try:
        wait_rows(proc, out, kill_after)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    done_before = _count_rows(out)
    assert kill_after <= done_before < len(urls)

    result, counts = finish_in(second, out)
    rows = pages(out)
    assert sorted(r["url"] for r in rows) == urls, "every URL exactly once"
    assert all(r["status"] == 200 and r["error_class"] is None for r in rows)
    assert counts.done == len(urls) and counts.queued == counts.leased == 0
    check = check_archive(out)  # digests, request/response pairs, index
    assert set(check.responses) == set(urls) and max(check.responses.values()) == 1
    assert result.stats.done + result.stats.skipped >= len(urls) - done_before


@pytest.mark.needs_nginx
def test_ctrl_c_stops_gracefully_then_resumes(
    mode: Mode, web_site: WebSite, tmp_path: Path
) -> None:
    urls, urls_file = latency_urls(web_site, tmp_path, 80)
    out = tmp_path / "out"
    proc = start_child(mode.value, out, urls_file)
    try:
        wait_rows(proc, out, 10)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does to the job
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert code == 130
    stopped_at = _count_rows(out)
    assert 10 <= stopped_at < len(urls)
    frontier = SqliteFrontier(out / "state.sqlite")
    try:
        counts = frontier.counts()
    finally:
        frontier.close()
    # a graceful stop commits what finished and releases the rest: nothing is left leased
    assert counts.done == stopped_at and counts.leased == 0
    _, counts = finish_in("asyncio", out)
    assert sorted(r["url"] for r in pages(out)) == urls
    assert counts.done == len(urls)
    assert max(check_archive(out).responses.values()) == 1
