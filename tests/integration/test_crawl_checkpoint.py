"""The pages checkpoint after a crash: it moves past the re-applied lines in the resumed run.

A crawl (a real child process against the generated site on nginx) is SIGKILLed once lines stand
after the saved ``pages_checkpoint`` whose URLs the frontier had already marked done (the crash
came between the mark and the next save, about a second's worth of pages). The resumed run must
save a checkpoint past all of those lines while it runs, every line before a saved checkpoint
must have its URL marked in the frontier, and a second SIGKILL plus a last resume must still give
the exact ground truth: the same URL set, none twice.

The second test holds one line's URL back (queued again, not before a few seconds: a run stopped
between the line and its mark, the URL leased late): the checkpoint must stop at that line while
new lines are committed, so that a second SIGKILL then does not fetch its URL twice. Both run in
the asyncio and processes modes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from crawler.core.frontier import DONE, FAILED, QUEUED
from crawler.core.urls import fingerprint
from crawler.frontier_sqlite import SqliteFrontier
from crawler.pages import CHECKPOINT_KEY, last_complete_line
from tests.fixtures.web import WebSite, WebSiteFactory
from tests.integration.crawl_support import ROOT, archived_urls, check_archive, pages

PAGES = 1500 if os.environ.get("FETCHLAB_SLOW") == "1" else 300
KILL_TRIES = 6  # runs killed at most before the wanted state is reached (it nearly always is)
HOLD = 5.0  # seconds the held URL waits: past the restart and 20 new lines, with room to spare


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FETCHLAB_PROCESSES": "2"}
    env.pop("FETCHLAB_SETTINGS", None)
    return env


def _finish(args: list[str]) -> None:
    """The last resume, run to its end."""
    final = subprocess.run(
        [sys.executable, "-m", "fetchlab.crawl_cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=_env(),
    )
    assert final.returncode in (0, 1), final.stderr


def _args(site: WebSite, out: Path, mode: str) -> list[str]:
    return [
        "crawl",
        site.start_url,
        "--follow",
        "--out",
        str(out),
        "--mode",
        mode,
        "--delay",
        "0.01",
        "--no-progress",
        "--parse-workers",
        "1",
    ]


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fetchlab.crawl_cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=_env(),
        start_new_session=True,  # its parser and worker processes die with it
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@dataclass(frozen=True)
class Snapshot:
    """state.sqlite and pages.jsonl read in one SQLite read transaction."""

    checkpoint: int
    end: int  # end of the last complete pages.jsonl line
    before: dict[str, int | None]  # URL -> frontier state, lines before the checkpoint
    after: dict[str, int | None]  # the same for the lines after it


def _lines(path: Path) -> list[tuple[int, str]]:
    """(end offset, URL) of every complete line."""
    out: list[tuple[int, str]] = []
    pos = 0
    if path.exists():
        with open(path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                pos += len(raw)
                out.append((pos, str(json.loads(raw)["url"])))
    return out


def _snapshot(out: Path) -> Snapshot | None:
    """None while the crawl has not created its state yet."""
    db_path = out / "state.sqlite"
    if not db_path.exists():
        return None
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None, timeout=5)
    try:
        db.execute("BEGIN")  # one snapshot: the checkpoint and the marks it covers
        row = db.execute("SELECT value FROM meta WHERE key = ?", (CHECKPOINT_KEY,)).fetchone()
        checkpoint = int(row[0]) if row else 0
        # lines before a saved checkpoint were written before it was saved: all are on disk
        lines = _lines(out / "pages.jsonl")
        states: dict[str, int | None] = {}
        for _, url in lines:
            got = db.execute("SELECT state FROM urls WHERE fp = ?", (fingerprint(url),)).fetchone()
            states[url] = None if got is None else int(got[0])
        db.execute("COMMIT")
    except sqlite3.OperationalError:  # the crawl is still creating its tables
        return None
    finally:
        db.close()
    return Snapshot(
        checkpoint,
        lines[-1][0] if lines else 0,
        {url: states[url] for end, url in lines if end <= checkpoint},
        {url: states[url] for end, url in lines if end > checkpoint},
    )


def _poll(
    proc: subprocess.Popen[bytes], out: Path, until: Callable[[Snapshot], bool], timeout: float
) -> Snapshot | None:
    """The first snapshot meeting ``until`` while ``proc`` runs; None if it ended or timed out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        snap = _snapshot(out)
        if snap is not None and until(snap):
            return snap
        time.sleep(0.02)
    return None


def _assert_covered(snap: Snapshot) -> None:
    """What the checkpoint promises: every line before it has its URL marked."""
    unmarked = [url for url, state in snap.before.items() if state not in (DONE, FAILED)]
    assert not unmarked, f"checkpoint {snap.checkpoint} passes unmarked lines: {unmarked[:5]}"


@pytest.mark.parametrize("mode", ["asyncio", "processes"])
def test_checkpoint_advances_after_crash(
    web_site_factory: WebSiteFactory, tmp_path: Path, mode: str
) -> None:
    site = web_site_factory(pages=PAGES, seed=5)
    out = tmp_path / "out"
    args = _args(site, out, mode)
    rng = random.Random(mode)

    # 1. kill runs until lines after the saved checkpoint name URLs already marked done
    crashed: Snapshot | None = None
    for _ in range(KILL_TRIES):
        proc = _start(args)
        saved = _poll(proc, out, lambda s: s.checkpoint > 0 and s.end > s.checkpoint, 30)
        if saved is not None:
            time.sleep(rng.uniform(0.1, 0.5))
        _kill(proc)
        assert saved is not None, "the crawl ended before a checkpoint was seen: slow it down"
        snap = _snapshot(out)
        assert snap is not None
        _assert_covered(snap)
        if any(state == DONE for state in snap.after.values()):
            crashed = snap
            break
    assert crashed is not None, "no kill left marked lines after the checkpoint"
    reapplied = len(crashed.after)
    print(f"{mode}: killed at checkpoint {crashed.checkpoint}, {reapplied} lines after it")

    # 2. the resumed run saves a checkpoint past every re-applied line while it runs
    proc = _start(args)
    try:
        moved = _poll(proc, out, lambda s: s.checkpoint >= crashed.end, 30)
        alive = proc.poll() is None
    finally:
        _kill(proc)  # 3. the second crash
    assert moved is not None and alive, (
        f"the resumed run never saved a checkpoint past the {reapplied} re-applied lines "
        f"(stuck at {crashed.checkpoint}, lines end at {crashed.end})"
    )
    _assert_covered(moved)
    second = _snapshot(out)
    assert second is not None
    _assert_covered(second)
    assert second.checkpoint >= crashed.end

    # 4. the last resume gives the exact ground truth
    _finish(args)
    assert archived_urls(out) == site.info.truth_obey_robots
    rows = pages(out)
    assert len({r["url"] for r in rows}) == len(rows), "a URL committed twice"
    assert max(check_archive(out).responses.values()) == 1, "a URL archived twice"
    with SqliteFrontier(out / "state.sqlite") as frontier:
        counts = frontier.counts()
        checkpoint = frontier.get_meta(CHECKPOINT_KEY)
    assert counts.queued == counts.leased == 0
    assert counts.done + counts.failed == len(rows)
    # a finished run has applied every line
    assert checkpoint == str(last_complete_line(out / "pages.jsonl").offset)


def _hold_back(out: Path, url: str, seconds: float) -> None:
    """Queue ``url`` again, not before ``seconds`` from now, in the killed crawl's state."""
    db = sqlite3.connect(out / "state.sqlite", isolation_level=None)
    try:
        cur = db.execute(
            "UPDATE urls SET state = 0, not_before = ? WHERE fp = ?",
            (time.time() + seconds, fingerprint(url)),
        )
        assert cur.rowcount == 1
    finally:
        db.close()


@pytest.mark.parametrize("mode", ["asyncio", "processes"])
def test_waiting_line_holds_the_checkpoint(
    web_site_factory: WebSiteFactory, tmp_path: Path, mode: str
) -> None:
    site = web_site_factory(pages=PAGES, seed=6)
    out = tmp_path / "out"
    args = _args(site, out, mode)

    crashed: Snapshot | None = None
    for _ in range(KILL_TRIES):
        proc = _start(args)
        saved = _poll(proc, out, lambda s: s.checkpoint > 0 and len(s.after) >= 2, 30)
        _kill(proc)
        assert saved is not None, "the crawl ended before a checkpoint was seen: slow it down"
        snap = _snapshot(out)
        assert snap is not None
        if len(snap.after) >= 2:  # else a checkpoint was saved just before the kill
            crashed = snap
            break
    assert crashed is not None
    # the last line's URL waits: the checkpoint may reach its line, never pass it
    lines = _lines(out / "pages.jsonl")
    held_end, held = lines[-1]
    held_start = lines[-2][0]
    assert held_start >= crashed.checkpoint and held_end == crashed.end
    _hold_back(out, held, HOLD)

    proc = _start(args)
    try:
        grown = _poll(proc, out, lambda s: len(s.before) + len(s.after) >= len(lines) + 20, 30)
        alive = proc.poll() is None
        held_state = _snapshot(out)
    finally:
        _kill(proc)  # the second crash, while the URL still waits
    assert grown is not None and alive, "the resumed run wrote no new lines"
    assert held_state is not None
    held_now = {**held_state.before, **held_state.after}.get(held)
    assert held_now == QUEUED, "the held URL was leased early: lengthen the hold"
    second = _snapshot(out)
    assert second is not None
    for snap in (grown, held_state, second):
        assert snap.checkpoint <= held_start, (
            f"checkpoint {snap.checkpoint} passed the waiting line ({held_start}-{held_end})"
        )
        _assert_covered(snap)
    # ... and it did move past the other re-applied lines, up to the waiting one
    assert second.checkpoint == held_start

    _finish(args)
    rows = pages(out)
    assert [r["url"] for r in rows].count(held) == 1, "the held URL was fetched again"
    assert len({r["url"] for r in rows}) == len(rows), "a URL committed twice"
    assert archived_urls(out) == site.info.truth_obey_robots
    assert max(check_archive(out).responses.values()) == 1, "a URL archived twice"
    with SqliteFrontier(out / "state.sqlite") as frontier:
        counts = frontier.counts()
        assert frontier.states([held])[held] in (DONE, FAILED)
    assert counts.queued == counts.leased == 0
    assert counts.done + counts.failed == len(rows)
