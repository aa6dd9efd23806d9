"""Mode limits are checked before any I/O, with the reason (or the extra to install)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import drivers.crawl_asyncio
import drivers.crawl_coordinator
from crawler.core.flow import FetchResult, Outcome
from crawler.core.frontier import FrontierItem, MemoryFrontier
from crawler.pages import PAGE_FIELDS, page_row
from crawler.parse import ParsedPage
from crawler.settings import CrawlerSettings
from drivers import gevent_entry
from drivers.dispatch import MODES, check_crawl_mode, crawl_processes, run_crawl
from foundation.errors import ModeError
from foundation.limits import (
    MAX_THREADS,
    WARN_THREADS,
    check_gevent_installed,
    check_greenlet_count,
    check_process_count,
    check_thread_count,
)


def settings(tmp_path: Path, **kw: object) -> CrawlerSettings:
    return CrawlerSettings(out=tmp_path / "out", **kw)  # type: ignore[arg-type]


def test_5000_threads_refused_with_the_reason() -> None:
    with pytest.raises(ModeError) as err:
        check_thread_count(5_000)
    text = str(err.value)
    assert "5,000 threads" in text and f"{MAX_THREADS:,}" in text
    assert "GIL" in text and "--mode asyncio" in text


def test_many_threads_allowed_with_a_warning() -> None:
    with pytest.warns(RuntimeWarning, match="GIL contention"):
        assert check_thread_count(WARN_THREADS + 1) == WARN_THREADS + 1
    assert check_thread_count(50) == 50
    with pytest.raises(ModeError):
        check_thread_count(0)


def test_other_limits() -> None:
    assert check_greenlet_count(5_000) == 5_000
    with pytest.raises(ModeError, match="greenlets"):
        check_greenlet_count(1_000_000)
    assert check_process_count(2) == 2
    for bad in (0, 65):
        with pytest.raises(ModeError, match="worker processes"):
            check_process_count(bad)


def test_gevent_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "gevent" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModeError, match=r"fetchlab\[gevent\]"):
        check_gevent_installed()


def test_gevent_entry_without_gevent_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # a None entry in sys.modules makes `import gevent` fail: nothing gets patched here
    monkeypatch.setitem(sys.modules, "gevent", None)
    with pytest.raises(ModeError, match=r"fetchlab\[gevent\]"):
        gevent_entry.main(["drivers.crawl_gevent:main", "job.json"])


def test_gevent_entry_usage() -> None:
    assert gevent_entry.main([]) == 2
    assert gevent_entry.main(["no-colon"]) == 2


def test_gevent_needs_the_sqlite_frontier(tmp_path: Path) -> None:
    with pytest.raises(ModeError, match="frontier = 'sqlite'"):
        check_crawl_mode(settings(tmp_path, mode="gevent", frontier="memory"))


def test_every_mode_passes_its_checks(tmp_path: Path) -> None:
    for mode in MODES:
        check_crawl_mode(settings(tmp_path, mode=mode, concurrency=64))


def test_dispatch_refuses_before_any_io(tmp_path: Path) -> None:
    s = settings(tmp_path, mode="threads", concurrency=5_000)
    with pytest.raises(ModeError, match="refuses 5,000 threads"):
        run_crawl(s, MemoryFrontier())
    assert not (tmp_path / "out").exists()  # refused before the archive was created


def test_processes_count_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(tmp_path, mode="processes")
    monkeypatch.setenv("FETCHLAB_PROCESSES", "3")
    assert crawl_processes(s) == 3
    monkeypatch.setenv("FETCHLAB_PROCESSES", "many")
    with pytest.raises(ModeError, match="FETCHLAB_PROCESSES"):
        crawl_processes(s)
    monkeypatch.setenv("FETCHLAB_PROCESSES", "100")
    with pytest.raises(ModeError, match="worker processes"):
        check_crawl_mode(s)


def test_checkpoint_key_is_the_engines() -> None:
    # resumable by any mode: both drivers keep the same pages checkpoint
    assert drivers.crawl_coordinator.CHECKPOINT_KEY == drivers.crawl_asyncio.CHECKPOINT_KEY


def test_page_row_has_the_engines_fields() -> None:
    hop = FetchResult(
        url="http://127.0.0.1:1/a",
        status=200,
        reason="OK",
        http_version="1.1",
        headers=((b"Content-Type", b"text/html"),),
        body=b"<title>t</title>",
        truncated=False,
        request_head=b"GET /a HTTP/1.1\r\n\r\n",
        started_at=1_700_000_000.25,
        received_at=1_700_000_000.5,
    )
    item = FrontierItem(url=hop.url, depth=2, host="127.0.0.1:1", attempts=0, parent=None)
    row, error = page_row(item, Outcome(hop.url, (hop,)), ParsedPage(title="t", n_links=3))
    # the writer adds sha1's value and the revisit / warc* fields
    assert tuple(row) == PAGE_FIELDS[: len(row)]
    assert error is None
    assert row["elapsed_ms"] == 250.0 and row["depth"] == 2 and row["n_links"] == 3
    assert row["fetched_at"] == "2023-11-14T22:13:20.250Z"
    bad, error = page_row(item, Outcome(hop.url, (hop,)), ParsedPage(error="DecodeError: bomb"))
    assert error == "DecodeError" and bad["error"] == "bomb"


def test_drivers_handle_every_effect_of_the_flows() -> None:
    # the flows may grow new effects: a driver that does not know one must fail here, not mid-run
    from typing import get_args

    import crawler.core.flow
    import mailsync.core.flow
    from drivers import crawl_blocking, mail_blocking

    assert set(get_args(crawler.core.flow.Effect)) == set(crawl_blocking.HANDLED_EFFECTS)
    assert set(get_args(mailsync.core.flow.Effect)) == set(mail_blocking.HANDLED_EFFECTS)


def test_gevent_entry_imports_nothing_to_patch_before_patching() -> None:
    # patching after socket/ssl/threading were imported leaves the program half patched
    import subprocess

    code = (
        "import sys, drivers.gevent_entry; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('socket', 'ssl', 'threading', 'asyncio', 'selectors')))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
