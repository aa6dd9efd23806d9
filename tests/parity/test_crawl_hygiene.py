"""``crawler crawl`` in every mode, as a real command: no process outlives it (even after
SIGKILL), SIGINT and SIGTERM stop it within 2 s with exit 130 and the state saved, and relative
paths mean the user's working directory (the runs start in a temporary cwd with ``--out out``)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from foundation.mode import Mode
from testbed.faults import FaultServer
from tests.fixtures.web import WebSite, WebSiteFactory
from tests.integration.crawl_support import check_archive, pages
from tests.parity._lifecycle import (
    STOP_WITHIN,
    Runs,
    assert_all_gone,
    ctrl_c_as_workers_start,
    env,
    sigkill_main,
    tree,
    wait_for,
)
from tests.parity._lifecycle import stop_with as _stop_with


def _argv(mode: Mode, *extra: str) -> list[str]:
    flags = ["--concurrency", "4", "--per-host", "4", "--no-progress", "--mode", mode.value]
    return ["-m", "fetchlab.crawl_cli", "crawl", "-i", "urls.txt", "--out", "out", *flags, *extra]


def _rows(out: Path) -> int:
    path = out / "pages.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _site(web_site: WebSite, cwd: Path, n: int) -> list[str]:
    base = web_site.server.latency_url(100)  # 100 ms a response: the crawl is under way a while
    urls = sorted({base + p for p in web_site.info.page_paths})[:n]
    (cwd / "urls.txt").write_text("\n".join(urls) + "\n", "utf-8")
    return urls


@pytest.mark.needs_nginx
@pytest.mark.timeout(90)
def test_sigkill_of_the_crawler_leaves_no_process(
    mode: Mode, web_site: WebSite, tmp_path: Path, runs: Runs
) -> None:
    _site(web_site, tmp_path, 120)
    proc = runs.start(_argv(mode, "--parse-workers", "2"), tmp_path, env())
    wanted = {Mode.ASYNCIO: 3, Mode.PROCESSES: 2, Mode.GEVENT: 1}.get(mode, 0)
    # the parse pool (its resource tracker and two spawned workers) or the mode's workers are up
    wait_for(lambda: len(tree(proc.pid)) >= wanted, proc, f"{wanted} descendants started")
    wait_for(lambda: _rows(tmp_path / "out") >= 3, proc, "3 pages were archived")
    before = sigkill_main(proc, runs)
    assert len(before) >= wanted
    assert_all_gone(before)


@pytest.mark.needs_nginx
@pytest.mark.timeout(120)
def test_sigint_and_sigterm_stop_the_crawler_then_a_rerun_finishes(
    mode: Mode, web_site: WebSite, tmp_path: Path, runs: Runs
) -> None:
    urls = _site(web_site, tmp_path, 60)
    out = tmp_path / "out"
    took: dict[str, float] = {}
    # Ctrl-C in a terminal reaches the whole process group; ``kill`` only the command
    for sig, group in ((signal.SIGINT, True), (signal.SIGTERM, False)):
        at = _rows(out)
        proc = runs.start(_argv(mode, "--parse-workers", "1"), tmp_path, env())
        wait_for(lambda at=at: _rows(out) >= at + 3, proc, "3 more pages were archived")  # type: ignore[misc]
        code, err, took[sig.name] = _stop_with(proc, runs, sig, group=group)
        assert code == 130, err
        assert "Traceback" not in err, err
        assert "--resume" in err, err
        assert took[sig.name] < STOP_WITHIN, took
    print(f"stop times ({mode.value}): {took}")  # shown with -s: the figures in the docs
    assert _rows(out) < len(urls)
    again = runs.start(_argv(mode), tmp_path, env())
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    rows = pages(out)
    assert sorted(r["url"] for r in rows) == urls, "every URL exactly once, in the cwd's out/"
    assert all(r["status"] == 200 and r["error_class"] is None for r in rows)
    check = check_archive(out)
    assert set(check.responses) == set(urls) and max(check.responses.values()) == 1


@pytest.mark.needs_nginx
@pytest.mark.timeout(180)
def test_ctrl_c_while_results_pour_in_loses_nothing(
    mode: Mode, web_site_factory: WebSiteFactory, tmp_path: Path, runs: Runs
) -> None:
    """Ctrl-C at full speed (no latency: results arrive in every turn of the coordinator's
    loop), three times at different points, then a rerun: every URL is archived exactly once.
    A stop that lost a batch of results whose records a worker had already written leaves
    those records behind with no line naming them; the rerun fetches the URLs again and the
    archive then holds two responses for them."""
    site = web_site_factory(pages=2000, seed=3)
    # (the site's robots.txt disallows /private/: those would end as failures, exit 1)
    urls = sorted({site.base_url + p for p in site.info.page_paths if "/private/" not in p})
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n", "utf-8")
    out = tmp_path / "out"
    argv = ["-m", "fetchlab.crawl_cli", "crawl", "-i", "urls.txt", "--out", "out"]
    argv += ["--no-progress", "--mode", mode.value]
    for more in (100, 200, 200):
        at = _rows(out)
        proc = runs.start(argv, tmp_path, env())
        wait_for(lambda at=at, more=more: _rows(out) >= at + more, proc, f"{more} more pages")  # type: ignore[misc]
        code, err, _ = _stop_with(proc, runs, signal.SIGINT, group=True)
        assert code == 130, err
        assert "Traceback" not in err, err
    assert _rows(out) < len(urls), "the stops came before the end"
    again = runs.start(argv, tmp_path, env())
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    rows = pages(out)
    assert sorted(r["url"] for r in rows) == urls, "every URL exactly once"
    check = check_archive(out)
    assert set(check.responses) == set(urls)
    assert max(check.responses.values()) == 1, "a URL's response archived twice"


@pytest.mark.parametrize(
    "path",
    [
        "/slow-drip?bytes=100000&interval=1&chunk=10",  # inside a body that takes 10,000 s
        "/ratelimit/{key}?fails=1&retry_after=30",  # inside the 30 s wait a 429 asked for
    ],
    ids=["mid-body", "mid-backoff"],
)
@pytest.mark.timeout(90)
def test_ctrl_c_inside_a_long_fetch_or_wait_stops_at_once(
    mode: Mode, path: str, fault_server: FaultServer, tmp_path: Path, runs: Runs
) -> None:
    """Ctrl-C while the only URL left is stuck in its fetch or in a wait its flow asked for:
    exit 130 within the 2 s, the URL not recorded (a rerun fetches it). The sequential mode
    fetches in the thread the signal lands in; it once raised KeyboardInterrupt there, which
    could land inside urllib3's pool lock and leave it held: the next fetch hung for good."""
    key = f"{mode.value}-{tmp_path.name}"
    url = fault_server.url(path.format(key=key))
    (tmp_path / "urls.txt").write_text(f"{fault_server.url('/ok')}\n{url}\n", "utf-8")
    out = tmp_path / "out"
    argv = ["-m", "fetchlab.crawl_cli", "crawl", "-i", "urls.txt", "--out", "out"]
    argv += ["--no-progress", "--mode", mode.value, "--timeout", "60", "--no-robots"]
    stuck = path.split("?")[0].format(key=key)
    before = fault_server.stats().get(stuck, 0)  # (the server is the session's)
    proc = runs.start(argv, tmp_path, env())
    wait_for(lambda: fault_server.stats().get(stuck, 0) > before, proc, f"the request for {stuck}")
    time.sleep(0.3)  # inside the body's drip, or the wait after the 429
    code, err, took = _stop_with(proc, runs, signal.SIGINT, group=True)
    assert code == 130, err
    assert "Traceback" not in err, err
    assert took < STOP_WITHIN, f"{took:.2f} s"
    assert url not in {r["url"] for r in pages(out)}


@pytest.mark.needs_nginx
@pytest.mark.timeout(90)
def test_ctrl_c_while_the_workers_start_is_a_stop(
    mode: Mode, web_site: WebSite, tmp_path: Path, runs: Runs
) -> None:
    """Ctrl-C the moment the worker processes (or the parse pool's) exist, while they are still
    importing: a stop (exit 130, no worker reported dead), and a rerun finishes. A spawned
    worker got the group's SIGINT before it could ignore it and died of KeyboardInterrupt; the
    run then ended as "worker died" (exit 1)."""
    urls = _site(web_site, tmp_path, 30)
    out = tmp_path / "out"
    proc = runs.start(_argv(mode, "--parse-workers", "2"), tmp_path, env())
    wanted = {Mode.ASYNCIO: 3, Mode.PROCESSES: 2, Mode.GEVENT: 1}.get(mode, 0)
    ctrl_c_as_workers_start(proc, runs, wanted, (out / "pages.jsonl").exists)
    again = runs.start(_argv(mode), tmp_path, env())
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert sorted(r["url"] for r in pages(out)) == urls
