"""List mode end to end against the real fault server: WARC, pages.jsonl, CDXJ, exit codes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from crawler.core.urls import exact_url
from foundation.mode import Mode
from testbed.faults import FaultServer
from tests.fixtures.web import WebSite
from tests.integration.crawl_support import (
    archived_urls,
    check_archive,
    crawl,
    crawler_cmd,
    pages,
)


def test_list_from_file_with_bad_lines(fault_server: FaultServer, tmp_path: Path) -> None:
    f = tmp_path / "urls.txt"
    good = [fault_server.url("/ok"), fault_server.url("/page/1"), fault_server.url("/page/2#frag")]
    f.write_text(
        "# a comment\n\n"
        f"{good[0]}\n"
        "not a url at all\n"
        f"  {good[1]}  \n"
        "mailto:someone@example.org\n"
        f"{good[2]}\n"
        "ftp://example.org/file\n"
    )
    r = crawler_cmd("crawl", "-i", str(f), "--out", str(tmp_path / "out"), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert f"{f}:4" in r.stderr and f"{f}:6" in r.stderr and f"{f}:8" in r.stderr
    assert "3 invalid URL line(s) skipped" in r.stderr
    out = tmp_path / "out"
    # fragments dropped: /page/2#frag is archived as /page/2
    assert archived_urls(out) == {good[0], good[1], fault_server.url("/page/2")}
    check = check_archive(out)
    assert check.pairs == 3 and set(check.responses.values()) == {1}
    row = next(r for r in pages(out) if r["url"] == good[0])
    assert row["status"] == 200 and row["title"] == "ok" and row["n_links"] >= 1
    assert row["content_type"].startswith("text/html") and row["bytes"] > 0
    assert row["sha1"].startswith("sha1:") and row["elapsed_ms"] >= 0 and row["depth"] == 0
    assert row["error_class"] is None and row["fetched_at"].endswith("Z")
    stats = crawler_cmd("stats", str(out))
    assert stats.returncode == 0 and "pages" in stats.stdout and "3" in stats.stdout


def test_stdin_and_failures_exit_1(fault_server: FaultServer, tmp_path: Path) -> None:
    urls = [
        fault_server.url("/ok"),
        fault_server.url("/status/404"),
        fault_server.url("/private/page"),
    ]
    out = tmp_path / "out"
    r = crawler_cmd("crawl", "-i", "-", "--out", str(out), "--no-progress", stdin="\n".join(urls))
    assert r.returncode == 1, r.stderr
    assert "failed URLs" in r.stderr and "/status/404" in r.stderr
    by_url = {row["url"]: row for row in pages(out)}
    assert by_url[urls[1]]["status"] == 404
    assert by_url[urls[1]]["error_class"] == "HTTPStatusError"
    assert by_url[urls[2]]["error_class"] == "RobotsDisallowed"
    assert by_url[urls[2]]["status"] is None
    check_archive(out)


def test_usage_errors_exit_2(fault_server: FaultServer, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = crawler_cmd("crawl", fault_server.url("/ok"), "--out", str(blocker / "out"))
    assert r.returncode == 2 and "not writable" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[crawler]\nconcurrency = 0\nper_hots = 1\n")
    r = crawler_cmd(
        "crawl", fault_server.url("/ok"), "--out", str(tmp_path / "o"), "--settings", str(bad)
    )
    assert r.returncode == 2
    assert "crawler.concurrency" in r.stderr and "crawler.per_hots" in r.stderr
    r = crawler_cmd("crawl", "ftp://example.org/x", "--out", str(tmp_path / "o2"))
    assert r.returncode == 2 and "unsupported scheme" in r.stderr.lower()
    # (no --out: `out` comes from the settings layers, default ./crawl-out: see
    # test_crawl_cli_hardening.py)
    assert not (tmp_path / "o2").exists(), "a usage error leaves nothing behind"
    r = crawler_cmd(
        "crawl", fault_server.url("/ok"), "--out", str(tmp_path / "o3"), "--concurrency", "-5"
    )
    assert r.returncode == 2 and "concurrency" in r.stderr
    r = crawler_cmd("crawl", "--resume", str(tmp_path))
    assert r.returncode == 2 and "no crawl to resume" in r.stderr
    r = crawler_cmd("crawl", fault_server.url("/ok"), "--out", str(tmp_path / "o4"), "--allow", "(")
    assert r.returncode == 2 and "pattern" in r.stderr
    r = crawler_cmd("crawl", fault_server.url("/ok"), "--out", str(tmp_path / "o5"), "--mode", "x")
    assert r.returncode == 2


def test_rerun_resumes_without_refetching(
    mode: Mode, fault_server: FaultServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    urls = [fault_server.url(f"/page/{i}") for i in range(5)]
    assert crawl(out, *urls[:3], mode=mode.value) == 0
    # same folder: the three done ones are not fetched again
    assert crawl(out, *urls, mode=mode.value) == 0
    rows = pages(out)
    assert sorted(r["url"] for r in rows) == sorted(urls)
    assert check_archive(out).responses.total() == 5
    r = crawler_cmd("crawl", "--resume", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert len(pages(out)) == 5


def test_memory_frontier(fault_server: FaultServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert crawl(out, fault_server.url("/ok"), fault_server.url("/page/3"), frontier="memory") == 0
    assert archived_urls(out) == {fault_server.url("/ok"), fault_server.url("/page/3")}
    assert not (out / "state.sqlite").exists()


# sequential fetches one URL at a time by design: a slow host holds everything up there
@pytest.mark.parametrize(
    "mode", [m for m in Mode if m is not Mode.SEQUENTIAL], ids=str, indirect=True
)
def test_slow_host_does_not_starve_others(
    mode: Mode, fault_server: FaultServer, web_site: WebSite, tmp_path: Path
) -> None:
    slow = [
        fault_server.url(f"/slow-drip?bytes=200&interval=0.1&chunk=20&n={i}") for i in range(16)
    ]
    fast = [web_site.base_url + p for p in web_site.info.page_paths[:40]]
    out = tmp_path / "out"
    # slow URLs first in the list: a FIFO crawler would fill every slot with them
    assert crawl(out, *slow, *fast, concurrency=16, per_host=4, mode=mode.value) == 0
    rows = {r["url"]: r for r in pages(out)}
    start = min(_ts(r["fetched_at"]) for r in rows.values())
    slow_end = max(_ts(rows[exact_url(u)]["fetched_at"]) for u in slow)
    fast_end = max(_ts(rows[exact_url(u)]["fetched_at"]) for u in fast)
    assert slow_end - start >= 2.5  # 16 slow URLs, 4 at a time, about 1 s each
    assert fast_end - start < 1.5, "the fast host waited behind the slow one"


def _ts(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_bad_input_in_every_mode(
    mode: Mode, fault_server: FaultServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invalid lines, unsupported schemes and an empty list give the same rows, messages and exit
    codes in every mode."""
    f = tmp_path / "urls.txt"
    good = [fault_server.url("/ok"), fault_server.url("/page/4")]
    f.write_text(
        f"{good[0]}\nnot a url at all\nhttp://\nmailto:someone@example.org\n"
        f"ftp://example.org/file\n{good[1]}\nhttp://[::1/broken\n"
    )
    out = tmp_path / "out"
    assert crawl(out, inputs=(str(f),), mode=mode.value) == 0
    err = capsys.readouterr().err
    for lineno in (2, 3, 4, 5, 7):
        assert f"{f}:{lineno}" in err
    assert "5 invalid URL line(s) skipped" in err
    assert archived_urls(out) == set(good)
    assert len(pages(out)) == 2
    check_archive(out)
    # nothing valid at all: a usage error before any request, whatever the mode
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    assert crawl(tmp_path / "o2", inputs=(str(empty),), mode=mode.value) == 2
    assert "no valid URL" in capsys.readouterr().err
    assert crawl(tmp_path / "o3", "ftp://example.org/x", "gopher://x/", mode=mode.value) == 2
    err = capsys.readouterr().err
    assert "unsupported scheme" in err.lower() and "no valid URL" in err
    assert not pages(tmp_path / "o2") and not pages(tmp_path / "o3")
