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

import pytest

from crawler.cdxj import build_index
from crawler.frontier_sqlite import SqliteFrontier
from crawler.settings import CrawlerSettings
from crawler.warc import warc_files
from modes.dispatch import run_crawl
from tests.fixtures.web import WebSite
from tests.integration.crawl_support import check_archive, pages

ROOT = Path(__file__).resolve().parents[2]


def _count_rows(out: Path) -> int:
    path = out / "pages.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.needs_nginx
@pytest.mark.parametrize(
    ("first", "second"),
    [("threads", "asyncio"), ("gevent", "sequential"), ("processes", "threads")],
)
def test_sigkill_then_resume_in_another_mode(
    first: str, second: str, web_site: WebSite, tmp_path: Path
) -> None:
    base = web_site.server.latency_url(100)
    urls = sorted({base + p for p in web_site.info.page_paths})[:120]
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("\n".join(urls) + "\n", "utf-8")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.parity._crawl_child", str(out), first, "4", str(urls_file)],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its group holds the gevent child / worker processes too
    )
    try:
        deadline = time.monotonic() + 60
        while _count_rows(out) < 20 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the first crawl ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    done_before = _count_rows(out)
    assert 20 <= done_before < len(urls)

    settings = CrawlerSettings.model_validate(
        {"out": out, "mode": second, "concurrency": 8, "per_host": 8, "parse_workers": 0}
    )
    frontier = SqliteFrontier(out / "state.sqlite")
    try:
        result = run_crawl(settings, frontier)
        counts = frontier.counts()
    finally:
        frontier.close()
    build_index(out, warc_files(out))
    rows = pages(out)
    assert sorted(r["url"] for r in rows) == urls, "every URL exactly once"
    assert all(r["status"] == 200 and r["error_class"] is None for r in rows)
    assert counts.done == len(urls) and counts.queued == counts.leased == 0
    check = check_archive(out)  # digests, request/response pairs, index
    assert set(check.responses) == set(urls) and max(check.responses.values()) == 1
    assert result.stats.done + result.stats.skipped >= len(urls) - done_before
